"""ISBI 2012 metrics: pixel, foreground IoU, foreground-restricted Rand and warping errors."""

import os

import imageio.v3 as iio
import numpy as np
import pytest
from scipy import ndimage

from segcore import isbi_metrics
from segcore.errors import ConfigError, DataError


def _two_cells(rows):
    """rows x 9 label: cell A = columns 0-3, membrane = column 4, cell B = columns 5-8."""
    label = np.full((rows, 9), 255, np.uint8)
    label[:, 4] = 0
    return label


def test_perfect_prediction_has_no_error(datasets_root):
    label = iio.imread(os.path.join(datasets_root, "isbi2012", "train", "label", "3.png"))
    for pred in (label > 0, label.astype(np.int64), (label / 255.0).astype(np.float32)):
        assert isbi_metrics.pixel_error(pred, label) == 0.0
        assert isbi_metrics.rand_error(pred, label) == pytest.approx(0.0, abs=1e-12)
        assert isbi_metrics.warping_error(pred, label) == 0.0
        assert isbi_metrics.foreground_iou(pred, label) == 1.0
    perfect = {"v_rand": 1.0, "split": 1.0, "merge": 1.0}
    assert isbi_metrics.rand_scores(label > 0, label) == pytest.approx(perfect)


def test_merged_cells_rand_by_hand():
    # Prediction without the membrane: one cell of 32 pixels. Restricted to the
    # truth's 32 interior pixels: p = (1/2, 1/2) in one predicted column.
    # sum p^2 = 1/2, sum_i s_i^2 = 1/2, sum_j t_j^2 = 1  ->  V = 1/2 / (1/4 + 1/2) = 2/3
    label = _two_cells(4)
    merged = np.ones((4, 9), bool)
    scores = isbi_metrics.rand_scores(merged, label)
    assert scores["v_rand"] == pytest.approx(2 / 3)
    assert scores["split"] == pytest.approx(1.0) and scores["merge"] == pytest.approx(0.5)
    assert isbi_metrics.rand_error(merged, label) == pytest.approx(1 / 3)
    assert isbi_metrics.pixel_error(merged, label) == pytest.approx(4 / 36)
    assert isbi_metrics.foreground_iou(merged, label) == pytest.approx(32 / 36)


def test_split_cell_rand_by_hand():
    # Membrane predicted in column 2 splits A into columns 0-1 (8 px) and column 3
    # (4 px); column 2's 4 pixels are predicted membrane: 4 singleton cells.
    # n = 32: p = 8/32, 4/32 (A), 16/32 (B); singletons add (4/32)/32 = 1/256.
    # sum p^2 = (16 + 4 + 64)/256 + 1/256 = 85/256 = sum_j t_j^2; sum_i s_i^2 = 1/2
    # V = 85/256 / (85/512 + 1/4) = 170/213
    label = _two_cells(4)
    split = label > 0
    split[:, 2] = False
    scores = isbi_metrics.rand_scores(split, label)
    assert scores["v_rand"] == pytest.approx(170 / 213)
    assert scores["split"] == pytest.approx(85 / 128) and scores["merge"] == pytest.approx(1.0)
    assert isbi_metrics.rand_error(split, label) == pytest.approx(43 / 213)
    assert isbi_metrics.pixel_error(split, label) == pytest.approx(4 / 36)


def test_warping_error_counts_only_topological_mismatches():
    label = _two_cells(6)  # 54 pixels
    shifted = np.ones((6, 9), bool)
    shifted[:, 5] = False  # membrane one column to the right: a pure deformation
    assert isbi_metrics.pixel_error(shifted, label) == pytest.approx(12 / 54)
    assert isbi_metrics.warping_error(shifted, label) == 0.0

    gap = shifted.copy()
    gap[2, 5] = True  # ... with a hole in it: the two cells merge
    assert isbi_metrics.pixel_error(gap, label) == pytest.approx(11 / 54)
    error, warped = isbi_metrics.warping_error(gap, label, return_warped=True)
    assert error == pytest.approx(1 / 54)
    # Pass 1 (Fiji order, column 4 first): column 4 cannot open (it would merge
    # the cells), column 5 closes except row 2; pass 2: column 4 opens except
    # (2, 4), which 8-connects the membrane pieces (1, 5) and (3, 5).
    expected = np.ones((6, 9), bool)
    expected[:, 5] = False
    expected[2, 5] = True
    expected[2, 4] = False
    np.testing.assert_array_equal(warped, expected)

    merged = np.ones((6, 9), bool)  # no membrane: every membrane pixel is non-simple
    assert isbi_metrics.warping_error(merged, label) == pytest.approx(6 / 54)
    split = label > 0
    split[:, 2] = False  # a new membrane crossing A: grows from the frame up to its last pixel
    assert isbi_metrics.warping_error(split, label) == pytest.approx(1 / 54)


