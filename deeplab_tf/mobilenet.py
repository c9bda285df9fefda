"""MobileNetV2 with atrous convolution, weight-compatible with `keras.applications.MobileNetV2`.

The layers are those of `keras.applications.mobilenet_v2` (`Conv1`, `bn_Conv1`,
`expanded_conv_{depthwise,project}`, `block_{i}_{expand,depthwise,project}` with
`_BN`, `_relu`, `_add`), with the same names, shapes and batch-norm epsilon (1e-3),
so ImageNet weights copy over by layer name, for any width multiplier `alpha`.

As research/deeplab (`feature_extractor._mobilenet_v2`, `final_endpoint='layer_18'`)
the encoder ends at `block_16_project_BN` (320 * alpha channels): the 1x1
convolution to 1280 channels (`Conv_1`) of the classifier is not built, and its
weights are not copied.

Output stride (TF-slim `mobilenet_base`): once the running stride equals
`output_stride`, the block that would stride keeps stride 1 and the current rate,
and the depthwise convolutions of all later blocks are dilated by the stride it
gave up: at OS16 `block_13` has stride 1 and blocks 14-16 rate 2; at OS8 `block_6`
has stride 1, blocks 7-13 rate 2 and blocks 14-16 rate 4.

Padding: the depthwise convolutions use 'same' padding, also at stride 2 (TF-slim,
used by research/deeplab). keras.applications pads with `correct_pad` computed
from the static shape, ((0, 1), (0, 1)) when it is unknown; on even sizes (all
sizes of its ImageNet training) both are the same, and on odd sizes 'same' keeps
ceil(n / 2) pixels where `correct_pad` on an unknown shape drops one.

Taps: ``{4: block_2_depthwise_relu (144 channels at alpha 1), output_stride:
block_16_project_BN (320)}``; the stride-4 tap is the reference's decoder end
point `layer_4/depthwise_output`.

Width: `alpha` is keras.applications' width multiplier (every layer's channels
rounded to a multiple of 8, `int(c * alpha)` first), so its ImageNet weights fit.
`depth_multiplier` is research/deeplab's (`feature_extractor._mobilenet_v2`,
the `--depth_multiplier` flag), the width of the model-zoo checkpoints: the
output channels of `Conv` and of every block's projection are
`_make_divisible(c * depth_multiplier, divisible_by, min_depth)` with
`divisible_by = min_depth = 8` at 1.0 and 1 otherwise (plain rounding: 24 * 0.5
= 12 channels where `alpha=0.5` gives 16); the expansion convolutions are not
multiplied but computed from their input, `_make_divisible(6 * c_in, 8)` (slim
`expand_input_by_factor(6)`), and the depthwise convolutions keep their input's
channels. At 1.0 both give the same network. The multiplier does not reach the
DeepLab head (256-channel ASPP, logits).

Trainable parameters of the encoder: keras.applications MobileNetV2
(include_top=False) minus `Conv_1` and `Conv_1_bn`: 1,811,712 at alpha 1.0
(2,223,872 - 320 * 1280 - 2 * 1280), 250,208 at alpha 0.35 (396,128 - 112 * 1280
- 2 * 1280).
"""

import logging

import keras

from deeplab_tf.aspp import batch_norm
from deeplab_tf.resnet import copy_weights_by_name, keras_application
from segcore.errors import ConfigError

log = logging.getLogger(__name__)

BN_EPSILON = 1e-3  # keras.applications.mobilenet_v2
BN_MOMENTUM = 0.997  # research/deeplab mobilenet_v2.training_scope (bn_decay)
# (filters, stride, expansion) of blocks 0..16, as keras.applications.MobileNetV2.
BLOCKS = (
    (16, 1, 1),
    (24, 2, 6), (24, 1, 6),
    (32, 2, 6), (32, 1, 6), (32, 1, 6),
    (64, 2, 6), (64, 1, 6), (64, 1, 6), (64, 1, 6),
    (96, 1, 6), (96, 1, 6), (96, 1, 6),
    (160, 2, 6), (160, 1, 6), (160, 1, 6),
    (320, 1, 6),
)
SKIPPED_LAYERS = ("Conv_1", "Conv_1_bn")  # the classifier's 1280-channel convolution


def make_divisible(value, divisor=8, min_value=None):
    """keras.applications.mobilenet_v2._make_divisible."""
    min_value = min_value or divisor
    new_value = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:
        new_value += divisor
    return new_value


def reference_depth(channels, depth_multiplier):
    """research/deeplab MobileNetV2 channels: slim `depth_multiplier` with
    `divisible_by = min_depth = 8 if depth_multiplier == 1.0 else 1`."""
    divisor = 8 if depth_multiplier == 1.0 else 1
    return make_divisible(channels * depth_multiplier, divisor, divisor)


