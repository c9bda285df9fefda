"""ResNet-50/101 (v1) with atrous convolution and multi-grid, weight-compatible with
`keras.applications.ResNet50` / `ResNet101`.

The layers are those of `keras.applications.resnet` (`conv1_pad`, `conv1_conv`,
`conv1_bn`, ..., `conv{stage}_block{i}_{0,1,2,3}_{conv,bn}`, `_add`, `_out`), with
the same names, shapes, biases and batch-norm epsilon (1.001e-5), so ImageNet
weights copy over by layer name. Keras's ResNet v1 puts a stage's stride in the
first block's 1x1 convolutions (`_1_conv` and the shortcut `_0_conv`); atrous
convolution only changes strides and dilation rates, never a weight shape (a dilated
3x3 is `deeplab_tf.atrous.AtrousConv2D`: a `Conv2D` that skips Keras's space-to-batch).

Output stride (DeepLabv3 section 3.2, `stack_blocks_dense`): once the running
stride equals `output_stride`, the next stage keeps stride 1 and its 3x3
convolutions (which come after the would-be subsampling) are dilated by the
stride it gave up: at OS16 `conv5` has rate 2, at OS8 `conv4` rate 2 and
`conv5` rate 4. Multi-grid (DeepLabv3 section 3.2, "Multi-grid Method") scales
the three 3x3 convolutions of `conv5` by (1, 2, 4): rates (2, 4, 8) at OS16 and
(4, 8, 16) at OS8.

Taps: ``{4: conv2_block3_out (256 channels), output_stride: conv5_block3_out
(2048 channels)}``. The stride-4 tap is the output of the last block at stride 4,
the Keras counterpart of the reference's `block1/unit_2/bottleneck_v1/conv3`
(TF-slim ResNet strides in the last unit of a block, Keras in the first unit of
the next one).

Geometry: `conv1` pads 3 and `pool1` pads 1 before 'valid' stride-2 layers, and
the 1x1 stride-2 convolutions sample even pixels, so every stride-2 layer maps
n pixels to ceil(n / 2) with pixel i of a stride-s map centred on input pixel
s * i, the same corner alignment as the Xception encoder.

Trainable parameters (= `keras.applications` include_top=False): ResNet-50
23,534,592; ResNet-101 42,552,832.
"""

import logging
import os

import keras

from deeplab_tf.aspp import batch_norm
from deeplab_tf.atrous import conv2d
from segcore.errors import ConfigError
from segcore.pretrained import WeightsUnavailable

log = logging.getLogger(__name__)

BN_EPSILON = 1.001e-5  # keras.applications.resnet; the weights were trained with it
BN_MOMENTUM = 0.997  # research/deeplab resnet arg scope (batch_norm_decay)
DEPTHS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}
STAGE_FILTERS = (64, 128, 256, 512)
DEFAULT_MULTI_GRID = (1, 2, 4)
APPLICATIONS = {50: "ResNet50", 101: "ResNet101"}


def bottleneck(x, filters, stride, rate, conv_shortcut, name, bn):
    """`keras.applications.resnet.residual_block_v1` with a dilation rate for the 3x3."""
    if conv_shortcut:
        shortcut = keras.layers.Conv2D(4 * filters, 1, strides=stride, name=f"{name}_0_conv")(x)
        shortcut = batch_norm(f"{name}_0_bn", **bn)(shortcut)
    else:
        shortcut = x
    x = keras.layers.Conv2D(filters, 1, strides=stride, name=f"{name}_1_conv")(x)
    x = batch_norm(f"{name}_1_bn", **bn)(x)
    x = keras.layers.Activation("relu", name=f"{name}_1_relu")(x)
    x = conv2d(filters, 3, padding="same", dilation_rate=rate, name=f"{name}_2_conv")(x)
    x = batch_norm(f"{name}_2_bn", **bn)(x)
    x = keras.layers.Activation("relu", name=f"{name}_2_relu")(x)
    x = keras.layers.Conv2D(4 * filters, 1, name=f"{name}_3_conv")(x)
    x = batch_norm(f"{name}_3_bn", **bn)(x)
    x = keras.layers.Add(name=f"{name}_add")([shortcut, x])
    return keras.layers.Activation("relu", name=f"{name}_out")(x)


