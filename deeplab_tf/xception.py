"""Modified aligned Xception-65, as TF research/deeplab `core/xception.py` (`xception_65`).

DeepLabv3+ section 3.2 (after MSRA's COCO 2017 "aligned Xception"): a deeper
middle flow (16 units instead of 8), every max pooling replaced by a stride-2
depthwise separable convolution (so atrous convolution can replace any stride),
and batch normalisation after every depthwise convolution.

Structure (depths per unit, `skip` = the residual shortcut)::

    entry_flow_conv1_1      3x3 conv 32, stride 2            + BN + ReLU
    entry_flow_conv1_2      3x3 conv 64                      + BN + ReLU
    entry_flow_block1       [128, 128, 128]  stride 2, skip 1x1 conv (+BN)
    entry_flow_block2       [256, 256, 256]  stride 2, skip 1x1 conv (+BN)
    entry_flow_block3       [728, 728, 728]  stride 2, skip 1x1 conv (+BN)
    middle_flow_block1      16 x [728, 728, 728]      skip identity
    exit_flow_block1        [728, 1024, 1024] stride 2, skip 1x1 conv (+BN)
    exit_flow_block2        [1536, 1536, 2048]        no skip, ReLU inside

Each unit is three separable convolutions, the last one carrying the unit's
stride. As in the reference (`xception_module`, `activation_fn_in_separable_conv`):

* entry/middle flow and `exit_flow_block1`: ReLU -> depthwise 3x3 -> BN ->
  pointwise 1x1 -> BN (pre-activation, the original Xception order, with the
  added BN after the depthwise convolution but *no* ReLU there);
* `exit_flow_block2`: depthwise -> BN -> ReLU -> pointwise -> BN -> ReLU.

The paper's text says "batch normalization and ReLU are added after each 3x3
depthwise convolution"; the reference code (and its released checkpoints) adds
the ReLU only in `exit_flow_block2`, elsewhere the ReLU stays in front of the
separable convolution. This module follows the code. Parameter counts do not
depend on where the ReLU sits.

Output stride (`stack_blocks_dense`): once the running stride equals
`output_stride`, a unit that would stride runs at stride 1 with the current
rate, and the rate of every later unit is multiplied by that stride: at OS16
`exit_flow_block1` has stride 1 and `exit_flow_block2` rate 2; at OS8
`entry_flow_block3` has stride 1, the middle flow and `exit_flow_block1` rate 2,
`exit_flow_block2` rate 4. `multi_grid` multiplies the three rates of
`exit_flow_block2` (reference default (1, 1, 1)).

Padding: the reference's `use_explicit_padding=True`. A stride-2 convolution
first zero-pads the input by (k_eff - 1) // 2 before and the rest after
(`fixed_padding`), then runs 'valid'; stride-1 convolutions use 'same'. Every
stride-2 layer maps n pixels to ceil(n / 2), and pixel i of a stride-s map is
centred on input pixel s * i for any input size, odd or even (TF's 'same'
padding at stride 2 pads only after the input when n is even, which shifts the
features by one pixel; the reference's comment calls it a misalignment).

Taps: ``{4: entry_flow_block2 unit 1 separable_conv2 pointwise (+BN), 256
channels; output_stride: exit flow output, 2048 channels}``; the stride-4 tap is
the reference's decoder end point
`entry_flow/block2/unit_1/xception_module/separable_conv2_pointwise`.

Layer names are the reference's variable scopes with "/" -> "_", without the
`xception_65/` and `xception_module/` levels; `BatchNorm` -> `_bn`.
Initialisers: truncated normal, stddev 0.09 (`xception_arg_scope`); batch norm
momentum 0.9997, epsilon 1e-3 (`feature_extractor.extract_features`).

Trainable parameters: 37,867,312 (convolutions without biases, BN gamma and
beta), as the reference.
"""

import keras

from deeplab_tf.aspp import batch_norm
from segcore.errors import ConfigError

BN_MOMENTUM = 0.9997
BN_EPSILON = 1e-3

# (scope, depth_list, skip connection, ReLU inside the separable convs, units, stride)
XCEPTION65_BLOCKS = (
    ("entry_flow_block1", (128, 128, 128), "conv", False, 1, 2),
    ("entry_flow_block2", (256, 256, 256), "conv", False, 1, 2),
    ("entry_flow_block3", (728, 728, 728), "conv", False, 1, 2),
    ("middle_flow_block1", (728, 728, 728), "sum", False, 16, 1),
    ("exit_flow_block1", (728, 1024, 1024), "conv", False, 1, 2),
    ("exit_flow_block2", (1536, 1536, 2048), "none", True, 1, 1),
)
LOW_LEVEL_END_POINT = "entry_flow_block2_unit_1_separable_conv2"


def _initializer():
    return keras.initializers.TruncatedNormal(stddev=0.09)


def _fixed_padding(x, kernel_size, rate, name):
    """The reference's `fixed_padding`: pad independently of the input size."""
    effective = kernel_size + (kernel_size - 1) * (rate - 1)
    begin = (effective - 1) // 2
    end = effective - 1 - begin
    return keras.layers.ZeroPadding2D(((begin, end), (begin, end)), name=name)(x)


