"""Segmentation scores: the one confusion matrix, FCN's four scores, KITTI road scores.

Confusion matrix (`confusion_matrix`)
    hist[i, j] = number of pixels whose ground truth is class i and whose
    prediction is class j (rows = ground truth, columns = prediction), counting
    only pixels whose label lies in [0, num_classes) and is not the ignore
    label: the FCN reference `score.py` `fast_hist`. TensorFlow ops, so the same
    function runs eagerly, inside a `tf.function`, and in the Keras metric.

Scores of a confusion matrix (`segmentation_scores`), as FCN `score.py`:
    pixel_accuracy         = sum_i hist[i, i] / sum_ij hist[i, j]
    per_class_accuracy[i]  = hist[i, i] / sum_j hist[i, j]      (NaN: class i not in ground truth)
    mean_accuracy          = mean of per_class_accuracy over non-NaN entries
    per_class_iou[i]       = hist[i, i] / (sum_j hist[i, j] + sum_j hist[j, i] - hist[i, i])
                             (NaN: class i neither in ground truth nor predicted)
    mean_iou               = mean of per_class_iou over non-NaN entries
    frequency_weighted_iou = sum over classes with freq > 0 of freq[i] * per_class_iou[i],
                             freq[i] = sum_j hist[i, j] / sum_ij hist[i, j]
    With no counted pixel at all, every score is NaN.

KITTI road scores (`RoadHistogram`, `road_scores`), as the KITTI road devkit
(`evaluateRoad.py`, `helper.py` `evalExp` + `pxEval_maximizeFMeasure`):
    Probabilities are quantised to 8 bits, q = round(255 * clip(p, 0, 1))
    (half to even), as the probability PNGs the devkit reads (uint8 input is
    taken as q as is).
    Thresholds are t_k = k / 255, k = 0..255; a pixel is predicted road iff
    q / 255 >= t_k, i.e. q >= k (the devkit's rule: `evalExp` counts a road
    pixel as a false negative iff its probability is < t_k and a non-road
    pixel as a false positive iff it is >= t_k). Labels: 1 road, 0 not road,
    anything else ignored.
"""

import keras
import numpy as np
import tensorflow as tf

from segcore.data.info import IGNORE_LABEL
from segcore.errors import ConfigError

SCORE_NAMES = ("mean_iou", "pixel_accuracy", "mean_accuracy", "frequency_weighted_iou")
ROAD_LEVELS = 256          # 8-bit probability maps: q in 0..255
_DEVKIT_EPS = 1e-10        # the devkit's epsilon in precision and F


# --------------------------------------------------------------------------- confusion matrix


def _check_num_classes(num_classes):
    if isinstance(num_classes, (bool, np.bool_)) or not isinstance(num_classes, (int, np.integer)) \
            or num_classes < 1:
        raise ConfigError(f"num_classes must be a positive integer, got {num_classes!r}")
    return int(num_classes)


def _check_ignore_label(ignore_label):
    if ignore_label is not None and (isinstance(ignore_label, (bool, np.bool_))
                                     or not isinstance(ignore_label, (int, np.integer))):
        raise ConfigError(f"ignore_label must be an integer or None, got {ignore_label!r}")
    return None if ignore_label is None else int(ignore_label)


def _flat_class_ids(values, argument):
    """Integer tensor -> 1-D int64 tensor; ConfigError for a non-integer dtype."""
    tensor = tf.convert_to_tensor(values)
    if not (tensor.dtype.is_integer):
        raise ConfigError(f"{argument} must have an integer dtype (class ids), "
                          f"got {tensor.dtype.name}")
    return tf.reshape(tf.cast(tensor, tf.int64), [-1])


def _check_same_size(labels, predictions):
    """Static size check when both sizes are known, a graph assertion otherwise."""
    n_labels, n_predictions = labels.shape[0], predictions.shape[0]
    if n_labels is not None and n_predictions is not None:
        if n_labels != n_predictions:
            raise ConfigError(f"labels have {n_labels} pixels but predictions have "
                              f"{n_predictions}; "
                              "expected the same number ([B,H,W] or [B,H,W,1] each)")
        return []
    return [tf.debugging.assert_equal(tf.size(labels), tf.size(predictions),
                                      message="labels and predictions differ in pixel count")]


