"""segcore.metrics: confusion matrix, FCN scores, the Keras metric, KITTI road scores.

Expected numbers are computed by hand in the comments next to them.
"""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from segcore.errors import ConfigError
from segcore.metrics import (
    ConfusionMatrixMetric,
    RoadHistogram,
    confusion_matrix,
    quantise_road_probability,
    road_scores,
    segmentation_scores,
)

# One 3 x 4 image, 3 classes. (1, 2) is the ignore label 255 and (2, 1) has label 3,
# outside [0, 3): both are dropped, 10 pixels are counted.
LABELS = np.array([[[0, 0, 1, 1],
                    [2, 2, 255, 0],
                    [1, 3, 2, 0]]], np.int32)
PREDICTIONS = np.array([[[0, 1, 1, 1],
                         [2, 0, 1, 0],
                         [2, 2, 2, 0]]], np.int32)
# (label, prediction) pairs: (0,0) x3 at (0,0) (1,3) (2,3); (0,1) at (0,1);
# (1,1) x2 at (0,2) (0,3); (1,2) at (2,0); (2,2) x2 at (1,0) (2,2); (2,0) at (1,1).
HAND_CONFUSION = np.array([[3, 1, 0],
                           [0, 2, 1],
                           [1, 0, 2]], np.int64)
# diag 3, 2, 2 (sum 7); rows (ground truth) 4, 3, 3; columns (predictions) 4, 3, 3; total 10.
HAND_SCORES = {
    "pixel_accuracy": 7 / 10,
    "per_class_accuracy": [3 / 4, 2 / 3, 2 / 3],
    "mean_accuracy": (3 / 4 + 2 / 3 + 2 / 3) / 3,                  # 25/36
    "per_class_iou": [3 / (4 + 4 - 3), 2 / (3 + 3 - 2), 2 / (3 + 3 - 2)],   # 0.6, 0.5, 0.5
    "mean_iou": (0.6 + 0.5 + 0.5) / 3,                               # 8/15
    "frequency_weighted_iou": 0.4 * 0.6 + 0.3 * 0.5 + 0.3 * 0.5,    # 0.54
}


def fast_hist(labels, predictions, n):
    """FCN score.py fast_hist, verbatim (numpy reference)."""
    k = (labels >= 0) & (labels < n)
    return np.bincount(n * labels[k].astype(int) + predictions[k], minlength=n ** 2).reshape(n, n)


def one_hot_logits(predictions, num_classes):
    return np.eye(num_classes, dtype=np.float32)[predictions] * 4.0 - 2.0


# --------------------------------------------------------------------------- confusion matrix


def test_confusion_matrix_hand_example():
    confusion = confusion_matrix(LABELS, PREDICTIONS, 3)
    assert confusion.dtype == tf.int64
    np.testing.assert_array_equal(confusion.numpy(), HAND_CONFUSION)
    np.testing.assert_array_equal(fast_hist(LABELS.ravel(), PREDICTIONS.ravel(), 3), HAND_CONFUSION)


def test_uint8_and_channel_labels_give_the_same_counts():
    labels = LABELS.astype(np.uint8)[..., None]                     # [1, 3, 4, 1] uint8
    np.testing.assert_array_equal(confusion_matrix(labels, PREDICTIONS, 3).numpy(), HAND_CONFUSION)
    np.testing.assert_array_equal(
        confusion_matrix(tf.constant(LABELS, tf.int64), tf.constant(PREDICTIONS, tf.int64),
                         3).numpy(),
        HAND_CONFUSION)


def test_ignore_label_inside_the_class_range_is_dropped():
    # ignore_label=0: the four label-0 pixels go, leaving rows 1 and 2 of the hand matrix.
    confusion = confusion_matrix(LABELS, PREDICTIONS, 3, ignore_label=0).numpy()
    np.testing.assert_array_equal(confusion, [[0, 0, 0], [0, 2, 1], [1, 0, 2]])
    # ignore_label=None: 255 and 3 are still outside [0, 3).
    np.testing.assert_array_equal(confusion_matrix(LABELS, PREDICTIONS, 3, None).numpy(),
                                  HAND_CONFUSION)


