"""DeepLabv3+ (Chen, Zhu, Papandreou, Schroff, Adam, ECCV 2018) as a Keras functional model.

    image -> backbone {4: low-level, OS: encoder output}
          -> ASPP on the encoder output (deeplab_tf.aspp)
          -> decoder: low-level features -> 1x1 conv 48 (+BN+ReLU) ("feature_projection0");
             ASPP output bilinearly resized to the exact low-level size ("decoder_upsample");
             concat -> two 3x3 (separable) convolutions of 256 (+BN+ReLU)
             ("decoder_conv0", "decoder_conv1")
          -> 1x1 logits ("logits") -> bilinear resize to the exact input size
             ("upsample_logits", float32)

Layer names of the head are the reference's scopes (research/deeplab `model.py`).
Default: separable convolutions in ASPP and decoder, the paper's best Xception
model (Table 5: "Xception ... ASPP and decoder with separable convolution");
``separable=False`` gives plain 3x3 convolutions.

Trainable parameters, 21 classes (checked in tests/test_deeplab_model.py; the
same at OS8 and OS16, dilation changes no weight):

====================  ==========  ==========  ===========
backbone              separable   plain       encoder only
====================  ==========  ==========  ===========
xception65            41,055,413  54,711,461  37,867,312
resnet50              26,722,693  40,378,741  23,534,592
resnet101             45,740,933  59,396,981  42,552,832
mobilenetv2 (1.0)      2,725,573   5,821,813   1,811,712
mobilenetv2 (0.35)       886,357   2,711,509     250,208
====================  ==========  ==========  ===========

Head = ASPP + decoder + logits. Separable, on a C-channel encoder output and an
L-channel low-level tap: image pooling C*256 + 512, aspp0 C*256 + 512, three
separable branches 3 * (9C + 2C + C*256 + 512), projection 1280*256 + 512,
feature_projection0 L*48 + 96, decoder_conv0 9*304 + 608 + 304*256 + 512,
decoder_conv1 9*256 + 512 + 256*256 + 512, logits 256*21 + 21. With C = 2048,
L = 256 (Xception, ResNet): 3,019,776 + 162,928 + 5,397 = 3,188,101; Xception-65
37,867,312 + 3,188,101 = 41,055,413, exactly the figure computed from the TF
research/deeplab definition. MobileNetV2: C = 320 (alpha 1) or 112 (alpha
0.35), L = 144 (6 x 24) or 48 (6 x 8), heads of 913,861 and 636,149. Plain 3x3
convolutions replace each separable branch by 9*C*256 + 512 and the decoder
convolutions by 9*304*256 + 512 and 9*256*256 + 512.

The model zoo's MobileNetV2 models are DeepLabv3 (``decoder=False``, logits
on the ASPP output) with ASPP of image pooling + 1x1 only (``atrous_rates=()``)
and research/deeplab's width (``depth_multiplier``, see `deeplab_tf.mobilenet`):
697,013 trainable parameters at depth multiplier 0.5 and 2,113,557 at 1.0, 21
classes (tests/test_deeplab_zoo_options.py, from the reference's variable
shapes, which the published TFLite file has: tests/test_deeplab_convert.py).
`deeplab_tf.convert` loads their published weights.

Input size: any H x W gives logits of exactly H x W (dynamic shapes throughout);
the reference works best with H, W of the form OS*k + 1 (VOC's 513).
"""

import logging
import os
import warnings

import keras
import tensorflow as tf

from deeplab_tf.aspp import ResizeBilinear, aspp, conv_bn_relu, separable_conv_bn_relu
from deeplab_tf.mobilenet import SKIPPED_LAYERS, mobilenet_v2
from deeplab_tf.resnet import (
    APPLICATIONS,
    copy_weights_by_name,
    keras_application,
    resnet50,
    resnet101,
)
from deeplab_tf.xception import xception65
from segcore.errors import ConfigError
from segcore.imagenet import IMAGENET_MEAN_BGR

log = logging.getLogger(__name__)

BACKBONES = {
    "xception65": xception65,
    "resnet50": resnet50,
    "resnet101": resnet101,
    "mobilenetv2": mobilenet_v2,
}
OUTPUT_STRIDES = (8, 16)
# ASPP rates per output stride (DeepLabv3 section 3.3: doubled at OS8).
ATROUS_RATES = {16: (6, 12, 18), 8: (12, 24, 36)}
# Backbones whose keras.applications counterpart has ImageNet weights.
IMAGENET_BACKBONES = ("resnet50", "resnet101", "mobilenetv2")

BATCH_NORM_WARNING = (
    "batch normalisation statistics will be trained on a per-replica batch of {n}: "
    "each BatchNormalization layer normalises every image by its own statistics, so "
    "the moving averages used at evaluation do not match training. This is the classic "
    "cause of DeepLab runs that train fine and evaluate at mIoU ~0.004 (every pixel one "
    "class). Use a larger per-replica batch, sync_batch_norm=True under a strategy with "
    "several replicas, or freeze_batch_norm=True (fine-tuning from trained statistics)."
)