def confusion_matrix(labels, predictions, num_classes, ignore_label=IGNORE_LABEL):
    """int64 [C, C] tf.Tensor: hist[i, j] = #pixels with label i predicted as j.

    labels: ground-truth class ids, any integer dtype (uint8 included), any
    shape, e.g. [B, H, W] or [B, H, W, 1]. predictions: predicted class ids
    with the same number of elements. Pixels whose label is outside
    [0, num_classes) or equals `ignore_label` are not counted (FCN `fast_hist`);
    pixels whose prediction is outside [0, num_classes) are not counted either
    (`fast_hist` would fail on them; argmax never produces them).
    Works eagerly (numpy or tensors in, call `.numpy()` on the result) and in graphs.
    """
    num_classes = _check_num_classes(num_classes)
    ignore_label = _check_ignore_label(ignore_label)
    labels = _flat_class_ids(labels, "labels")
    predictions = _flat_class_ids(predictions, "predictions")
    with tf.control_dependencies(_check_same_size(labels, predictions)):
        valid = ((labels >= 0) & (labels < num_classes)
                 & (predictions >= 0) & (predictions < num_classes))
    if ignore_label is not None:
        valid &= labels != ignore_label
    cells = tf.where(valid, num_classes * labels + predictions, tf.zeros_like(labels))
    counts = tf.math.unsorted_segment_sum(tf.cast(valid, tf.int64), cells,
                                          num_classes * num_classes)
    return tf.reshape(counts, [num_classes, num_classes])


# --------------------------------------------------------------------------- FCN scores


def _nanmean(values):
    """Mean of the non-NaN entries; NaN (and no warning) when there are none."""
    kept = values[~np.isnan(values)]
    return float(kept.mean()) if kept.size else float("nan")


def segmentation_scores(confusion):
    """FCN `score.py` scores of a [C, C] confusion matrix (rows = ground truth).

    Returns a dict: pixel_accuracy, mean_accuracy, mean_iou,
    frequency_weighted_iou (Python floats) and per_class_accuracy,
    per_class_iou (float64 arrays of length C, NaN for classes absent as
    described in the module docstring). NaN entries are left out of the means.
    """
    hist = np.asarray(confusion, dtype=np.float64)
    if hist.ndim != 2 or hist.shape[0] != hist.shape[1] or hist.shape[0] == 0:
        raise ConfigError(f"confusion must be a square [C, C] matrix, got shape {hist.shape}")
    diag, truth, predicted, total = np.diag(hist), hist.sum(1), hist.sum(0), hist.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        pixel_accuracy = diag.sum() / total
        per_class_accuracy = diag / truth
        per_class_iou = diag / (truth + predicted - diag)
        freq = truth / total
    present = freq > 0
    return {
        "pixel_accuracy": float(pixel_accuracy),
        "mean_accuracy": _nanmean(per_class_accuracy),
        "mean_iou": _nanmean(per_class_iou),
        "frequency_weighted_iou": float((freq[present] * per_class_iou[present]).sum())
        if total > 0 else float("nan"),
        "per_class_accuracy": per_class_accuracy,
        "per_class_iou": per_class_iou,
    }


def _tf_scores(confusion):
    """The four scalar scores of `segmentation_scores`, in TensorFlow (float32 scalars)."""
    hist = tf.cast(confusion, tf.float64)
    diag = tf.linalg.diag_part(hist)
    truth, predicted, total = tf.reduce_sum(hist, 1), tf.reduce_sum(hist, 0), tf.reduce_sum(hist)
    union = truth + predicted - diag
    iou = tf.math.divide_no_nan(diag, union)

    def present_mean(values, present):      # 0 / 0 = NaN when no class is present
        present = tf.cast(present, tf.float64)
        return tf.reduce_sum(values * present) / tf.reduce_sum(present)

    nan = tf.constant(np.nan, tf.float64)
    scores = {
        "mean_iou": present_mean(iou, union > 0),
        "pixel_accuracy": tf.reduce_sum(diag) / total,
        "mean_accuracy": present_mean(tf.math.divide_no_nan(diag, truth), truth > 0),
        "frequency_weighted_iou": tf.where(
            total > 0, tf.reduce_sum(tf.math.divide_no_nan(truth, total) * iou), nan),
    }
    return {name: tf.cast(value, tf.float32) for name, value in scores.items()}


# --------------------------------------------------------------------------- Keras metric