def test_confusion_matrix_in_tf_function_equals_eager_and_fast_hist():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 5, size=(2, 17, 9)).astype(np.uint8)
    labels[rng.random(labels.shape) < 0.2] = 255
    predictions = rng.integers(0, 5, size=(2, 17, 9)).astype(np.int32)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None], tf.uint8),
                                  tf.TensorSpec([None, None, None], tf.int32)])
    def graph_confusion(labels, predictions):
        return confusion_matrix(labels, predictions, 5)

    eager = confusion_matrix(labels, predictions, 5).numpy()
    np.testing.assert_array_equal(graph_confusion(labels, predictions).numpy(), eager)
    np.testing.assert_array_equal(eager, fast_hist(labels.ravel(), predictions.ravel(), 5))
    assert eager.sum() == np.sum(labels != 255)


@pytest.mark.parametrize("call, message", [
    (lambda: confusion_matrix(LABELS, PREDICTIONS, 0), "num_classes"),
    (lambda: confusion_matrix(LABELS, PREDICTIONS, 2.0), "num_classes"),
    (lambda: confusion_matrix(LABELS.astype(np.float32), PREDICTIONS, 3), "labels"),
    (lambda: confusion_matrix(LABELS, PREDICTIONS[..., :3], 3), "pixels"),
    (lambda: segmentation_scores(np.zeros((2, 3))), "confusion"),
    (lambda: ConfusionMatrixMetric(3, ignore_label="void"), "ignore_label"),
    (lambda: road_scores(np.array([0.5, np.nan]), np.array([1, 0])), "road_probability"),
    (lambda: road_scores(np.array([0.5, 0.2]), np.array([1, 0, 1])), "labels"),
    (lambda: RoadHistogram(ignore_label=1), "ignore_label"),
])
def test_bad_arguments_raise_config_error(call, message):
    with pytest.raises(ConfigError, match=message):
        call()


# --------------------------------------------------------------------------- FCN scores


def test_segmentation_scores_hand_example():
    scores = segmentation_scores(HAND_CONFUSION)
    for name, expected in HAND_SCORES.items():
        np.testing.assert_allclose(scores[name], expected, rtol=1e-12, err_msg=name)
    assert scores["mean_iou"] == pytest.approx(8 / 15)
    assert scores["mean_accuracy"] == pytest.approx(25 / 36)
    assert scores["frequency_weighted_iou"] == pytest.approx(0.54)


def test_empty_class_is_nan_and_left_out_of_the_means():
    # A 4th class absent from ground truth and predictions: NaN, the means are unchanged.
    padded = np.zeros((4, 4), np.int64)
    padded[:3, :3] = HAND_CONFUSION
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = segmentation_scores(padded)
    assert np.isnan(scores["per_class_iou"][3]) and np.isnan(scores["per_class_accuracy"][3])
    assert scores["mean_iou"] == pytest.approx(8 / 15)
    assert scores["mean_accuracy"] == pytest.approx(25 / 36)
    assert scores["frequency_weighted_iou"] == pytest.approx(0.54)
    # A class predicted once but absent from ground truth: IoU 0 (counted), accuracy NaN.
    scores = segmentation_scores([[3, 1], [0, 0]])
    np.testing.assert_allclose(scores["per_class_iou"], [3 / 4, 0.0])
    assert scores["mean_iou"] == pytest.approx(0.375)               # (3/4 + 0) / 2
    assert np.isnan(scores["per_class_accuracy"][1])
    assert scores["mean_accuracy"] == pytest.approx(0.75)           # class 0 only
    assert scores["pixel_accuracy"] == pytest.approx(0.75)
    assert scores["frequency_weighted_iou"] == pytest.approx(0.75)  # freq (1, 0)


def test_all_zero_confusion_gives_nan_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = segmentation_scores(np.zeros((3, 3), np.int64))
    for name in ("pixel_accuracy", "mean_accuracy", "mean_iou", "frequency_weighted_iou"):
        assert np.isnan(scores[name]), name
    assert np.isnan(scores["per_class_iou"]).all()


# --------------------------------------------------------------------------- Keras metric


