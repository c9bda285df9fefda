"""benchmarks/flops.py counts 2 x multiply-adds of the weighted layers: golden numbers by hand."""

import importlib.util
import os

import keras
import pytest

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")


def load_flops():
    spec = importlib.util.spec_from_file_location("bench_flops",
                                                  os.path.join(BENCHMARKS, "flops.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


flops = load_flops()


def one_layer(layer, input_shape):
    inputs = keras.Input(input_shape)
    return keras.Model(inputs, layer(inputs))


def test_conv2d_3x3_8_to_16_on_10x10():
    model = one_layer(keras.layers.Conv2D(16, 3, padding="same"), (10, 10, 8))
    assert flops.forward_flops(model, (1, 10, 10, 8)) == 2 * 3 * 3 * 8 * 16 * 100
    assert flops.forward_flops(model, (2, 10, 10, 8)) == 2 * 2 * 3 * 3 * 8 * 16 * 100
    assert flops.train_flops(model, (1, 10, 10, 8)) == 3 * 2 * 3 * 3 * 8 * 16 * 100


def test_valid_strided_and_atrous_conv2d():
    # 'valid' 3x3 stride 2 on 11x11: 5x5 outputs
    model = one_layer(keras.layers.Conv2D(4, 3, strides=2), (11, 11, 8))
    assert flops.forward_flops(model, (1, 11, 11, 8)) == 2 * 3 * 3 * 8 * 4 * 25
    # atrous (rate 2) 'same' on 10x10: as many MACs as the dense 3x3
    model = one_layer(keras.layers.Conv2D(16, 3, padding="same", dilation_rate=2), (10, 10, 8))
    assert flops.forward_flops(model, (1, 10, 10, 8)) == 2 * 3 * 3 * 8 * 16 * 100


def test_dilated_conv2d_counts_its_own_multiply_adds_only_as_one_op():
    """Rate 8 'same' on 13x13: 169 outputs x 3x3x8 MACs per output channel as AtrousConv2D
    (one Conv2D op); Keras's layer convolves a space-to-batch copy of the input padded
    from 13x13 to 16x16 (a multiple of the rate): 64 blocks of 2x2 outputs, 256 counted."""
    from deeplab_tf.atrous import AtrousConv2D
    options = dict(filters=16, kernel_size=3, padding="same", dilation_rate=8)
    native = one_layer(AtrousConv2D(**options), (13, 13, 8))
    assert flops.forward_flops(native, (1, 13, 13, 8)) == 2 * 3 * 3 * 8 * 16 * 169
    keras_layer = one_layer(keras.layers.Conv2D(**options), (13, 13, 8))
    assert flops.forward_flops(keras_layer, (1, 13, 13, 8)) == 2 * 3 * 3 * 8 * 16 * 256


def test_depthwise_separable_transpose_and_dense():
    depthwise = one_layer(keras.layers.DepthwiseConv2D(3, padding="same"), (10, 10, 8))
    assert flops.forward_flops(depthwise, (1, 10, 10, 8)) == 2 * 3 * 3 * 8 * 100
    # separable: depthwise 3x3 on 8 channels, then pointwise 8 -> 16
    separable = one_layer(keras.layers.SeparableConv2D(16, 3, padding="same"), (10, 10, 8))
    assert flops.forward_flops(separable, (1, 10, 10, 8)) == 2 * (3 * 3 * 8 + 8 * 16) * 100
    # 2x2 stride-2 up-convolution 8 -> 4 on 5x5: every input pixel meets the whole kernel
    transpose = one_layer(keras.layers.Conv2DTranspose(4, 2, strides=2), (5, 5, 8))
    assert flops.forward_flops(transpose, (1, 5, 5, 8)) == 2 * 25 * 2 * 2 * 8 * 4
    dense = one_layer(keras.layers.Dense(16), (8,))
    assert flops.forward_flops(dense, (3, 8)) == 2 * 3 * 8 * 16


def test_model_sum_leaves_out_bias_activation_pooling_and_norm():
    inputs = keras.Input((10, 10, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)   # 2*9*3*8*100
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.MaxPooling2D()(x)                                        # 5x5
    x = keras.layers.Conv2D(4, 1)(x)                                          # 2*8*4*25
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(2)(x)                                        # 2*4*2
    model = keras.Model(inputs, outputs)
    assert flops.forward_flops(model, (1, 10, 10, 3)) == (
        2 * 9 * 3 * 8 * 100 + 2 * 8 * 4 * 25 + 2 * 4 * 2)


def test_unknown_shapes_are_an_error_not_zero():
    model = one_layer(keras.layers.Conv2D(16, 3, padding="same"), (None, None, 8))
    with pytest.raises(ValueError, match="shapes not fully known"):
        flops.forward_flops(model, (1, None, None, 8))
