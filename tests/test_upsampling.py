"""Bilinear kernels of the FCN reference and the upsampling layers."""

import keras
import numpy as np
import pytest

from segcore.upsampling import (
    BilinearTransposeInitializer,
    ResizeConv2D,
    bilinear_kernel,
    bilinear_transpose_weights,
)


def test_bilinear_kernel_4_matches_reference_formula_by_hand():
    # factor = 2, center = 1.5: 1-D weights 1 - |x - 1.5| / 2 = .25 .75 .75 .25
    row = np.array([0.25, 0.75, 0.75, 0.25])
    np.testing.assert_allclose(bilinear_kernel(4), np.outer(row, row))


def test_bilinear_kernel_odd_size_and_16():
    # k = 3: factor 2, center 1 -> .5 1 .5
    np.testing.assert_allclose(bilinear_kernel(3), np.outer([0.5, 1, 0.5], [0.5, 1, 0.5]))
    # k = 16 (upscore8): factor 8, center 7.5 -> (1 - |x - 7.5| / 8)
    row = 1 - np.abs(np.arange(16) - 7.5) / 8
    np.testing.assert_allclose(bilinear_kernel(16), np.outer(row, row))
    assert row[0] == pytest.approx(1 / 16) and row[7] == pytest.approx(15 / 16)


def test_bilinear_weights_only_on_matching_channels():
    weights = bilinear_transpose_weights(4, 3)
    assert weights.shape == (4, 4, 3, 3)
    for c in range(3):
        np.testing.assert_allclose(weights[:, :, c, c], bilinear_kernel(4))
    off_diagonal = weights.copy()
    for c in range(3):
        off_diagonal[:, :, c, c] = 0
    assert not off_diagonal.any()


def test_initialised_transpose_conv_interpolates_linearly():
    # A 'same' transposed conv of kernel 4 / stride 2 with the bilinear init turns a
    # linear ramp into a linear ramp of half the slope (away from the borders).
    layer = keras.layers.Conv2DTranspose(1, 4, strides=2, padding="same", use_bias=False,
                                         kernel_initializer=BilinearTransposeInitializer())
    ramp = np.tile(np.arange(8, dtype=np.float32), (8, 1))[None, ..., None]
    out = np.asarray(layer(ramp))[0, 4:12, :, 0]
    # Input pixel i sits at output position 2 i + 0.5 (the centre of the pixels 2i and
    # 2i + 1 it was pooled from), so output column j holds (j - 0.5) / 2 away from borders.
    columns = np.arange(2, 14)
    np.testing.assert_allclose(out[:, 2:14], np.broadcast_to((columns - 0.5) / 2, (8, 12)),
                               atol=1e-6)


def test_initialiser_rejects_non_square_or_mixed_channels():
    with pytest.raises(ValueError, match="square kernel"):
        BilinearTransposeInitializer()((4, 4, 2, 3))


def test_resize_conv_starts_as_plain_resize():
    layer = ResizeConv2D(2, factor=2, method="nearest")
    x = np.random.default_rng(0).normal(size=(1, 3, 5, 2)).astype(np.float32)
    out = np.asarray(layer(x))
    assert out.shape == (1, 6, 10, 2)
    np.testing.assert_allclose(out, np.repeat(np.repeat(x, 2, axis=1), 2, axis=2), atol=1e-6)
