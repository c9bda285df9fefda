"""deeplab_tf.receptive_field: atrous receptive fields and seed 001's separable-convolution
counts."""

import keras
import pytest

from deeplab_tf import receptive_field as rf
from segcore.errors import ConfigError


@pytest.mark.parametrize("rate", [1, 2, 3, 6])
def test_atrous_receptive_field_formula_and_impulse_response(rate):
    layer = keras.layers.Conv2D(1, 3, dilation_rate=rate, padding="same")
    assert rf.effective_kernel_size(3, rate) == 2 * rate + 1
    assert rf.measured_receptive_field(layer, size=33) == 2 * rate + 1
    layer.build((1, 9, 9, 1))
    assert layer.count_params() == 9 + 1   # the same 3x3 weights at every rate


def test_stacked_receptive_field():
    # two 3x3 convs = one 5x5; VGG16 conv1-conv5 with pools: 212 (the classic figure)
    assert rf.receptive_field([(3, 1), (3, 1)]) == 5
    vgg = []
    for convs in (2, 2, 3, 3, 3):
        vgg += [(3, 1)] * convs + [(2, 2)]
    assert rf.receptive_field(vgg) == 212
    assert rf.receptive_field([(3, 1, 2), (3, 1, 4)]) == 1 + 4 + 8
    with pytest.raises(ConfigError):
        rf.receptive_field([(3,)])


def test_seed_001_separable_example_432_vs_75():
    assert rf.conv_parameters(3, 3, 16) == 432
    assert rf.separable_conv_parameters(3, 3, 16) == 27 + 48 == 75
    assert rf.keras_conv_parameters(3, 3, 16) == (432, (8, 8, 16))
    assert rf.keras_conv_parameters(3, 3, 16, separable=True) == (75, (8, 8, 16))
    assert rf.keras_conv_parameters(3, 3, 16, rate=2)[0] == 432   # atrous: same weights
    assert rf.conv_cost(3, 3, 16, 8) == 432 * 64
    assert rf.separable_conv_cost(3, 3, 16, 8) == 9 * 3 * 64 + 3 * 16 * 64