def resnet(x, depth=50, output_stride=16, multi_grid=None, synchronized=False,
           momentum=BN_MOMENTUM):
    """Apply ResNet-`depth` to tensor `x`; return
    ``{4: conv2 output, output_stride: conv5 output}``.

    output_stride: 8, 16 or 32 (32: keras.applications' network exactly).
    multi_grid: unit rates of `conv5` (default (1, 2, 4)), times the stage rate.
    """
    if depth not in DEPTHS:
        raise ConfigError(f"depth must be 50 or 101 for resnet; got {depth!r}")
    if output_stride not in (8, 16, 32):
        raise ConfigError(f"output_stride must be 8, 16 or 32 for resnet; got {output_stride!r}")
    grid = tuple(multi_grid) if multi_grid is not None else DEFAULT_MULTI_GRID
    if len(grid) != DEPTHS[depth][3]:
        raise ConfigError(f"multi_grid must have 3 rates (the blocks of conv5); got {multi_grid!r}")
    bn = {"momentum": momentum, "epsilon": BN_EPSILON, "synchronized": synchronized}

    x = keras.layers.ZeroPadding2D(((3, 3), (3, 3)), name="conv1_pad")(x)
    x = keras.layers.Conv2D(64, 7, strides=2, name="conv1_conv")(x)
    x = batch_norm("conv1_bn", **bn)(x)
    x = keras.layers.Activation("relu", name="conv1_relu")(x)
    x = keras.layers.ZeroPadding2D(((1, 1), (1, 1)), name="pool1_pad")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)

    current_stride, rate = 4, 1
    taps = {}
    for stage, (filters, blocks) in enumerate(zip(STAGE_FILTERS, DEPTHS[depth]), start=2):
        stride = 1 if stage == 2 else 2
        if current_stride == output_stride:
            # The stage gives up its stride; its 3x3 convolutions all come after
            # the would-be subsampling, so they are all dilated.
            rate *= stride
            stride = 1
        else:
            current_stride *= stride
        for i in range(1, blocks + 1):
            unit_rate = rate * grid[i - 1] if stage == 5 else rate
            x = bottleneck(
                x, filters, stride if i == 1 else 1, unit_rate, conv_shortcut=i == 1,
                name=f"conv{stage}_block{i}", bn=bn,
            )
        if stage == 2:
            taps[4] = x
    taps[output_stride] = x
    return taps


def resnet50(x, output_stride=16, multi_grid=None, synchronized=False, momentum=BN_MOMENTUM):
    """ResNet-50 taps (see `resnet`)."""
    return resnet(x, 50, output_stride, multi_grid, synchronized, momentum)


def resnet101(x, output_stride=16, multi_grid=None, synchronized=False, momentum=BN_MOMENTUM):
    """ResNet-101 taps (see `resnet`)."""
    return resnet(x, 101, output_stride, multi_grid, synchronized, momentum)


def copy_weights_by_name(source, target, skip=()):
    """Copy every weighted layer of `source` into the layer of `target` with its name.

    Layers named in `skip` are ignored. Raises ConfigError if a layer is missing
    from `target` or its weight shapes differ. Returns the names copied.
    """
    copied = []
    for layer in source.layers:
        weights = layer.get_weights()
        if not weights or layer.name in skip:
            continue
        try:
            destination = target.get_layer(layer.name)
        except ValueError:
            raise ConfigError(
                f"weights: layer {layer.name!r} of {source.name} has no counterpart in "
                f"{target.name}"
            ) from None
        shapes = [w.shape for w in destination.get_weights()]
        if shapes != [w.shape for w in weights]:
            raise ConfigError(
                f"weights: layer {layer.name!r} has shapes {[w.shape for w in weights]} "
                f"in {source.name} but {shapes} in {target.name}"
            )
        destination.set_weights(weights)
        copied.append(layer.name)
    return copied


def keras_application(factory_name, weights, **kwargs):
    """`keras.applications.<factory_name>(include_top=False, weights=weights, ...)`.

    weights: "imagenet" (Keras cache ~/.keras/models, downloaded if missing) or
    the path of a weights file of that application (include_top=False).
    Failures become a ConfigError saying what to provide.
    """
    if weights != "imagenet" and not os.path.isfile(str(weights)):
        raise ConfigError(f"weights: no weights file at {weights}")
    factory = getattr(keras.applications, factory_name)
    try:
        return factory(include_top=False, weights=weights, input_shape=(None, None, 3), **kwargs)
    except Exception as error:
        if weights == "imagenet":
            raise WeightsUnavailable(
                f"weights='imagenet': could not get the keras.applications.{factory_name} "
                f"ImageNet weights ({error}); put the include_top=False file in "
                "~/.keras/models or pass weights=PATH"
            ) from None
        raise ConfigError(
            f"weights={weights}: not a keras.applications.{factory_name} "
            f"(include_top=False) weights file ({error})"
        ) from None


def load_resnet_weights(model, depth, weights):
    """Copy ImageNet (or file) weights of keras.applications ResNet-`depth` into `model`."""
    source = keras_application(APPLICATIONS[depth], weights)
    copied = copy_weights_by_name(source, model)
    log.info("copied %d layers of %s into %s", len(copied), source.name, model.name)
    return copied
