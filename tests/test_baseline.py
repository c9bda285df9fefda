"""`segcore.baseline`: the constant predictors' scores, written out by hand."""

import math

import numpy as np
import pytest

from segcore import baseline, isbi_metrics
from segcore.errors import ConfigError
from segcore.metrics import RoadHistogram, confusion_matrix, segmentation_scores

# Rows ground truth: 4, 4 and 5 pixels of classes 0-2, none of class 3.
CONFUSION = [[3, 1, 0, 0], [0, 2, 2, 0], [1, 0, 4, 0], [0, 0, 0, 0]]


def test_majority_class_of_a_hand_made_confusion_matrix():
    scores = baseline.majority_class(CONFUSION, ("a", "b", "c", "d"))
    # class c everywhere: 5 of 13 pixels right; classes a, b score 0, d is absent (left out)
    assert scores == {
        "predictor": "majority class 'c' everywhere",
        "class": 2,
        "pixel_accuracy": pytest.approx(5 / 13, rel=1e-12),
        "mean_accuracy": pytest.approx(1 / 3, rel=1e-12),
        "mean_iou": pytest.approx(5 / 39, rel=1e-12),
        "frequency_weighted_iou": pytest.approx(25 / 169, rel=1e-12),
    }
    # It is what scoring the constant prediction pixel by pixel gives.
    labels = np.repeat([0, 1, 2], [4, 4, 5])
    counted = confusion_matrix(labels, np.full_like(labels, 2), 4).numpy()
    direct = segmentation_scores(counted)
    for key in ("pixel_accuracy", "mean_accuracy", "mean_iou", "frequency_weighted_iou"):
        assert scores[key] == direct[key], key


def test_majority_class_is_the_best_constant_and_ties_go_to_the_lowest_id():
    for constant in range(3):
        other = np.zeros((4, 4), np.int64)
        other[:, constant] = np.sum(CONFUSION, axis=1)
        assert segmentation_scores(other)["pixel_accuracy"] <= 5 / 13
    tie = baseline.majority_class([[1, 1], [0, 2]])   # 2 pixels of each class
    assert (tie["class"], tie["predictor"]) == (0, "majority class 'class 0' everywhere")
    assert tie["pixel_accuracy"] == 0.5 and tie["mean_iou"] == 0.25


def test_majority_class_without_labelled_pixels_and_bad_arguments():
    empty = baseline.majority_class(np.zeros((3, 3), np.int64))
    assert empty["class"] is None
    assert all(math.isnan(empty[key]) for key in ("pixel_accuracy", "mean_iou"))
    with pytest.raises(ConfigError, match=r"square \[C, C\] matrix"):
        baseline.majority_class([1, 2, 3])
    with pytest.raises(ConfigError, match="class_names has 2 names for a 4-class"):
        baseline.majority_class(CONFUSION, ("a", "b"))


def test_constant_road_is_what_road_histogram_gives_for_a_constant_map():
    labels = np.array([1] * 3 + [0] * 7 + [255] * 2)    # road share of the labelled: 3/10
    p = 0.3
    scores = baseline.constant_road(3, 7)
    assert scores["road_fraction"] == p
    assert scores["max_f"] == pytest.approx(2 * p / (1 + p), rel=1e-9)
    assert scores["ap"] == pytest.approx(p, rel=1e-9)
    assert (scores["precision"], scores["recall"]) == (pytest.approx(p, rel=1e-12), 1.0)
    assert (scores["fpr"], scores["fnr"], scores["threshold"]) == (1.0, 0.0, 0.0)
    for constant in (0.0, 0.37, 1.0):                   # every constant scores the same
        fed = RoadHistogram().add(np.full(labels.shape, constant), labels).scores()
        assert {key: scores[key] for key in fed} == fed
        assert baseline.constant_road(3, 7, probability=constant) == scores


def test_add_constant_counts_what_add_of_the_constant_map_counts():
    labels = np.array([1, 1, 0, 255, 0, 0])
    fed = RoadHistogram().add(np.full(labels.shape, 0.6), labels)
    counted = RoadHistogram().add_constant(0.6, 2, 3)
    np.testing.assert_array_equal(counted.road, fed.road)
    np.testing.assert_array_equal(counted.not_road, fed.not_road)
    assert counted.road[153] == 2 and counted.not_road[153] == 3    # round(0.6 * 255) = 153
    with pytest.raises(ConfigError, match="road_pixels must be a count >= 0"):
        RoadHistogram().add_constant(0.6, -1, 3)


def test_constant_cell_slice_equals_isbi_metrics_of_a_constant_map():
    # Class ids (0 cell, 1 membrane): two 4 x 4 cells beside a membrane column, 36 pixels.
    label = np.zeros((4, 9), np.uint8)
    label[:, 4] = 1
    scores = isbi_metrics.mean_scores([baseline.constant_cell_slice(label)])
    assert scores == isbi_metrics.isbi_scores([np.ones((4, 9), np.float32)], [label])
    interior = (label == 0).astype(np.uint8)
    ones = np.ones((4, 9), np.float32)
    assert scores["pixel_error"] == isbi_metrics.pixel_error(ones, interior)
    assert scores["pixel_error"] == pytest.approx(4 / 36)
    assert scores["foreground_iou"] == pytest.approx(32 / 36)
    # the two cells merge: V_split 1, V_merge 1/2 -> Rand error 1/3 at every threshold below 1
    assert scores["rand_error"] == pytest.approx(1 / 3)
    assert scores["warping_error"] == pytest.approx(4 / 36)   # no membrane pixel may vanish
    # at 1.0 the map is membrane everywhere: 32 singletons, n = 32, V = (2/32) / (1/2 + 1/32)
    assert baseline.constant_cell_slice(label)["rand_error"][1.0] == pytest.approx(15 / 17)
    assert (scores["rand_error_best"], scores["rand_error_best_threshold"]) == \
        (pytest.approx(1 / 3), 0.0)
