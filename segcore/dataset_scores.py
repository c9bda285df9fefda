"""The scores a dataset's own benchmark defines, beside the confusion matrix's.

`for_classes(class_names, ignore_label)` picks them by the split's classes:

* ("not_road", "road"), KITTI road: the devkit's MaxF, AP, precision, recall,
  FPR and FNR of the road probabilities (`segcore.metrics.RoadHistogram`),
  key "road"; baseline: a constant road probability (`segcore.baseline.constant_road`).
* ("cell", "membrane"), ISBI 2012 (and the generated `synthetic_membranes`):
  the challenge's pixel error, Rand error at 0.5 and at the best threshold,
  warping error and cell-interior IoU of P(cell) = the class-0 probability
  (`segcore.isbi_metrics.isbi_scores`), key "isbi"; baseline: the map "cell
  interior everywhere" (`segcore.baseline.constant_cell_slice`). A slice whose
  pixels all carry the ignore label (isbi2012's "test" split) is skipped.
* any other classes: None (no extra scores).

Both the trainer's metrics.json and `segcore.evaluate`'s report get these from
`segcore.evaluate.evaluate_split`, image by image as it predicts, so the two
cannot differ. `describe` is the one-line summary both print, each figure
followed by its baseline's in parentheses.
"""

import math

import numpy as np

from segcore import baseline, isbi_metrics
from segcore.errors import ConfigError
from segcore.metrics import RoadHistogram

ROAD_CLASSES = ("not_road", "road")
ISBI_CLASSES = ("cell", "membrane")


class RoadScores:
    """KITTI road devkit scores, accumulated image by image."""

    key = "road"

    def __init__(self, ignore_label):
        self.histogram = RoadHistogram(ignore_label)

    def add(self, probabilities, labels):
        """probabilities [H, W, 2] (numpy), labels [H, W]: count P(road)."""
        self.histogram.add(probabilities[..., 1], labels)

    def scores(self):
        return self.histogram.scores()

    def baseline(self):
        return baseline.constant_road(self.histogram.road.sum(), self.histogram.not_road.sum())


class IsbiScores:
    """ISBI 2012 challenge errors, each slice scored as it comes (its map is not kept)."""

    key = "isbi"

    def __init__(self, ignore_label):
        self.ignore_label = ignore_label
        self.slices, self.constant = [], []

    def add(self, probabilities, labels):
        """probabilities [H, W, 2] (numpy, class 0 = cell), labels [H, W] class ids."""
        labels = np.asarray(labels)
        if labels.ndim == 3 and labels.shape[-1] == 1:
            labels = labels[..., 0]
        if np.all(labels == self.ignore_label):
            return
        self.slices.append(isbi_metrics.slice_scores(probabilities[..., 0], labels))
        self.constant.append(baseline.constant_cell_slice(labels))

    def scores(self):
        """`isbi_metrics.mean_scores` of the slices; None when no slice was labelled."""
        return isbi_metrics.mean_scores(self.slices) if self.slices else None

    def baseline(self):
        if not self.constant:
            return None
        return {"predictor": "constant map P(cell) = 1 (cell interior everywhere)",
                **isbi_metrics.mean_scores(self.constant)}


def for_classes(class_names, ignore_label):
    """A fresh `RoadScores` or `IsbiScores` for these class names, else None."""
    kinds = {ROAD_CLASSES: RoadScores, ISBI_CLASSES: IsbiScores}
    kind = kinds.get(tuple(class_names))
    return kind(ignore_label) if kind else None


def _number(value, digits=4):
    if value is None or math.isnan(value):
        return "n/a"
    return f"{value:.{digits}f}"


def _pair(scores, baseline_scores, key, digits=4):
    """'0.9123 (0.6234)': a figure and, in parentheses, its baseline's."""
    text = _number(scores.get(key), digits)
    if baseline_scores:
        text += f" ({_number(baseline_scores.get(key), digits)})"
    return text


def describe(key, scores, baseline_scores=None):
    """One line summarising the "road" or "isbi" scores, each figure followed by the
    baseline's in parentheses when `baseline_scores` are given (JSON null or NaN print
    as n/a)."""
    b = baseline_scores or {}
    if key == RoadScores.key:
        note = "; in parentheses a constant road probability" if b else ""
        return (f"road (KITTI devkit, perspective view{note}): MaxF {_pair(scores, b, 'max_f')}"
                f"  AP {_pair(scores, b, 'ap')}  precision {_number(scores.get('precision'))}  "
                f"recall {_number(scores.get('recall'))}  FPR {_number(scores.get('fpr'))}  "
                f"FNR {_number(scores.get('fnr'))}  at threshold "
                f"{_number(scores.get('threshold'), 3)}")
    if key == IsbiScores.key:
        note = " (in parentheses the map 'cell interior everywhere')" if b else ""
        best = (f"{_number(scores.get('rand_error_best_threshold'), 1)}: "
                f"{_number(scores.get('rand_error_best'))}")
        if b:
            best += (f" ({_number(b.get('rand_error_best_threshold'), 1)}: "
                     f"{_number(b.get('rand_error_best'))})")
        return (f"ISBI 2012 errors on {scores.get('slices')} slice(s){note}: pixel error "
                f"{_pair(scores, b, 'pixel_error')}, Rand error {_pair(scores, b, 'rand_error')}, "
                f"at the best threshold {best}, warping error "
                f"{_pair(scores, b, 'warping_error', 6)}, foreground IoU "
                f"{_pair(scores, b, 'foreground_iou')}")
    raise ConfigError(f"no dataset scores named {key!r}; expected road or isbi")
