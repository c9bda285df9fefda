"""Atrous and depthwise separable convolution arithmetic (DeepLab v2/v3+, MobileNets).

Both are topics of seed 001 (the Korean semantic-segmentation lecture notes, SOURCES.md):

* Atrous (dilated) convolution with rate r inserts r - 1 zeros between kernel
  taps: a k x k kernel covers ``k + (k - 1)(r - 1)`` pixels per side with the
  same k*k weights (`effective_kernel_size`). `receptive_field` stacks layers
  (kernel, stride, rate): RF = 1 + sum_l (k_l_eff - 1) * prod_{m<l} s_m.
  `measured_receptive_field` finds it from a Keras layer's impulse response.
* Depthwise separable convolution (Howard et al. 2017), seed 001's notation:
  D_K kernel size, M input channels, N output channels, D_F output size.
  Standard: D_K^2 M N weights, D_K^2 M N D_F^2 multiply-adds; separable:
  D_K^2 M + M N weights, D_K^2 M D_F^2 + M N D_F^2 multiply-adds (no biases).
  `keras_conv_parameters` counts the same on real Keras layers.
"""

import numpy as np

from segcore.errors import ConfigError


def _positive(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def effective_kernel_size(kernel_size, rate=1):
    """Pixels per side covered by a `kernel_size` kernel at atrous `rate`."""
    kernel_size, rate = _positive("kernel_size", kernel_size), _positive("rate", rate)
    return kernel_size + (kernel_size - 1) * (rate - 1)


def receptive_field(layers):
    """Receptive field (pixels per side) of stacked layers [(kernel, stride, rate), ...]."""
    field, jump = 1, 1
    for index, spec in enumerate(layers):
        if len(spec) not in (2, 3):
            raise ConfigError(f"layer {index}: expected (kernel, stride[, rate]), got {spec!r}")
        kernel, stride, rate = (tuple(spec) + (1,))[:3]
        field += (effective_kernel_size(kernel, rate) - 1) * jump
        jump *= _positive("stride", stride)
    return field


def measured_receptive_field(layer, size=65):
    """Pixels per side of `layer`'s response to a centred impulse (one channel in, any out).

    The layer must take [1, size, size, 1] inputs; its weights are set to ones
    (biases to zero) on a copy of its configuration, so the extent is not
    hidden by weights that happen to be zero.
    """
    import keras

    size = _positive("size", size)
    probe = type(layer).from_config(layer.get_config())
    probe.build((1, size, size, 1))
    probe.set_weights([np.ones(w.shape, np.float32) if w.ndim > 1 else np.zeros(w.shape, np.float32)
                       for w in probe.get_weights()])
    impulse = np.zeros((1, size, size, 1), np.float32)
    impulse[0, size // 2, size // 2, 0] = 1.0
    response = np.abs(keras.ops.convert_to_numpy(probe(impulse))).sum(axis=(0, -1))
    rows, cols = np.nonzero(response)
    if rows.size == 0:
        return 0
    return int(max(rows.max() - rows.min(), cols.max() - cols.min()) + 1)


def conv_parameters(kernel_size, in_channels, out_channels):
    """D_K^2 M N: weights of a standard convolution (no bias)."""
    return (_positive("kernel_size", kernel_size) ** 2 * _positive("in_channels", in_channels)
            * _positive("out_channels", out_channels))


def separable_conv_parameters(kernel_size, in_channels, out_channels):
    """D_K^2 M + M N: depthwise then pointwise weights (no bias)."""
    k, m = _positive("kernel_size", kernel_size), _positive("in_channels", in_channels)
    return k * k * m + m * _positive("out_channels", out_channels)


def conv_cost(kernel_size, in_channels, out_channels, feature_size):
    """D_K^2 M N D_F^2 multiply-adds of a standard convolution."""
    return conv_parameters(kernel_size, in_channels, out_channels) * _positive(
        "feature_size", feature_size) ** 2


def separable_conv_cost(kernel_size, in_channels, out_channels, feature_size):
    """D_K^2 M D_F^2 + M N D_F^2 multiply-adds of a depthwise separable convolution."""
    return separable_conv_parameters(kernel_size, in_channels, out_channels) * _positive(
        "feature_size", feature_size) ** 2


def keras_conv_parameters(kernel_size, in_channels, out_channels, separable=False, rate=1,
                          input_size=8):
    """(parameters, output [H, W, C]) of a Keras Conv2D / SeparableConv2D without bias,
    'same' padding, built on an [input_size, input_size, in_channels] input."""
    import keras

    cls = keras.layers.SeparableConv2D if separable else keras.layers.Conv2D
    layer = cls(_positive("out_channels", out_channels), _positive("kernel_size", kernel_size),
                padding="same", dilation_rate=_positive("rate", rate), use_bias=False)
    output = layer(np.zeros((1, input_size, input_size, _positive("in_channels", in_channels)),
                            np.float32))
    return int(layer.count_params()), tuple(output.shape[1:])