def inverted_res_block(x, expansion, stride, rate, alpha, filters, block_id, bn, end_points,
                       depth_multiplier=None):
    """keras.applications.mobilenet_v2._inverted_res_block with a dilation rate;
    with `depth_multiplier`, the channels of research/deeplab (see the module docstring)."""
    inputs = x
    in_channels = x.shape[-1]
    if depth_multiplier is None:
        pointwise_filters = make_divisible(int(filters * alpha), 8)
        expanded = expansion * in_channels
    else:
        pointwise_filters = reference_depth(filters, depth_multiplier)
        expanded = make_divisible(in_channels * expansion, 8)
    prefix = f"block_{block_id}_" if block_id else "expanded_conv_"
    if block_id:
        x = keras.layers.Conv2D(
            expanded, 1, padding="same", use_bias=False, name=f"{prefix}expand"
        )(x)
        x = batch_norm(f"{prefix}expand_BN", **bn)(x)
        x = keras.layers.ReLU(6.0, name=f"{prefix}expand_relu")(x)
    x = keras.layers.DepthwiseConv2D(
        3, strides=stride, padding="same", dilation_rate=rate, use_bias=False,
        name=f"{prefix}depthwise",
    )(x)
    x = batch_norm(f"{prefix}depthwise_BN", **bn)(x)
    x = keras.layers.ReLU(6.0, name=f"{prefix}depthwise_relu")(x)
    end_points[f"{prefix}depthwise_relu"] = x
    x = keras.layers.Conv2D(
        pointwise_filters, 1, padding="same", use_bias=False, name=f"{prefix}project"
    )(x)
    x = batch_norm(f"{prefix}project_BN", **bn)(x)
    if in_channels == pointwise_filters and stride == 1:
        return keras.layers.Add(name=f"{prefix}add")([inputs, x])
    return x


def mobilenet_v2(x, output_stride=16, alpha=1.0, synchronized=False, momentum=BN_MOMENTUM,
                 depth_multiplier=None):
    """Apply MobileNetV2 to tensor `x`; return ``{4: block_2 depthwise output,
    output_stride: block_16 output}``. output_stride: 8, 16 or 32.
    `depth_multiplier` (instead of `alpha`): research/deeplab's channel rounding."""
    if output_stride not in (8, 16, 32):
        raise ConfigError(
            f"output_stride must be 8, 16 or 32 for mobilenetv2; got {output_stride!r}")
    if not alpha > 0:
        raise ConfigError(f"alpha must be a positive width multiplier; got {alpha!r}")
    if depth_multiplier is not None:
        if alpha != 1.0:
            raise ConfigError(f"give alpha (keras.applications width) or depth_multiplier "
                              f"(research/deeplab width), not both; got alpha={alpha!r}, "
                              f"depth_multiplier={depth_multiplier!r}")
        if isinstance(depth_multiplier, bool) or not isinstance(depth_multiplier, (int, float)) \
                or not depth_multiplier > 0:
            raise ConfigError(
                f"depth_multiplier must be a positive number; got {depth_multiplier!r}")
    bn = {"momentum": momentum, "epsilon": BN_EPSILON, "synchronized": synchronized}

    x = keras.layers.Conv2D(
        make_divisible(32 * alpha, 8) if depth_multiplier is None
        else reference_depth(32, depth_multiplier),
        3, strides=2, padding="same", use_bias=False, name="Conv1"
    )(x)
    x = batch_norm("bn_Conv1", **bn)(x)
    x = keras.layers.ReLU(6.0, name="Conv1_relu")(x)

    current_stride, rate = 2, 1
    end_points = {}
    for block_id, (filters, stride, expansion) in enumerate(BLOCKS):
        if current_stride == output_stride:
            layer_stride, layer_rate = 1, rate
            rate *= stride
        else:
            layer_stride, layer_rate = stride, 1
            current_stride *= stride
        x = inverted_res_block(
            x, expansion, layer_stride, layer_rate, alpha, filters, block_id, bn, end_points,
            depth_multiplier,
        )
    return {4: end_points["block_2_depthwise_relu"], output_stride: x}


def load_mobilenet_v2_weights(model, alpha, weights):
    """Copy ImageNet (or file) weights of keras.applications MobileNetV2(alpha) into `model`."""
    source = keras_application("MobileNetV2", weights, alpha=alpha)
    copied = copy_weights_by_name(source, model, skip=SKIPPED_LAYERS)
    log.info("copied %d layers of %s into %s", len(copied), source.name, model.name)
    return copied
