"""The trivial baselines reported beside every score: constant predictions on the same split.

A score means little until it is compared with what a predictor that looks at
no image reaches on the same pixels; metrics.json and the evaluation report
carry these under "baseline".

* `majority_class`: the split's most frequent ground-truth class (among the
  counted, non-ignored pixels; ties go to the lowest class id) predicted at
  every labelled pixel, scored by `segcore.metrics.segmentation_scores` of its
  confusion matrix, which follows from the true matrix's row sums (no second
  pass over the data). A constant prediction of class c scores pixel accuracy
  f_c (the share of class c in the labels), mean accuracy 1/K, mean IoU f_c/K
  and frequency-weighted IoU f_c**2, K being the number of classes present in
  the ground truth: the majority class is the best constant class predictor on
  that split in pixel accuracy (and in the other three).
* `constant_road`: a constant road probability for the KITTI road task, scored
  by `segcore.metrics.RoadHistogram` as the network's probabilities are. Every
  constant scores the same: the thresholds at or below it mark every labelled
  pixel road (precision p, recall 1, p the road share of the labelled pixels),
  the ones above it mark none and are dropped by the devkit, so MaxF = 2p/(1+p)
  (up to the devkit's 1e-10) and AP = p.
* `constant_cell_slice`: the ISBI 2012 per-slice values (`segcore.isbi_metrics`)
  of the constant map P(cell interior) = 1 ("cell interior everywhere"). Like
  every map it is binarised as P > threshold, so at the Rand threshold 1.0 it
  is membrane everywhere: its best-threshold Rand error is the better of the
  two constant maps.
"""

import numpy as np

from segcore import isbi_metrics
from segcore.errors import ConfigError
from segcore.metrics import SCORE_NAMES, RoadHistogram, segmentation_scores


def majority_class(confusion, class_names=None):
    """Scores of the majority-class constant predictor of a [C, C] confusion matrix
    (rows ground truth): predictor (a description), class (its id), and
    pixel_accuracy, mean_accuracy, mean_iou, frequency_weighted_iou. With no
    counted pixel, class is None and the scores are NaN."""
    hist = np.asarray(confusion, np.int64)
    if hist.ndim != 2 or hist.shape[0] != hist.shape[1] or hist.shape[0] == 0:
        raise ConfigError(f"confusion must be a square [C, C] matrix, got shape {hist.shape}")
    if class_names is not None and len(class_names) != hist.shape[0]:
        raise ConfigError(f"class_names has {len(class_names)} names for a "
                          f"{hist.shape[0]}-class confusion matrix")
    truth = hist.sum(axis=1)
    if truth.sum() == 0:
        return {"predictor": "none (no labelled pixel)", "class": None,
                **dict.fromkeys(SCORE_NAMES, float("nan"))}
    majority = int(np.argmax(truth))
    constant = np.zeros_like(hist)
    constant[:, majority] = truth
    scores = segmentation_scores(constant)
    name = class_names[majority] if class_names is not None else f"class {majority}"
    return {"predictor": f"majority class '{name}' everywhere", "class": majority,
            **{key: scores[key] for key in SCORE_NAMES}}


def constant_road(road_pixels, not_road_pixels, probability=1.0):
    """KITTI devkit scores (`RoadHistogram.scores`) of a constant road `probability`
    over `road_pixels` road and `not_road_pixels` non-road pixels, plus predictor
    and road_fraction. Any constant gives the same scores (module docstring)."""
    histogram = RoadHistogram().add_constant(probability, road_pixels, not_road_pixels)
    total = int(road_pixels) + int(not_road_pixels)
    return {"predictor": "constant road probability (every constant scores the same)",
            "road_fraction": int(road_pixels) / total if total else float("nan"),
            **histogram.scores()}


def constant_cell_slice(label):
    """`isbi_metrics.slice_scores` of the map P(cell interior) = 1 over `label` [H, W]
    (class ids: 0 cell, 1 membrane)."""
    label = np.asarray(label)
    return isbi_metrics.slice_scores(np.ones(label.shape, np.float32), label)