def build_deeplabv3plus(num_classes=21, backbone="xception65", output_stride=16,
                        input_shape=(None, None, 3), weights=None, separable=True,
                        multi_grid: tuple[int, ...] = None, alpha=1.0,
                        atrous_rates: tuple[int, ...] = None, dropout=0.1,
                        sync_batch_norm=False, freeze_batch_norm=False,
                        batch_norm_momentum: float = None, name=None, decoder=True,
                        depth_multiplier: float = None):
    """Build DeepLabv3+ as a Keras functional model.

    Args:
      num_classes: number of output classes.
      backbone: "xception65", "resnet50", "resnet101" or "mobilenetv2".
      output_stride: 16 or 8 (atrous convolution replaces the last strides).
      input_shape: (H, W, 3); H and W may be None. Inputs are preprocessed
        images (`deeplab_tf.preprocess_input`).
      weights: None (random initialisation), "imagenet" (keras.applications
        ImageNet weights for resnet50, resnet101, mobilenetv2; from the Keras
        cache, downloaded if missing) or the path of a keras.applications weights
        file of that backbone (include_top=False).
      separable: atrous separable convolutions in ASPP and decoder (default, the
        paper's best model) or plain 3x3 convolutions.
      multi_grid: unit rates of the last block (default (1, 2, 4) for ResNet,
        (1, 1, 1) for Xception as the reference; MobileNetV2 has none).
      alpha: MobileNetV2 width multiplier.
      atrous_rates: ASPP rates; default (6, 12, 18) at OS16, (12, 24, 36) at OS8;
        () builds ASPP without atrous branches (image pooling + 1x1 `aspp0` only, as
        research/deeplab's MobileNetV2 models, `atrous_rates` flag unset).
      dropout: rate of the dropout after the ASPP projection (reference 0.1).
      sync_batch_norm: BatchNormalization(synchronized=True): statistics over all
        replicas of a tf.distribute strategy (the global batch).
      freeze_batch_norm: every BatchNormalization layer non-trainable: moving
        statistics are used and not updated, gamma and beta are fixed (the
        paper's "freeze batch normalization parameters" for fine-tuning at OS8).
        The reference code (`fine_tune_batch_norm=False`) freezes the statistics
        but leaves gamma and beta trainable; Keras' `trainable=False` fixes both.
      batch_norm_momentum: moving-average momentum of every BN layer; default the
        reference's decays (Xception and head 0.9997, ResNet and MobileNetV2 0.997).
      decoder: the DeepLabv3+ decoder (default); False gives DeepLabv3: logits on the
        ASPP output, resized to the input (the reference with `decoder_output_stride`
        unset, as its MobileNetV2 model-zoo models).
      depth_multiplier: MobileNetV2 width as research/deeplab's `--depth_multiplier`
        (model zoo: 1.0 and 0.5), with its channel rounding (`deeplab_tf.mobilenet`);
        instead of `alpha`, which rounds as keras.applications.
    Returns:
      keras.Model from images to logits [batch, H, W, num_classes], float32 even
      under a mixed precision policy.
    """
    if backbone not in BACKBONES:
        raise ConfigError(f"backbone must be one of {', '.join(BACKBONES)}; got {backbone!r}")
    if output_stride not in OUTPUT_STRIDES:
        raise ConfigError(f"output_stride must be 8 or 16; got {output_stride!r}")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"num_classes must be a positive integer; got {num_classes!r}")
    if len(input_shape) != 3 or input_shape[-1] != 3:
        raise ConfigError(f"input_shape must be (height, width, 3); got {tuple(input_shape)}")
    minimum = output_stride + 1
    for size in input_shape[:2]:
        if size is not None and size < minimum:
            raise ConfigError(
                f"input_shape {tuple(input_shape)} is too small for output_stride "
                f"{output_stride}: height and width must be at least {minimum} (an encoder "
                "output of at least 2 x 2), or None"
            )
    if weights is not None and backbone not in IMAGENET_BACKBONES:
        raise ConfigError(
            f"weights={weights!r} is not available for backbone {backbone!r}: keras.applications "
            f"has no {backbone} (ImageNet weights exist for {', '.join(IMAGENET_BACKBONES)}); "
            "use weights=None"
        )
    if weights is not None and weights != "imagenet" and not os.path.isfile(str(weights)):
        raise ConfigError(f"weights: no weights file at {weights}")
    if backbone == "mobilenetv2" and multi_grid is not None:
        raise ConfigError(
            "multi_grid applies to resnet50, resnet101 and xception65, not mobilenetv2")
    if backbone != "mobilenetv2" and alpha != 1.0:
        raise ConfigError(
            f"alpha (width multiplier) applies to mobilenetv2 only; got alpha={alpha!r}")
    if depth_multiplier is not None and backbone != "mobilenetv2":
        raise ConfigError(f"depth_multiplier applies to mobilenetv2 only; got "
                          f"depth_multiplier={depth_multiplier!r} for backbone {backbone!r}")
    if depth_multiplier is not None and weights is not None and depth_multiplier != 1.0:
        raise ConfigError(f"weights={weights!r}: keras.applications MobileNetV2 weights fit "
                          f"alpha widths, not depth_multiplier={depth_multiplier!r} (use alpha)")
    if not isinstance(decoder, bool):
        raise ConfigError(f"decoder must be true or false; got {decoder!r}")
    if not 0.0 <= dropout < 1.0:
        raise ConfigError(f"dropout must be in [0, 1); got {dropout!r}")
    rates = tuple(atrous_rates) if atrous_rates is not None else ATROUS_RATES[output_stride]
    if len(rates) not in (0, 3) or any(
            isinstance(r, bool) or not isinstance(r, int) or r < 1 for r in rates):
        raise ConfigError(f"atrous_rates must be 3 positive integer rates, or () for none; "
                          f"got {atrous_rates!r}")

    backbone_kwargs = {"output_stride": output_stride, "synchronized": sync_batch_norm}
    if batch_norm_momentum is not None:
        backbone_kwargs["momentum"] = batch_norm_momentum
    if backbone == "mobilenetv2":
        backbone_kwargs["alpha"] = alpha
        if depth_multiplier is not None:
            backbone_kwargs["depth_multiplier"] = depth_multiplier
    else:
        backbone_kwargs["multi_grid"] = multi_grid
    head_bn = {"synchronized": sync_batch_norm}
    if batch_norm_momentum is not None:
        head_bn["momentum"] = batch_norm_momentum

    # The ImageNet source first: a missing or bad weights file fails before the build.
    source = None
    if weights is not None:
        if backbone == "mobilenetv2":
            source = keras_application("MobileNetV2", weights,
                                       alpha=alpha if depth_multiplier is None else 1.0)
        else:
            source = keras_application(APPLICATIONS[50 if backbone == "resnet50" else 101], weights)

    image = keras.Input(input_shape, name="image")
    taps = BACKBONES[backbone](image, **backbone_kwargs)
    x = aspp(taps[output_stride], rates=rates, separable=separable, dropout=dropout, bn=head_bn)
    if decoder:
        low_level = conv_bn_relu(taps[4], 48, 1, "feature_projection0", bn=head_bn)
        x = ResizeBilinear(name="decoder_upsample")([x, low_level])
        x = keras.layers.Concatenate(name="decoder_concat")([x, low_level])
        for i in range(2):
            if separable:
                x = separable_conv_bn_relu(x, 256, f"decoder_conv{i}", bn=head_bn)
            else:
                x = conv_bn_relu(x, 256, 3, f"decoder_conv{i}", bn=head_bn)
    x = keras.layers.Conv2D(
        num_classes, 1, kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.01),
        name="logits",
    )(x)
    # float32 logits under mixed precision: softmax, loss and metrics stay float32.
    logits = ResizeBilinear(name="upsample_logits", dtype="float32")([x, image])
    default_name = f"deeplabv3plus_{backbone}" if decoder else f"deeplabv3_{backbone}"
    model = keras.Model(image, logits, name=name or default_name)

    if source is not None:
        skip = SKIPPED_LAYERS if backbone == "mobilenetv2" else ()
        copied = copy_weights_by_name(source, model, skip=skip)
        log.info("copied %d layers of %s into %s", len(copied), source.name, model.name)
    if freeze_batch_norm:
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False
    return model


