"""unet_tf.border_weight_map: the paper's Eq. 2 on hand-made and ISBI labels."""

import os

import imageio.v3 as iio
import numpy as np
import pytest
from scipy import ndimage

import unet_tf
from segcore.errors import ConfigError


def _border(d1, d2, w0=10.0, sigma=5.0):
    return w0 * np.exp(-((d1 + d2) ** 2) / (2 * sigma ** 2))


def _two_squares():
    """7 x 10: cell A rows 2-4 cols 1-3, cell B rows 2-4 cols 6-8, gap cols 4-5."""
    cells = np.zeros((7, 10), np.uint8)
    cells[2:5, 1:4] = 1
    cells[2:5, 6:9] = 1
    return cells


def test_two_squares_hand_computed():
    weights = unet_tf.border_weight_map(_two_squares())
    assert weights.dtype == np.float32 and weights.shape == (7, 10)
    # 18 cell pixels, 52 background: w_c = 52 / 18 inside the cells, 1 outside
    w_cell = 52 / 18
    assert weights[3, 2] == pytest.approx(w_cell, rel=1e-6)
    assert weights[2, 8] == pytest.approx(w_cell, rel=1e-6)
    # in the gap: 1 px to A and 2 px to B (or the reverse)
    assert weights[3, 4] == pytest.approx(1 + _border(1, 2), rel=1e-6)
    assert weights[3, 5] == pytest.approx(1 + _border(2, 1), rel=1e-6)
    assert weights[3, 4] == pytest.approx(1 + 10 * np.exp(-9 / 50), rel=1e-6)
    # above the gap: A's corner (2, 3) at sqrt(2), B's corner (2, 6) at sqrt(5)
    assert weights[1, 4] == pytest.approx(1 + _border(np.sqrt(2), np.sqrt(5)), rel=1e-6)
    # image corner: A at (2, 1) sqrt(5), B at (2, 6) sqrt(40)
    assert weights[0, 0] == pytest.approx(1 + _border(np.sqrt(5), np.sqrt(40)), rel=1e-6)
    np.testing.assert_array_equal(weights, weights[:, ::-1])  # the layout is symmetric


def test_border_term_needs_two_cells():
    one = np.zeros((6, 6), bool)
    one[1:3, 1:3] = True
    expected = np.where(one, 32 / 4, 1.0).astype(np.float32)  # 4 cell pixels, 32 background
    np.testing.assert_array_equal(unet_tf.border_weight_map(one), expected)
    empty = unet_tf.border_weight_map(np.zeros((4, 5)))
    np.testing.assert_array_equal(empty, np.ones((4, 5), np.float32))


def test_explicit_class_weights_and_parameters():
    weights = unet_tf.border_weight_map(_two_squares(), w0=3.0, sigma=2.0, class_weights=(0.5, 2.0))
    assert weights[3, 2] == pytest.approx(2.0)
    assert weights[3, 4] == pytest.approx(0.5 + 3.0 * np.exp(-9 / 8), rel=1e-6)
    with pytest.raises(ConfigError, match="class_weights must be"):
        unet_tf.border_weight_map(_two_squares(), class_weights=(1.0,))
    with pytest.raises(ConfigError, match="cells must be a 2-D array"):
        unet_tf.border_weight_map(np.zeros((2, 3, 4)))


def test_touching_instances_stay_separate_when_labeled():
    cells = np.zeros((5, 6), np.int32)
    cells[1:4, 1:3] = 1
    cells[1:4, 3:5] = 2  # touches cell 1
    labeled = unet_tf.border_weight_map(cells, labeled=True, class_weights=(1.0, 1.0))
    assert labeled[0, 2] == pytest.approx(1 + _border(1, np.sqrt(2)), rel=1e-6)
    merged = unet_tf.border_weight_map(cells, class_weights=(1.0, 1.0))  # one component
    np.testing.assert_array_equal(merged, np.ones((5, 6), np.float32))


def test_isbi_label_matches_brute_force_distances(datasets_root):
    label = iio.imread(os.path.join(datasets_root, "isbi2012", "train", "label", "0.png"))[:96, :96]
    assert set(np.unique(label)) == {0, 255}
    weights = unet_tf.isbi_weight_map(label)
    interior = label > 0
    n_membrane, n_interior = np.sum(~interior), np.sum(interior)
    assert n_interior > n_membrane  # membranes are the rare class
    np.testing.assert_allclose(weights[interior], 1.0)
    w_membrane = n_interior / n_membrane

    cells, count = ndimage.label(interior)
    assert count >= 5
    coordinates = [np.argwhere(cells == k) for k in range(1, count + 1)]
    membrane = np.argwhere(~interior)
    picks = membrane[np.random.default_rng(0).choice(len(membrane), 40, replace=False)]
    for y, x in picks:
        distances = sorted(np.sqrt(((c - (y, x)) ** 2).sum(1)).min() for c in coordinates)
        expected = w_membrane + _border(distances[0], distances[1])
        assert weights[y, x] == pytest.approx(expected, rel=1e-5)
    # thin membranes between two cells get most of w0 = 10
    assert (weights[~interior] - w_membrane).max() > 5.0


def _whole_image_weights(cells, w0, sigma, w_background, w_foreground):
    """Eq. 2 with every cell's distance transform over the whole image (the plain way)."""
    foreground = cells != 0
    labels, count = ndimage.label(foreground)
    d1 = np.full(cells.shape, np.inf)
    d2 = np.full(cells.shape, np.inf)
    for k in range(1, count + 1):
        d = ndimage.distance_transform_edt(labels != k)
        d2 = np.minimum(d2, np.maximum(d1, d))
        d1 = np.minimum(d1, d)
    border = np.where(foreground, 0.0, _border(d1, d2, w0, sigma))
    return np.where(foreground, w_foreground, w_background) + border


@pytest.mark.parametrize("sigma", [5.0, 40.0])  # 40: the windows cover the whole slice
def test_windowed_distances_equal_whole_image_distances_on_an_isbi_slice(datasets_root, sigma):
    label = iio.imread(os.path.join(datasets_root, "isbi2012", "train", "label", "3.png"))
    interior = label > 0
    assert ndimage.label(interior)[1] > 100  # a whole slice: many cells
    weights = unet_tf.border_weight_map(interior, w0=10.0, sigma=sigma, class_weights=(2.0, 1.0))
    expected = _whole_image_weights(interior, 10.0, sigma, 2.0, 1.0)
    np.testing.assert_allclose(weights, expected, rtol=1e-6, atol=2e-8)
    assert (expected - 2.0)[~interior].max() > 5.0  # the border term is really there