@keras.saving.register_keras_serializable(package="segcore")
class ConfusionMatrixMetric(keras.metrics.Metric):
    """Streaming confusion matrix; `result()` is a dict of FCN's four scores.

    update_state(y_true, y_pred, sample_weight=None): y_true labels [B, H, W]
    or [B, H, W, 1]; y_pred logits or probabilities [B, H, W, C] (argmax is
    taken here). sample_weight, per pixel (e.g. U-Net's border weights), does
    not weight the counts: a pixel counts once if its weight is > 0 and not at
    all if it is 0. The state is one int64 [C, C] variable `matrix` (exact
    counts; under tf.distribute each replica keeps its own and reads in
    cross-replica context, such as Keras' epoch logs, sum them). Keras
    flattens the result dict into the fit logs: `{prefix}mean_iou`,
    `val_{prefix}mean_iou`, ...
    """

    def __init__(self, num_classes, ignore_label=IGNORE_LABEL, name="confusion", prefix="",
                 **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes = _check_num_classes(num_classes)
        self.ignore_label = _check_ignore_label(ignore_label)
        if not isinstance(prefix, str):
            raise ConfigError(f"prefix must be a string, got {prefix!r}")
        self.prefix = prefix
        self.matrix = self.add_variable(
            shape=(self.num_classes, self.num_classes), initializer="zeros", dtype="int64",
            aggregation="sum", name="confusion_matrix")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = tf.convert_to_tensor(y_pred)
        if y_pred.shape.rank is not None and y_pred.shape[-1] not in (None, self.num_classes):
            raise ConfigError(f"y_pred has {y_pred.shape[-1]} channels; expected num_classes="
                              f"{self.num_classes} (logits or probabilities [B,H,W,C])")
        labels = tf.convert_to_tensor(y_true)
        if not labels.dtype.is_integer:       # Keras may hand labels over as floats
            labels = tf.round(tf.cast(labels, tf.float64))
        labels = tf.reshape(tf.cast(labels, tf.int64), [-1])
        if sample_weight is not None:
            weights = tf.reshape(tf.convert_to_tensor(sample_weight), [-1])
            labels = tf.where(weights > 0, labels, tf.constant(-1, tf.int64))
        predictions = tf.argmax(y_pred, axis=-1, output_type=tf.int64)
        self.matrix.assign_add(
            confusion_matrix(labels, predictions, self.num_classes, self.ignore_label))

    def result(self):
        scores = _tf_scores(self.matrix.value)
        return {self.prefix + name: value for name, value in scores.items()}

    def reset_state(self):
        self.matrix.assign(tf.zeros_like(self.matrix.value))

    def confusion(self):
        """The accumulated int64 [C, C] numpy matrix (summed over replicas)."""
        return np.asarray(keras.ops.convert_to_numpy(self.matrix.value), np.int64)

    def scores(self):
        """`segmentation_scores` of the accumulated matrix (per-class arrays included)."""
        return segmentation_scores(self.confusion())

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes,
                "ignore_label": self.ignore_label, "prefix": self.prefix}


# --------------------------------------------------------------------------- KITTI road


def quantise_road_probability(road_probability):
    """8-bit levels q in 0..255 of road probabilities: round(255 * clip(p, 0, 1)).

    uint8 input is taken as already quantised (a probability PNG). NaN or
    infinite probabilities raise ConfigError.
    """
    probability = np.asarray(road_probability)
    if probability.dtype == np.uint8:
        return probability
    if not np.issubdtype(probability.dtype, np.floating):
        raise ConfigError(f"road_probability must be float in [0, 1] or uint8, "
                          f"got dtype {probability.dtype}")
    if not np.isfinite(probability).all():
        raise ConfigError("road_probability has NaN or infinite values; expected [0, 1]")
    return np.rint(np.clip(probability, 0.0, 1.0) * 255.0).astype(np.uint8)


