"""Upsampling layers of the FCN family.

`bilinear_kernel` is the exact filter of the FCN reference code
(`surgery.upsample_filt` in shelhamer/fcn.berkeleyvision.org)::

    factor = (k + 1) // 2
    center = factor - 1 if k odd else factor - 0.5
    w[y, x] = (1 - |x - center| / factor) * (1 - |y - center| / factor)

placed on matching class channels only (input channel c -> output channel c),
so that a transposed convolution of kernel 2f and stride f starts as bilinear
interpolation.

`ResizeConv2D` is the resize-then-convolve alternative of Odena et al.,
"Deconvolution and Checkerboard Artifacts" (Distill 2016), which seed 001 (the Korean
semantic-segmentation lecture notes, SOURCES.md) recommends against the checkerboard
pattern of strided transposed convolutions.
"""

import keras
import numpy as np
import tensorflow as tf


def bilinear_kernel(size):
    """2-D bilinear filter of `size` x `size` (float64), as in the FCN reference."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    og = np.ogrid[:size, :size]
    return (1 - abs(og[0] - center) / factor) * (1 - abs(og[1] - center) / factor)


def bilinear_transpose_weights(size, channels):
    """Kernel for `keras.layers.Conv2DTranspose`: shape (size, size, out, in).

    Channel c of the input feeds channel c of the output only.
    """
    weights = np.zeros((size, size, channels, channels), dtype=np.float32)
    kernel = bilinear_kernel(size)
    for c in range(channels):
        weights[:, :, c, c] = kernel
    return weights


@keras.saving.register_keras_serializable(package="segcore")
class BilinearTransposeInitializer(keras.initializers.Initializer):
    """Initialises a Conv2DTranspose kernel (k, k, C, C) as bilinear upsampling."""

    def __call__(self, shape, dtype=None):
        size, size2, out_channels, in_channels = shape
        if size != size2 or out_channels != in_channels:
            raise ValueError(
                "bilinear initialisation needs a square kernel and as many input as "
                f"output channels; got kernel shape {tuple(shape)}"
            )
        return keras.ops.convert_to_tensor(
            bilinear_transpose_weights(size, in_channels), dtype=dtype or "float32"
        )


@keras.saving.register_keras_serializable(package="segcore")
class IdentityConvInitializer(keras.initializers.Initializer):
    """Conv2D kernel (k, k, C, C) whose centre tap is the identity matrix."""

    def __call__(self, shape, dtype=None):
        kh, kw, in_channels, out_channels = shape
        weights = np.zeros(shape, dtype=np.float32)
        for c in range(min(in_channels, out_channels)):
            weights[kh // 2, kw // 2, c, c] = 1.0
        return keras.ops.convert_to_tensor(weights, dtype=dtype or "float32")


@keras.saving.register_keras_serializable(package="segcore")
class ResizeConv2D(keras.layers.Layer):
    """Resize by `factor` (bilinear or nearest), then a `kernel_size` convolution.

    Output size is exactly `factor` times the input size, like a 'same'
    transposed convolution of stride `factor`, without its uneven overlap.
    """

    def __init__(self, filters, factor, kernel_size=3, method="bilinear",
                 use_bias=False, **kwargs):
        super().__init__(**kwargs)
        if method not in ("bilinear", "nearest"):
            raise ValueError(f"method must be 'bilinear' or 'nearest', got {method!r}")
        self.filters = filters
        self.factor = factor
        self.kernel_size = kernel_size
        self.method = method
        self.use_bias = use_bias
        # Starts as the identity on matching channels: the layer is a plain resize
        # until training changes it (the analogue of the bilinear initialisation).
        self.conv = keras.layers.Conv2D(
            filters, kernel_size, padding="same", use_bias=use_bias, name="conv",
            kernel_initializer=IdentityConvInitializer(), dtype=self.dtype_policy,
        )

    def build(self, input_shape):
        self.conv.build(input_shape)

    def call(self, inputs):
        shape = tf.shape(inputs)
        resized = tf.image.resize(
            inputs, [shape[1] * self.factor, shape[2] * self.factor], method=self.method
        )
        return self.conv(resized)

    def compute_output_shape(self, input_shape):
        b, h, w, _ = input_shape
        scale = lambda n: None if n is None else n * self.factor  # noqa: E731
        return (b, scale(h), scale(w), self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters, factor=self.factor, kernel_size=self.kernel_size,
            method=self.method, use_bias=self.use_bias,
        )
        return config


# --------------------------------------------------------------------------- demonstrations
# (notebooks/03_upsampling_checkerboard.ipynb; tests/test_upsampling_demos.py)

DECODER_KINDS = ("transpose", "nearest", "bilinear")


def transposed_convolution(values, kernel, stride, bias=0.0, padding="valid"):
    """2-D array through `keras.layers.Conv2DTranspose` with one fixed kernel.

    values: [h, w]; kernel: [k, k] (a scalar is a 1x1 kernel). The example of seed 002
    (the Korean U-Net lecture notes, SOURCES.md) is
    ``transposed_convolution([[1, 2], [3, 4]], 1, 2, bias=1)``.
    Returns the float32 [H, W] output (H = h * stride + max(k - stride, 0) for "valid").
    """
    values = np.asarray(values, np.float32)
    kernel = np.atleast_2d(np.asarray(kernel, np.float32))
    if values.ndim != 2 or kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1]:
        raise ValueError(
            f"values must be [h, w] and kernel [k, k]; got {values.shape}, {kernel.shape}")
    layer = keras.layers.Conv2DTranspose(1, kernel.shape[0], strides=stride, padding=padding)
    layer.build((1,) + values.shape + (1,))
    layer.set_weights([kernel[:, :, None, None], np.asarray([bias], np.float32)])
    return keras.ops.convert_to_numpy(layer(values[None, :, :, None]))[0, :, :, 0]


def resize_upsample(values, factor, method="nearest"):
    """2-D array (or [h, w, C]) resized by `factor` with `keras.layers.UpSampling2D`."""
    values = np.asarray(values, np.float32)
    squeeze = values.ndim == 2
    batch = values[None, :, :, None] if squeeze else values[None]
    out = keras.ops.convert_to_numpy(
        keras.layers.UpSampling2D(factor, interpolation=method)(batch))[0]
    return out[..., 0] if squeeze else out


def random_decoder(kind, stages=3, channels=8, kernel_size=3, seed=0):
    """A decoder of `stages` 2x upsampling layers, each followed by a ReLU, with random
    He-normal weights and zero biases, for looking at checkerboard artifacts:

    * "transpose": `Conv2DTranspose(channels, kernel_size, strides=2, padding="same")`
      (kernel 3, stride 2 overlaps unevenly);
    * "nearest" / "bilinear": `ResizeConv2D` (resize, then a 'same' convolution).

    Returns a keras.Sequential from [B, h, w, channels] to [B, h * 2**stages, ...].
    """
    if kind not in DECODER_KINDS:
        raise ValueError(f"kind must be one of {', '.join(DECODER_KINDS)}, got {kind!r}")
    rng = np.random.default_rng(seed)
    model = keras.Sequential(name=f"decoder_{kind}")
    model.add(keras.Input((None, None, channels)))
    for stage in range(stages):
        if kind == "transpose":
            model.add(keras.layers.Conv2DTranspose(channels, kernel_size, strides=2,
                                                   padding="same", name=f"up{stage}"))
        else:
            model.add(ResizeConv2D(channels, 2, kernel_size, method=kind, use_bias=True,
                                   name=f"up{stage}"))
        model.add(keras.layers.ReLU(name=f"relu{stage}"))
    fan_in = kernel_size * kernel_size * channels
    for layer in model.layers:
        weights = layer.get_weights()
        if weights:
            layer.set_weights([rng.normal(0.0, np.sqrt(2.0 / fan_in), w.shape).astype(np.float32)
                               if w.ndim > 1 else np.zeros(w.shape, np.float32) for w in weights])
    return model