def _separable_conv(x, depth, stride, rate, activation, name, bn):
    """`separable_conv2d_same` split into depthwise and pointwise, each with BN."""
    if stride == 1:
        padding = "same"
    else:
        x = _fixed_padding(x, 3, rate, f"{name}_pad")
        padding = "valid"
    x = keras.layers.DepthwiseConv2D(
        3, strides=stride, padding=padding, dilation_rate=rate, use_bias=False,
        depthwise_initializer=_initializer(), name=f"{name}_depthwise",
    )(x)
    x = batch_norm(f"{name}_depthwise_bn", **bn)(x)
    if activation:
        x = keras.layers.ReLU(name=f"{name}_depthwise_relu")(x)
    x = keras.layers.Conv2D(
        depth, 1, use_bias=False, kernel_initializer=_initializer(), name=f"{name}_pointwise"
    )(x)
    x = batch_norm(f"{name}_pointwise_bn", **bn)(x)
    if activation:
        x = keras.layers.ReLU(name=f"{name}_pointwise_relu")(x)
    return x


def xception_module(x, depth_list, skip, stride, rate, unit_rates, activation_inside, name, bn,
                    end_points=None):
    """One Xception unit: three separable convolutions plus the shortcut.

    `end_points`, if given, receives each separable convolution's output under
    its name (`{name}_separable_conv{i}`), as slim's outputs collections.
    """
    inputs = x
    residual = x
    for i, depth in enumerate(depth_list):
        conv_name = f"{name}_separable_conv{i + 1}"
        if not activation_inside:
            residual = keras.layers.ReLU(name=f"{conv_name}_relu")(residual)
        residual = _separable_conv(
            residual, depth, stride if i == 2 else 1, rate * unit_rates[i],
            activation_inside, conv_name, bn,
        )
        if end_points is not None:
            end_points[conv_name] = residual
    if skip == "conv":
        shortcut = keras.layers.Conv2D(
            depth_list[-1], 1, strides=stride, use_bias=False,
            kernel_initializer=_initializer(), name=f"{name}_shortcut",
        )(inputs)
        shortcut = batch_norm(f"{name}_shortcut_bn", **bn)(shortcut)
        return keras.layers.Add(name=f"{name}_add")([residual, shortcut])
    if skip == "sum":
        return keras.layers.Add(name=f"{name}_add")([residual, inputs])
    return residual


def xception65(x, output_stride=16, multi_grid=None, synchronized=False, momentum=BN_MOMENTUM):
    """Apply Xception-65 to tensor `x`; return ``{4: low-level, output_stride: output}``.

    output_stride: 8, 16 or 32 (32: no atrous convolution, the classifier's stride).
    multi_grid: rates of the three units of `exit_flow_block2`, times the block rate.
    """
    if output_stride not in (8, 16, 32):
        raise ConfigError(
            f"output_stride must be 8, 16 or 32 for xception65; got {output_stride!r}")
    unit_rates = tuple(multi_grid) if multi_grid is not None else (1, 1, 1)
    if len(unit_rates) != 3:
        raise ConfigError(f"multi_grid must have 3 rates for xception65; got {multi_grid!r}")
    bn = {"momentum": momentum, "epsilon": BN_EPSILON, "synchronized": synchronized}

    x = _fixed_padding(x, 3, 1, "entry_flow_conv1_1_pad")
    x = keras.layers.Conv2D(
        32, 3, strides=2, use_bias=False, kernel_initializer=_initializer(),
        name="entry_flow_conv1_1",
    )(x)
    x = batch_norm("entry_flow_conv1_1_bn", **bn)(x)
    x = keras.layers.ReLU(name="entry_flow_conv1_1_relu")(x)
    x = keras.layers.Conv2D(
        64, 3, padding="same", use_bias=False, kernel_initializer=_initializer(),
        name="entry_flow_conv1_2",
    )(x)
    x = batch_norm("entry_flow_conv1_2_bn", **bn)(x)
    x = keras.layers.ReLU(name="entry_flow_conv1_2_relu")(x)

    current_stride, rate = 2, 1
    end_points = {}
    for scope, depth_list, skip, activation_inside, units, stride in XCEPTION65_BLOCKS:
        rates = unit_rates if scope == "exit_flow_block2" else (1, 1, 1)
        for unit in range(1, units + 1):
            name = f"{scope}_unit_{unit}"
            if current_stride == output_stride:
                x = xception_module(x, depth_list, skip, 1, rate, rates, activation_inside,
                                    name, bn, end_points)
                rate *= stride
            else:
                x = xception_module(x, depth_list, skip, stride, 1, rates, activation_inside,
                                    name, bn, end_points)
                current_stride *= stride
    # The stride-4 tap is inside entry_flow_block2, before its strided third conv.
    return {4: end_points[LOW_LEVEL_END_POINT], output_stride: x}