class RoadHistogram:
    """Streaming KITTI road evaluation: two 256-bin histograms of 8-bit probabilities.

    road[q] = #road pixels (label 1) with quantised probability q,
    not_road[q] = #non-road pixels (label 0) with q; other labels are ignored.
    `add` batches of any shape, then `scores()`.
    """

    def __init__(self, ignore_label=IGNORE_LABEL):
        ignore_label = _check_ignore_label(ignore_label)
        if ignore_label in (0, 1):
            raise ConfigError("ignore_label must not be 0 or 1 (not road / road), "
                              f"got {ignore_label}")
        self.ignore_label = ignore_label
        self.road = np.zeros(ROAD_LEVELS, np.int64)
        self.not_road = np.zeros(ROAD_LEVELS, np.int64)

    def add(self, road_probability, labels):
        """Count one batch: road_probability float in [0, 1] (or uint8) of any shape,
        labels of the same shape (or with a trailing 1)."""
        levels = quantise_road_probability(road_probability)
        labels = np.asarray(labels)
        if labels.ndim == levels.ndim + 1 and labels.shape[-1] == 1:
            labels = labels[..., 0]
        if labels.shape != levels.shape:
            raise ConfigError(f"labels have shape {labels.shape}; expected the road_probability "
                              f"shape {levels.shape} (optionally with a trailing 1)")
        self.road += np.bincount(levels[labels == 1], minlength=ROAD_LEVELS)
        self.not_road += np.bincount(levels[labels == 0], minlength=ROAD_LEVELS)
        return self

    def add_constant(self, road_probability, road_pixels, not_road_pixels):
        """Count a map of one constant probability over `road_pixels` road and
        `not_road_pixels` non-road pixels (what `add` of that map would count)."""
        level = int(quantise_road_probability(np.float64(road_probability)))
        for count, argument in ((road_pixels, "road_pixels"), (not_road_pixels, "not_road_pixels")):
            if int(count) != count or count < 0:
                raise ConfigError(f"{argument} must be a count >= 0, got {count!r}")
        self.road[level] += int(road_pixels)
        self.not_road[level] += int(not_road_pixels)
        return self

    def counts(self):
        """Per threshold k = 0..255 (predicted road iff q >= k): TP, FP, FN, TN arrays."""
        positives, negatives = self.road.sum(), self.not_road.sum()
        false_negatives = np.concatenate([[0], np.cumsum(self.road)[:-1]])   # q < k
        false_positives = np.cumsum(self.not_road[::-1])[::-1]               # q >= k
        return (positives - false_negatives, false_positives, false_negatives,
                negatives - false_positives)

    def scores(self):
        """KITTI devkit scores (`pxEval_maximizeFMeasure`), a dict of Python floats.

        Per threshold: recall = TP / P, precision = TP / (TP + FP + 1e-10); the
        thresholds where both are 0 are dropped. ap = mean over recall levels
        r in np.arange(0, 1.1, 0.1) of the max precision at recall >= r (Pascal
        VOC 11 points). max_f = max of F = 2 P R / (P + R + 1e-10); the first
        (lowest) threshold reaching it gives `threshold` = k / 255 and, at that
        threshold, precision = TP / (TP + FP), recall = TP / P,
        fpr = FP / (FP + TN), fnr = FN / (TP + FN). No road pixel -> all NaN.
        """
        tp, fp, fn, tn = (c.astype(np.float64) for c in self.counts())
        positives = float(self.road.sum())
        if positives == 0:
            return dict.fromkeys(("max_f", "ap", "precision", "recall", "fpr", "fnr",
                                  "threshold"), float("nan"))
        recall = tp / positives
        precision = tp / (tp + fp + _DEVKIT_EPS)
        # TP never increases with k, so the dropped (TP = 0) thresholds are a suffix and
        # indices into the kept arrays are indices into the full ones, as the devkit assumes.
        kept = ~((recall == 0) & (precision == 0))
        recall, precision = recall[kept], precision[kept]
        ap = np.mean([precision[recall >= level].max() for level in np.arange(0, 1.1, 0.1)])
        f_measure = 2 * precision * recall / (precision + recall + _DEVKIT_EPS)
        best = int(np.argmax(f_measure))
        negatives = fp[best] + tn[best]
        return {
            "max_f": float(f_measure[best]),
            "ap": float(ap),
            "precision": float(tp[best] / (tp[best] + fp[best])),
            "recall": float(tp[best] / positives),
            "fpr": float(fp[best] / negatives) if negatives else float("nan"),
            "fnr": float(fn[best] / positives),
            "threshold": best / 255.0,
        }


def road_scores(road_probability, labels, ignore_label=IGNORE_LABEL):
    """KITTI road scores of one set of pixels: `RoadHistogram().add(...).scores()`."""
    return RoadHistogram(ignore_label).add(road_probability, labels).scores()