def test_simple_point_table_equals_fijis_3d_embedding_test():
    """Fiji: T4(cells) == 1 and T26(background) == 1 with the 3x3 patch between two
    background planes, i.e. the 8-neighbourhood has some background pixel."""
    table = isbi_metrics.simple_point_table()
    four = ndimage.generate_binary_structure(2, 1)
    for code in range(256):
        patch = np.zeros((3, 3), bool)
        for k, (dy, dx) in enumerate(isbi_metrics._OFFSETS):
            patch[1 + dy, 1 + dx] = bool(code >> k & 1)
        labels, _ = ndimage.label(patch, four)
        t4 = len({labels[0, 1], labels[1, 0], labels[1, 2], labels[2, 1]} - {0})
        assert table[code] == (t4 == 1 and not patch.sum() == 8), code
    assert table.sum() == 116
    assert not table[0] and not table[255]  # isolated point, interior point
    assert table[0b00000010]  # only the pixel above: end of a line
    assert not table[0b01000010]  # above and below only: a bridge


def test_thresholds_stacks_and_errors():
    label = _two_cells(4)
    pred = np.where(label > 0, 0.4, 0.1).astype(np.float32)
    # 0.4 <= 0.5: all membrane
    assert isbi_metrics.pixel_error(pred, label) == pytest.approx(32 / 36)
    assert isbi_metrics.pixel_error(pred, label, threshold=[0.3, 0.5]) == 0.0  # best threshold
    thresholds = np.arange(0.0, 1.0, 0.1)
    assert isbi_metrics.rand_error(pred, label, threshold=thresholds) == \
        pytest.approx(0.0, abs=1e-12)
    merged = np.ones((4, 9), bool)
    stack = np.stack([label > 0, merged])
    assert isbi_metrics.rand_error(stack, np.stack([label, label])) == pytest.approx(1 / 6)
    with pytest.raises(ConfigError, match="pred and label must be"):
        isbi_metrics.pixel_error(np.zeros((4, 9)), np.zeros((4, 8)))
    with pytest.raises(DataError, match="label has no cell-interior pixel"):
        isbi_metrics.rand_error(merged, np.zeros((4, 9)))


def test_thick_membranes_on_real_isbi_slice(datasets_root):
    label = iio.imread(os.path.join(datasets_root, "isbi2012", "train", "label", "0.png"))
    thick = ~ndimage.binary_dilation(label == 0, iterations=2)
    pixel = isbi_metrics.pixel_error(thick, label)
    warping = isbi_metrics.warping_error(thick, label)
    assert 0.1 < pixel < 0.15
    assert 0 < warping < 0.002  # only vanished small cells and broken thin cells remain
    assert warping < pixel / 100
    assert 0.05 < isbi_metrics.rand_error(thick, label) < 0.15


def _four_cells():
    """32 x 32 class-id label (0 cell, 1 membrane): a cross of 2-pixel membranes, 4 cells."""
    labels = np.zeros((32, 32), np.uint8)
    labels[15:17, :] = 1
    labels[:, 15:17] = 1
    return labels


def test_isbi_scores_of_a_perfect_and_a_merged_prediction():
    labels = _four_cells()
    perfect = isbi_metrics.isbi_scores([(labels == 0).astype(np.float32)], [labels])
    assert perfect["pixel_error"] == 0 and perfect["rand_error"] == 0
    assert perfect["warping_error"] == 0 and perfect["foreground_iou"] == 1
    merged = isbi_metrics.isbi_scores([np.ones((32, 32), np.float32)], [labels])  # no membrane
    assert merged["pixel_error"] == pytest.approx(labels.mean())
    # 4 equal cells merged into one: V_split = 1, V_merge = 1/4, V_Rand = 0.4
    assert merged["rand_error"] == pytest.approx(0.6)
    assert merged["foreground_iou"] == pytest.approx(1 - labels.mean())


def test_isbi_scores_average_slices_and_take_the_best_mean_rand_threshold():
    labels = _four_cells()
    # P(cell) 0.7 in the cells, 0.15 on the membranes: right at thresholds 0.2 ... 0.6.
    graded = np.where(labels == 0, 0.7, 0.15).astype(np.float32)
    merged = np.ones((32, 32), np.float32)
    scores = isbi_metrics.isbi_scores([graded, merged], [labels, labels])
    assert isbi_metrics.RAND_THRESHOLDS == (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    assert scores["slices"] == 2 and scores["threshold"] == 0.5
    assert scores["pixel_error"] == pytest.approx(labels.mean() / 2)
    assert scores["rand_error"] == pytest.approx(0.6 / 2)
    # At 0.0 and 0.1 both slices merge the cells (0.6 each); from 0.2 the graded one is right.
    assert scores["rand_error_best"] == pytest.approx(0.3)
    assert scores["rand_error_best_threshold"] == 0.2       # the first of the equal means
    per_slice = [isbi_metrics.slice_scores(p_cell, labels) for p_cell in (graded, merged)]
    assert isbi_metrics.mean_scores(per_slice) == scores
    assert per_slice[1]["rand_error"][1.0] == pytest.approx(
        isbi_metrics.rand_error(merged, (labels == 0).astype(np.uint8), threshold=1.0))
    with pytest.raises(ConfigError, match="at least one slice"):
        isbi_metrics.mean_scores([])