def test_metric_result_matches_hand_scores_and_config_round_trips():
    metric = ConfusionMatrixMetric(3, prefix="city_")
    metric.update_state(LABELS[..., None], one_hot_logits(PREDICTIONS, 3))
    np.testing.assert_array_equal(metric.confusion(), HAND_CONFUSION)
    result = metric.result()
    assert set(result) == {"city_mean_iou", "city_pixel_accuracy", "city_mean_accuracy",
                           "city_frequency_weighted_iou"}
    for name in ("mean_iou", "pixel_accuracy", "mean_accuracy", "frequency_weighted_iou"):
        assert float(result["city_" + name]) == pytest.approx(HAND_SCORES[name], rel=1e-6), name
    assert metric.scores()["per_class_iou"] == pytest.approx([0.6, 0.5, 0.5])

    clone = ConfusionMatrixMetric.from_config(metric.get_config())
    assert (clone.num_classes, clone.ignore_label, clone.prefix) == (3, 255, "city_")
    metric.reset_state()
    np.testing.assert_array_equal(metric.confusion(), np.zeros((3, 3)))
    assert np.isnan(float(metric.result()["city_mean_iou"]))


def test_metric_excludes_empty_classes_in_tensorflow():
    labels = np.where(LABELS == 3, 255, LABELS)      # with 4 classes, label 3 would count
    metric = ConfusionMatrixMetric(4)                 # class 3 never appears
    metric.update_state(labels, one_hot_logits(PREDICTIONS, 4))
    np.testing.assert_array_equal(metric.confusion()[:3, :3], HAND_CONFUSION)
    assert metric.confusion()[3].sum() == metric.confusion()[:, 3].sum() == 0
    result = metric.result()
    assert float(result["mean_iou"]) == pytest.approx(8 / 15, rel=1e-6)
    assert float(result["mean_accuracy"]) == pytest.approx(25 / 36, rel=1e-6)
    assert float(result["frequency_weighted_iou"]) == pytest.approx(0.54, rel=1e-6)


def test_metric_over_two_batches_equals_the_concatenation():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 4, size=(4, 6, 5)).astype(np.uint8)
    labels[rng.random(labels.shape) < 0.1] = 255
    logits = rng.normal(size=(4, 6, 5, 4)).astype(np.float32)
    metric = ConfusionMatrixMetric(4)
    metric.update_state(labels[:3], logits[:3])
    metric.update_state(labels[3:], logits[3:])
    expected = confusion_matrix(labels, np.argmax(logits, -1), 4).numpy()
    np.testing.assert_array_equal(metric.confusion(), expected)
    assert float(metric.result()["mean_iou"]) == pytest.approx(
        segmentation_scores(expected)["mean_iou"], rel=1e-6)


def test_metric_sample_weight_zero_drops_pixels_and_does_not_scale_counts():
    weights = np.full(LABELS.shape, 2.5, np.float32)
    weights[0, 0, :2] = 0.0                     # the two label-0 pixels of row 0: (0,0) and (0,1)
    metric = ConfusionMatrixMetric(3)
    metric.update_state(LABELS, one_hot_logits(PREDICTIONS, 3), sample_weight=weights)
    np.testing.assert_array_equal(metric.confusion(), [[2, 0, 0], [0, 2, 1], [1, 0, 2]])


def _segmentation_data(seed, n=6):
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(n, 4, 4, 2)).astype(np.float32)
    labels = rng.integers(0, 3, size=(n, 4, 4)).astype(np.uint8)
    labels[0, 0, :3] = 255
    return images, labels


def _tiny_model():
    """A 1x1-convolution "segmentation network", compiled with the metric; (model, metric)."""
    metric = ConfusionMatrixMetric(3)
    model = keras.Sequential([keras.Input((4, 4, 2)), keras.layers.Conv2D(3, 1)])
    model.compile(optimizer=keras.optimizers.SGD(1.0),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True,
                                                                  ignore_class=255),
                  metrics=[metric])
    return model, metric


