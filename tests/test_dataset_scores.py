"""`segcore.dataset_scores`: the road and ISBI scores picked by a split's classes,
accumulated image by image, with their baselines and their one-line summary."""

import numpy as np
import pytest

from segcore import dataset_scores, isbi_metrics
from segcore.errors import ConfigError
from segcore.metrics import road_scores


def two_class(p_class_1):
    """[H, W, 2] probabilities with P(class 1) = p_class_1."""
    p_class_1 = np.asarray(p_class_1, np.float32)
    return np.stack([1 - p_class_1, p_class_1], axis=-1)


def test_the_classes_pick_the_scores():
    assert isinstance(dataset_scores.for_classes(["not_road", "road"], 255),
                      dataset_scores.RoadScores)
    assert isinstance(dataset_scores.for_classes(("cell", "membrane"), 255),
                      dataset_scores.IsbiScores)
    assert dataset_scores.for_classes(("road", "not_road"), 255) is None
    assert dataset_scores.for_classes(("background", "cat"), 255) is None


def test_road_scores_over_images_equal_the_devkit_scores_of_all_pixels():
    rng = np.random.default_rng(0)
    labels = (rng.random((2, 6, 7)) < 0.4).astype(np.uint8)
    labels[0, 0, :3] = 255
    road = np.clip(0.5 * labels + 0.6 * rng.random(labels.shape), 0, 1)
    scorer = dataset_scores.for_classes(("not_road", "road"), 255)
    for index in range(2):
        scorer.add(two_class(road[index]), labels[index])
    expected = road_scores(road.astype(np.float32), labels)
    assert scorer.scores() == expected
    assert 0.5 < expected["max_f"] < 1                       # not a degenerate case
    share = np.sum(labels == 1) / np.sum(labels != 255)
    assert scorer.baseline()["road_fraction"] == pytest.approx(share, rel=1e-12)
    assert scorer.baseline()["max_f"] == pytest.approx(2 * share / (1 + share), rel=1e-9)


def test_isbi_scores_over_slices_skip_unlabelled_ones():
    labels = np.zeros((2, 12, 10), np.uint8)       # class ids: 0 cell, 1 membrane
    labels[:, 5, :] = 1
    labels[1, :, 4] = 1
    p_cell = np.where(labels == 0, 0.85, 0.25)      # off the thresholds 0, 0.1, ..., 1
    p_cell[0, 5, 2] = 0.75                          # a gap in the first slice's membrane
    scorer = dataset_scores.for_classes(("cell", "membrane"), 255)
    for index in range(2):
        scorer.add(two_class(1 - p_cell[index]), labels[index][..., None])
    scorer.add(two_class(np.zeros((12, 10))), np.full((12, 10), 255, np.uint8))  # skipped
    expected = isbi_metrics.isbi_scores(list(p_cell), list(labels))
    assert scorer.scores() == pytest.approx(expected, rel=1e-6)
    assert expected["slices"] == 2 and expected["pixel_error"] == pytest.approx(1 / 240)
    constant = scorer.baseline()
    assert constant["predictor"] == "constant map P(cell) = 1 (cell interior everywhere)"
    assert {k: v for k, v in constant.items() if k != "predictor"} == \
        isbi_metrics.isbi_scores([np.ones((12, 10))] * 2, list(labels))
    assert constant["pixel_error"] == pytest.approx(np.mean(labels == 1))


def test_isbi_scores_of_no_labelled_slice_are_none():
    scorer = dataset_scores.for_classes(("cell", "membrane"), 255)
    scorer.add(two_class(np.zeros((4, 4))), np.full((4, 4), 255, np.uint8))
    assert scorer.scores() is None and scorer.baseline() is None


def test_describe_puts_each_baseline_beside_its_figure():
    isbi = {"slices": 4, "pixel_error": 0.2964, "rand_error": 0.5094, "rand_error_best": 0.5069,
            "rand_error_best_threshold": 0.6, "warping_error": 0.053297, "foreground_iou": 0.6324}
    constant = {"slices": 4, "pixel_error": 0.222, "rand_error": 0.9055, "rand_error_best": 0.9055,
                "rand_error_best_threshold": 0.0, "warping_error": 0.0304, "foreground_iou": 0.778}
    line = dataset_scores.describe("isbi", isbi, constant)
    assert "pixel error 0.2964 (0.2220), Rand error 0.5094 (0.9055)" in line
    assert "at the best threshold 0.6: 0.5069 (0.0: 0.9055)" in line
    assert "warping error 0.053297 (0.030400), foreground IoU 0.6324 (0.7780)" in line
    road = {"max_f": 0.9, "ap": 0.8, "precision": 0.85, "recall": None, "fpr": float("nan"),
            "fnr": 0.1, "threshold": 0.5}
    line = dataset_scores.describe("road", road, {"max_f": 0.6, "ap": 0.45})
    assert "MaxF 0.9000 (0.6000)  AP 0.8000 (0.4500)" in line
    assert "recall n/a  FPR n/a" in line and line.endswith("at threshold 0.500")
    assert dataset_scores.describe("road", road).startswith(    # no baseline given
        "road (KITTI devkit, perspective view): MaxF 0.9000  AP 0.8000  precision 0.8500")
    with pytest.raises(ConfigError, match="no dataset scores named 'voc'"):
        dataset_scores.describe("voc", {})