def preprocess_input(images, backbone="xception65"):
    """Images in [0, 255] (RGB) -> the input range of `backbone`'s weights.

    xception65, mobilenetv2: [-1, 1] (research/deeplab `_preprocess_zero_mean_unit_range`,
    keras.applications.mobilenet_v2); resnet50/101: BGR minus the ImageNet mean
    (keras.applications.resnet, "caffe" mode).
    """
    if backbone not in BACKBONES:
        raise ConfigError(f"backbone must be one of {', '.join(BACKBONES)}; got {backbone!r}")
    images = tf.cast(images, tf.float32)
    if backbone.startswith("resnet"):
        return images[..., ::-1] - tf.constant(IMAGENET_MEAN_BGR)
    return images / 127.5 - 1.0


def batch_norm_batch(per_replica_batch, num_replicas=1, sync_batch_norm=False):
    """Number of images each BatchNormalization layer computes its statistics on."""
    return per_replica_batch * num_replicas if sync_batch_norm else per_replica_batch


def check_batch_norm_batch(per_replica_batch, num_replicas=1, sync_batch_norm=False,
                           freeze_batch_norm=False):
    """Warn when batch-norm statistics are trained on one image per replica.

    Returns the batch the statistics are computed on (per replica, or global with
    `sync_batch_norm`). Issues a UserWarning (and logs it) when that batch is 1
    and batch norm is not frozen.
    """
    if not isinstance(per_replica_batch, int) or per_replica_batch < 1:
        raise ConfigError(
            f"per_replica_batch must be a positive integer; got {per_replica_batch!r}")
    statistics_batch = batch_norm_batch(per_replica_batch, num_replicas, sync_batch_norm)
    if statistics_batch == 1 and not freeze_batch_norm:
        message = BATCH_NORM_WARNING.format(n=statistics_batch)
        log.warning(message)
        warnings.warn(message, UserWarning, stacklevel=2)
    return statistics_batch
