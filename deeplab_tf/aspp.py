"""Atrous Spatial Pyramid Pooling and the convolution blocks of DeepLab's head.

ASPP (DeepLabv3, section 3.3; DeepLabv3+, section 3.1) on the encoder output of
stride OS: five parallel branches of 256 channels, each followed by batch
normalisation and ReLU, concatenated (1280 channels) and projected by a 1x1
convolution to 256 (+BN+ReLU), then dropout 0.1 (the reference's keep_prob 0.9):

* `image_pooling`: global average pooling -> 1x1 conv -> BN -> ReLU -> bilinear
  resize back to the feature size. The size is read at run time, so one model
  serves any input size (the reference pools a window fixed by `crop_size`).
* `aspp0`: 1x1 convolution.
* `aspp1`..`aspp3`: 3x3 convolutions of atrous rates 6/12/18 at OS16 and
  12/24/36 at OS8, either plain or atrous *separable* (depthwise 3x3 -> BN ->
  ReLU -> pointwise 1x1 -> BN -> ReLU: `_split_separable_conv2d` of the
  reference, which puts BN and ReLU after the depthwise convolution).
  With ``rates=()`` these are not built: image pooling and `aspp0` only (512
  channels into the projection), research/deeplab's MobileNetV2 configuration.

Layer names are the reference's variable scopes (research/deeplab `model.py`:
`image_pooling`, `aspp0`, `aspp1_depthwise`, `aspp1_pointwise`, ...,
`concat_projection`) with `_bn` / `_relu` suffixes for slim's BatchNorm and
activation. Initialisers are the reference's too: truncated normal of stddev
0.33 (depthwise) and 0.06 (pointwise) in separable convolutions, Glorot uniform
(slim's default) elsewhere. Batch norm: momentum 0.9997, epsilon 1e-5.

`ResizeBilinear` is the bilinear resize of the reference, `align_corners=True`:
the encoders pad explicitly (pixel i of a stride-s map is centred on input pixel
s*i), so for sizes s*k + 1 (VOC's 513) corner alignment is exact.
"""

import keras
import tensorflow as tf

from deeplab_tf.atrous import conv2d

HEAD_BN_MOMENTUM = 0.9997
HEAD_BN_EPSILON = 1e-5


@keras.saving.register_keras_serializable(package="deeplab_tf")
class ResizeBilinear(keras.layers.Layer):
    """Bilinear resize of `inputs[0]` to the height and width of `inputs[1]`.

    The size is taken with `tf.shape` at run time, so it works for inputs of any
    size in one model and in a SavedModel with a dynamic signature.
    `align_corners=True` as the reference (`tf.image.resize_bilinear(...,
    align_corners=True)`); False gives TF2's half-pixel centres.
    """

    def __init__(self, align_corners=True, **kwargs):
        super().__init__(**kwargs)
        self.align_corners = align_corners

    def call(self, inputs):
        x, reference = inputs
        size = tf.shape(reference)[1:3]
        resized = tf.raw_ops.ResizeBilinear(
            images=x, size=size, align_corners=self.align_corners,
            half_pixel_centers=not self.align_corners,
        )
        return tf.cast(resized, self.compute_dtype)

    def compute_output_shape(self, input_shapes):
        x_shape, ref_shape = input_shapes
        return (x_shape[0], ref_shape[1], ref_shape[2], x_shape[3])

    def get_config(self):
        return {**super().get_config(), "align_corners": self.align_corners}