def test_fit_logs_have_mean_iou_and_val_mean_iou():
    keras.utils.set_random_seed(0)
    images, labels = _segmentation_data(3)
    model, _ = _tiny_model()
    history = model.fit(images, labels, batch_size=3, epochs=1, verbose=0,
                        validation_data=(images, labels))
    for name in ("mean_iou", "pixel_accuracy", "mean_accuracy", "frequency_weighted_iou"):
        assert name in history.history and "val_" + name in history.history
    # Validation ran with the final weights: its mean IoU is that of their predictions.
    predictions = np.argmax(model.predict(images, verbose=0), -1)
    expected = segmentation_scores(confusion_matrix(labels, predictions, 3).numpy())
    assert history.history["val_mean_iou"][0] == pytest.approx(expected["mean_iou"], rel=1e-6)
    assert history.history["val_pixel_accuracy"][0] == pytest.approx(expected["pixel_accuracy"],
                                                                     rel=1e-6)


def test_metric_under_two_replicas_equals_one_device(two_replica_strategy):
    keras.utils.set_random_seed(0)
    images, labels = _segmentation_data(4, n=7)     # batches of 4 and 3: uneven replica split
    with two_replica_strategy.scope():
        model, metric = _tiny_model()
    logs = model.evaluate(images, labels, batch_size=4, verbose=0, return_dict=True)

    logits = model.predict(images, verbose=0)
    expected = confusion_matrix(labels, np.argmax(logits, -1), 3).numpy()
    assert expected.sum() == 7 * 16 - 3
    one_device = ConfusionMatrixMetric(3)
    one_device.update_state(labels, logits)
    np.testing.assert_array_equal(one_device.confusion(), expected)
    np.testing.assert_array_equal(metric.confusion(), expected)     # summed over the replicas
    scores = segmentation_scores(expected)
    for name in ("mean_iou", "pixel_accuracy", "mean_accuracy", "frequency_weighted_iou"):
        assert logs[name] == pytest.approx(scores[name], rel=1e-6), name


# --------------------------------------------------------------------------- KITTI road


def devkit_scores_brute_force(probability, labels):
    """Per threshold, count with plain numpy; then helper.py pxEval_maximizeFMeasure's formulas."""
    levels = np.round(np.clip(probability, 0, 1) * 255).astype(np.uint8)
    prob = levels.astype("f4") / 255                   # the devkit reads 8-bit PNGs like this
    road, not_road = labels == 1, labels == 0
    thresholds = np.array(range(0, 256)) / 255.0
    tp, fp, fn, tn = (np.zeros(256) for _ in range(4))
    for k, t in enumerate(thresholds):
        predicted = prob >= t
        tp[k] = np.sum(predicted & road)
        fp[k] = np.sum(predicted & not_road)
        fn[k] = np.sum(~predicted & road)
        tn[k] = np.sum(~predicted & not_road)
    positives = road.sum()
    recall = tp / float(positives)
    precision = tp / (tp + fp + 1e-10)
    invalid = (recall == 0) & (precision == 0)
    recall, precision = recall[~invalid], precision[~invalid]
    ap_sum, counter = 0.0, 0
    for i in np.arange(0, 1.1, 0.1):
        ap_sum += max(precision[np.where(recall >= i)])
        counter += 1
    f = 2 * precision * recall / (precision + recall + 1e-10)
    best = f.argmax()
    return {"max_f": f[best], "ap": ap_sum / counter,
            "precision": tp[best] / (tp[best] + fp[best]), "recall": tp[best] / positives,
            "fpr": fp[best] / (fp[best] + tn[best]), "fnr": fn[best] / (tp[best] + fn[best]),
            "threshold": thresholds[best]}


def test_road_scores_match_brute_force_devkit_computation():
    rng = np.random.default_rng(5)
    labels = (rng.random((2, 30, 40)) < 0.4).astype(np.uint8)
    probability = np.clip(0.45 * labels + 0.6 * rng.random(labels.shape), 0, 1).astype(np.float32)
    labels[rng.random(labels.shape) < 0.1] = 255
    expected = devkit_scores_brute_force(probability, labels)
    assert 0.5 < expected["max_f"] < 0.99                 # a non-trivial case

    scores = road_scores(probability, labels)
    assert set(scores) == set(expected)
    for name, value in expected.items():
        assert scores[name] == pytest.approx(value, rel=1e-12, abs=1e-15), name

    streamed = RoadHistogram().add(probability[:1], labels[:1, ..., None]).add(probability[1:],
                                                                               labels[1:])
    assert streamed.scores() == scores
    assert streamed.road.sum() == np.sum(labels == 1)
    assert streamed.not_road.sum() == np.sum(labels == 0)


