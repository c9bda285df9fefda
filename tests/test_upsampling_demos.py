"""segcore.upsampling demonstrations: seed 002's transposed convolution, seed 001's nearest
upsampling, and checkerboard energy of random decoders (Odena et al. 2016)."""

import numpy as np
import pytest

from segcore.analysis import stride_frequency_energy
from segcore.upsampling import (
    DECODER_KINDS,
    random_decoder,
    resize_upsample,
    transposed_convolution,
)


def test_seed_002_transposed_convolution_example():
    out = transposed_convolution([[1, 2], [3, 4]], 1, 2, bias=1)
    np.testing.assert_array_equal(out, [[2, 1, 3, 1], [1, 1, 1, 1], [4, 1, 5, 1], [1, 1, 1, 1]])


def test_transposed_convolution_with_a_2x2_kernel_tiles_without_overlap():
    out = transposed_convolution([[1, 2], [3, 4]], np.ones((2, 2)), 2)
    np.testing.assert_array_equal(out, np.kron([[1, 2], [3, 4]], np.ones((2, 2))))
    out = transposed_convolution([[1, 1], [1, 1]], np.ones((3, 3)), 2)
    assert out.shape == (5, 5) and out.max() == 4   # uneven overlap: up to 4


def test_seed_001_nearest_neighbour_2x2_to_4x4():
    np.testing.assert_array_equal(resize_upsample([[1, 2], [3, 4]], 2, "nearest"),
                                  [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]])


@pytest.mark.parametrize("seed", [0, 1])
def test_random_transposed_decoder_has_checkerboard_energy_resize_decoders_do_not(seed):
    features = np.ones((1, 8, 8, 8), np.float32)
    energy = {kind: stride_frequency_energy(random_decoder(kind, seed=seed)(features).numpy()[0], 2)
              for kind in DECODER_KINDS}
    assert energy["transpose"] > 0.05
    assert energy["nearest"] < 0.01 and energy["bilinear"] < 0.01
    with pytest.raises(ValueError, match="kind"):
        random_decoder("pixel_shuffle")