@keras.saving.register_keras_serializable(package="deeplab_tf")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` whose training step runs TensorFlow's fused
    kernel (`FusedBatchNormV3` and its gradient, oneDNN's on CPU) instead of Keras 3's
    composite of moments and element-wise ops.

    Same weights (gamma, beta, moving mean and variance), same outputs and moving-average
    updates within float rounding (tests/test_deeplab_speed_equivalence.py): the kernel
    normalises with the biased batch variance, as Keras; the variance it returns is
    Bessel-corrected, so it is scaled back by (n - 1) / n before the moving average is
    updated with Keras's formula. Statistics are float32 also under mixed precision (the
    kernel's U type), as Keras computes them; the bfloat16 input is not upcast first
    (the kernel does it, faster than a Cast op). Keras 3's layer spends ~40 % of a DeepLab
    training step in its ~15 small kernels per layer (benchmarks/profile_step.py).

    Inference (and frozen layers), masks, renorm, `synchronized=True` and inputs other than
    channels-last 4-D keep Keras's own code path.
    """

    # False: Keras's own code path everywhere (the benchmarks' "before" baseline).
    fused = True

    def _fused_applies(self, inputs, training, mask):
        return (self.fused and training and self.trainable and mask is None and not self.renorm
                and not self.synchronized and self.scale and self.center
                and len(inputs.shape) == 4 and self.axis in (-1, 3)
                and inputs.dtype in (tf.float32, tf.bfloat16, tf.float16))

    def call(self, inputs, training=None, mask=None):
        if not self._fused_applies(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        empty = tf.constant([], tf.float32)
        outputs, mean, variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
            x=inputs, scale=tf.cast(self.gamma, tf.float32), offset=tf.cast(self.beta, tf.float32),
            mean=empty, variance=empty, epsilon=self.epsilon, exponential_avg_factor=1.0,
            data_format="NHWC", is_training=True)
        shape = tf.shape(inputs)
        count = tf.cast(shape[0] * shape[1] * shape[2], tf.float32)
        # The kernel returns the unbiased variance (n / (n - 1), or 1 when n == 1).
        variance = variance * tf.where(count > 1.0, (count - 1.0) / tf.maximum(count, 1.0), 1.0)
        momentum = self.momentum
        self.moving_mean.assign(self.moving_mean * momentum + mean * (1.0 - momentum))
        self.moving_variance.assign(self.moving_variance * momentum + variance * (1.0 - momentum))
        return tf.cast(outputs, self.compute_dtype)


def batch_norm(name, momentum=HEAD_BN_MOMENTUM, epsilon=HEAD_BN_EPSILON, synchronized=False):
    """A batch normalisation layer (`FusedBatchNormalization`); `synchronized` averages
    statistics over replicas."""
    return FusedBatchNormalization(
        momentum=momentum, epsilon=epsilon, synchronized=synchronized, name=name
    )


def conv_bn_relu(x, filters, kernel_size, name, rate=1, bn=None):
    """Convolution (no bias) -> BN -> ReLU, named `name`, `name_bn`, `name_relu`."""
    bn = bn or {}
    x = conv2d(filters, kernel_size, padding="same", dilation_rate=rate, use_bias=False,
               name=name)(x)
    x = batch_norm(f"{name}_bn", **bn)(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def separable_conv_bn_relu(x, filters, name, rate=1, bn=None):
    """The reference's `_split_separable_conv2d`: depthwise 3x3 -> BN -> ReLU ->
    pointwise 1x1 -> BN -> ReLU (layers `name_depthwise`, `name_pointwise`, ...)."""
    bn = bn or {}
    x = keras.layers.DepthwiseConv2D(
        3, padding="same", dilation_rate=rate, use_bias=False,
        depthwise_initializer=keras.initializers.TruncatedNormal(stddev=0.33),
        name=f"{name}_depthwise",
    )(x)
    x = batch_norm(f"{name}_depthwise_bn", **bn)(x)
    x = keras.layers.ReLU(name=f"{name}_depthwise_relu")(x)
    x = keras.layers.Conv2D(
        filters, 1, use_bias=False,
        kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.06),
        name=f"{name}_pointwise",
    )(x)
    x = batch_norm(f"{name}_pointwise_bn", **bn)(x)
    return keras.layers.ReLU(name=f"{name}_pointwise_relu")(x)


def aspp(features, rates=(6, 12, 18), filters=256, separable=True, dropout=0.1, bn=None):
    """Apply ASPP with image-level pooling to `features`; return the projected tensor.

    `bn`: keyword arguments of `batch_norm` (momentum, epsilon, synchronized).
    """
    bn = {"momentum": HEAD_BN_MOMENTUM, "epsilon": HEAD_BN_EPSILON, **(bn or {})}
    pooled = keras.layers.GlobalAveragePooling2D(keepdims=True, name="image_pooling_gap")(features)
    pooled = conv_bn_relu(pooled, filters, 1, "image_pooling", bn=bn)
    branches = [ResizeBilinear(name="image_pooling_resize")([pooled, features])]
    branches.append(conv_bn_relu(features, filters, 1, "aspp0", bn=bn))
    for i, rate in enumerate(rates, start=1):
        if separable:
            branches.append(separable_conv_bn_relu(features, filters, f"aspp{i}", rate=rate, bn=bn))
        else:
            branches.append(conv_bn_relu(features, filters, 3, f"aspp{i}", rate=rate, bn=bn))
    x = keras.layers.Concatenate(name="aspp_concat")(branches)
    x = conv_bn_relu(x, filters, 1, "concat_projection", bn=bn)
    return keras.layers.Dropout(dropout, name="concat_projection_dropout")(x)