def test_road_scores_perfect_prediction():
    labels = np.array([[1, 1, 0, 0, 0, 255]])
    probability = np.array([[1.0, 1.0, 0.0, 0.0, 0.0, 0.0]])
    scores = road_scores(probability, labels)
    # k = 0 predicts everything (precision 2/5); k = 1..255 is perfect: the first of these wins.
    assert scores["max_f"] == pytest.approx(1.0, abs=1e-9)
    assert scores["ap"] == pytest.approx(1.0, abs=1e-9)
    assert (scores["precision"], scores["recall"], scores["fpr"], scores["fnr"]) == (1, 1, 0, 0)
    assert scores["threshold"] == 1 / 255


def test_road_scores_hand_checked_tiny_case():
    # Road q = 255, 153; not road q = 51, 153; the 0.9 pixel (label 255) and label 7 are ignored.
    labels = np.array([1, 1, 0, 0, 255, 7])
    probability = np.array([1.0, 0.6, 0.2, 0.6, 0.9, 0.1])
    np.testing.assert_array_equal(quantise_road_probability(probability),
                                  [255, 153, 51, 153, 230, 26])
    # k = 0..51:    TP 2, FP 2 -> P 1/2, R 1,   F 2/3
    # k = 52..153:  TP 2, FP 1 -> P 2/3, R 1,   F 4/5   <- MaxF at k = 52
    # k = 154..255: TP 1, FP 0 -> P 1,   R 1/2, F 2/3
    # AP: recall levels 0, .1, ..., .5 (6 levels) reach P = 1; .6 ... 1.0 (5 levels) only 2/3.
    scores = road_scores(probability, labels)
    assert scores["max_f"] == pytest.approx(0.8, rel=1e-9)
    assert scores["ap"] == pytest.approx((6 * 1 + 5 * 2 / 3) / 11, rel=1e-9)   # 28/33
    assert scores["threshold"] == 52 / 255
    assert scores["precision"] == pytest.approx(2 / 3)
    assert scores["recall"] == 1.0
    assert scores["fpr"] == 0.5                       # FP 1 of N 2
    assert scores["fnr"] == 0.0
    # uint8 input is taken as the quantised levels themselves.
    assert road_scores(quantise_road_probability(probability), labels) == scores


def test_road_ap_uses_the_devkit_recall_levels():
    # The devkit's levels are np.arange(0, 1.1, 0.1): its "0.3" is 0.30000000000000004, so a
    # point with recall exactly 3/10 does not reach it.
    # Road: 3 pixels at q = 255, 7 at q = 100. Not road: 1 at q = 200, 5 at q = 50.
    labels = np.array([1] * 10 + [0] * 6)
    levels = np.array([255] * 3 + [100] * 7 + [200] + [50] * 5, np.uint8)
    # k = 0..50: TP 10, FP 6 (P 10/16, R 1); k = 51..100: TP 10, FP 1 (P 10/11, R 1)
    # k = 101..200: TP 3, FP 1 (P 3/4, R 3/10); k = 201..255: TP 3, FP 0 (P 1, R 3/10)
    scores = road_scores(levels, labels)
    # Levels 0, .1, .2 -> max P 1; levels "0.3", .4, ..., 1.0 (8 of them) -> 10/11.
    assert scores["ap"] == pytest.approx((3 * 1 + 8 * 10 / 11) / 11, rel=1e-9)
    assert scores["max_f"] == pytest.approx(20 / 21, rel=1e-9)      # 2 (10/11) / (21/11)
    assert scores["threshold"] == 51 / 255
    assert scores["fpr"] == pytest.approx(1 / 6)


def test_road_scores_without_road_pixels_are_nan():
    scores = road_scores(np.array([0.3, 0.7]), np.array([0, 255]))
    assert all(np.isnan(value) for value in scores.values())
