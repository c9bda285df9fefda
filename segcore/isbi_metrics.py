"""Metrics of the ISBI 2012 EM segmentation challenge (U-Net paper, Table 1).

They are the dataset's (the challenge's) metrics, not one model family's: the
engine's evaluation (`segcore.dataset_scores`) reports them for every split
whose classes are ("cell", "membrane"), the trainer's and `segcore.evaluate`'s.

Conventions. `label` is a ground-truth slice, non-zero = cell interior (ISBI:
255), zero = membrane. `pred` has the same polarity: a float map of the
probability of "cell interior" (e.g. ``softmax(logits)[..., 1]`` of a model
trained on classes {0: membrane, 1: interior}), binarised as ``pred >
threshold``; a bool map is used as it is, an integer map as ``pred > 0``.
`threshold` may also be a sequence: the metric is then the minimum over the
thresholds, as the challenge's Fiji scripts report (the best F-score over
thresholds from 0 to 1 in steps of 0.1). A stack [N, H, W] gives the mean over slices.
Cells are 4-connected components of the interior (`scipy.ndimage.label`), so
membranes are 8-connected, as in Fiji (trainableSegmentation.metrics).

* `pixel_error`: fraction of pixels whose binary class differs (Fiji
  `PixelError`: squared Euclidean distance between the binary maps / pixels).
* `foreground_iou`: |P and L| / |P or L| of the interior class (not a
  challenge metric; 1.0 when both are empty).
* `rand_error` = 1 - V_Rand, the foreground-restricted Rand F-score
  (Arganda-Carreras et al., Front. Neuroanat. 2015, Sec. 2.3; Fiji
  `RandError.foregroundRestrictedStatsN2`), in the paper's notation: p_ij is
  the probability that a pixel drawn from the ground truth's interior (pixels
  that are membrane in the truth are left out) lies in predicted cell i (of
  S) and true cell j (of T); s_i = sum_j p_ij, t_j = sum_i p_ij::

      V_split = sum_ij p_ij**2 / sum_j t_j**2      (1 when no cell is split)
      V_merge = sum_ij p_ij**2 / sum_i s_i**2      (1 when no cells are merged)
      V_Rand  = sum_ij p_ij**2 / (alpha * sum_i s_i**2 + (1 - alpha) * sum_j t_j**2)

  with alpha = 0.5, the harmonic mean of V_split and V_merge. Pixels of the
  truth's interior that the prediction calls membrane each count as a predicted
  singleton cell: together they add sum_j p_0j / n to sum p_ij**2 and to
  sum s_i**2 (n = number of interior pixels of the truth), as the Fiji code does.
* `warping_error`: Jain et al. (CVPR 2010) topology-preserving warping error as
  Fiji `WarpingError.simplePointWarp2d` computes it: the binary truth L is
  relaxed towards the binarised prediction T by flipping, pass after pass,
  mismatched pixels that are simple points of L (flipping them changes no
  connected component of cells or membranes: 4-adjacency for cells,
  8-adjacency for membranes), each pass taking the mismatches in order of
  decreasing |pred - threshold| (ties in Fiji's scan order: column by column,
  top to bottom) and re-testing simplicity on the current L before each flip;
  the image is framed by one membrane pixel. Passes stop when one flips
  nothing. The error is the number of remaining mismatches / number of pixels:
  only topological disagreements (splits, mergers, added or lost cells and
  holes) remain. Fiji tests simplicity by embedding the 3x3 patch in a 3x3x3
  block of background and using Bertrand & Malandain's 3-D (6, 26) test; that
  is the same predicate as the 2-D (4, 8) test used here: with background
  above and below, the 26-connected background is one component whenever the
  8-neighbourhood holds a background pixel (tests/test_isbi_metrics.py checks
  this over all 256 neighbourhoods; a line-by-line port of Fiji's `simple3d`
  agreed on all of them when this was written). The 2015 "minimum splits and
  mergers" variant (mismatches clustered and classified) is not implemented.

A set of slices (`isbi_scores`, the figures of metrics.json["isbi"]) is scored
as the challenge's scripts do: each error per slice at threshold 0.5, averaged
over the slices, and the Rand error also at each of `RAND_THRESHOLDS` (0, 0.1,
..., 1), the lowest mean over the thresholds being `rand_error_best`. There the
labels are class ids (0 cell, 1 membrane, as `segcore.data.isbi2012` reads
them) and the maps are P(cell interior); `slice_scores` scores one slice and
`mean_scores` averages them, so a split can be scored slice by slice as it is
predicted.
"""

import numpy as np
from scipy import ndimage

from segcore.errors import ConfigError, DataError

RAND_THRESHOLDS = tuple(np.round(np.linspace(0.0, 1.0, 11), 1))

_FOUR = ndimage.generate_binary_structure(2, 1)
_EIGHT = ndimage.generate_binary_structure(2, 2)
# Neighbour order of the simple-point lookup table: bit k <-> _OFFSETS[k].
_OFFSETS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))


def pixel_error(pred, label, threshold=0.5):
    """Fraction of pixels whose binary class (interior / membrane) differs."""
    return _metric(pred, label, threshold,
                   lambda p, t, label_bin, th: float(np.mean(p != label_bin)))


def foreground_iou(pred, label, threshold=0.5):
    """Intersection over union of the cell-interior class."""
    def iou(p, _t, label_bin, _th):
        union = np.sum(p | label_bin)
        return 1.0 if union == 0 else float(np.sum(p & label_bin) / union)

    return _metric(pred, label, threshold, iou, minimise=False)


def rand_scores(pred, label, threshold=0.5):
    """Foreground-restricted Rand scores of one slice: dict v_rand, split, merge."""
    pred, label = _as_arrays(pred, label)
    if pred.ndim != 2:
        raise ConfigError(f"rand_scores takes one 2-D slice, got shape {pred.shape}")
    if np.ndim(threshold) != 0:
        raise ConfigError("rand_scores takes a single threshold; rand_error takes a sequence")
    return _rand_scores(_binarize(pred, threshold), label != 0)


def rand_error(pred, label, threshold=0.5):
    """1 - V_Rand (foreground-restricted Rand F-score, alpha = 0.5)."""
    return _metric(pred, label, threshold,
                   lambda p, t, label_bin, th: 1.0 - _rand_scores(p, label_bin)["v_rand"])


def warping_error(pred, label, threshold=0.5, return_warped=False):
    """Topology-preserving warping error (Jain et al. 2010, Fiji's implementation).

    With `return_warped` (one slice, one threshold) also returns the warped
    binary label.
    """
    if return_warped:
        pred, label = _as_arrays(pred, label)
        if pred.ndim != 2 or np.ndim(threshold) != 0:
            raise ConfigError("return_warped needs one 2-D slice and a single threshold")
        return _warp(pred, label != 0, threshold)
    return _metric(pred, label, threshold,
                   lambda p, t, label_bin, th: _warp(t, label_bin, th)[0])


def slice_scores(interior_probability, label):
    """Per-slice ISBI values of a P(cell interior) map [H, W] and its label [H, W]
    (class ids: 0 cell, anything else membrane): pixel_error, foreground_iou and
    warping_error at threshold 0.5, and rand_error, a dict threshold -> Rand error
    over `RAND_THRESHOLDS`."""
    interior = (np.asarray(label) == 0).astype(np.uint8)
    return {
        "pixel_error": pixel_error(interior_probability, interior),
        "foreground_iou": foreground_iou(interior_probability, interior),
        "warping_error": warping_error(interior_probability, interior),
        "rand_error": {t: rand_error(interior_probability, interior, threshold=t)
                       for t in RAND_THRESHOLDS},
    }


def mean_scores(per_slice):
    """The ISBI figures of a list of `slice_scores`: per-slice values averaged over
    the slices; `rand_error_best` is the lowest mean Rand error over `RAND_THRESHOLDS`
    (the first of equal ones), at `rand_error_best_threshold`."""
    if not per_slice:
        raise ConfigError("mean_scores needs the scores of at least one slice")
    mean = lambda key: float(np.mean([s[key] for s in per_slice]))  # noqa: E731
    by_threshold = {t: float(np.mean([s["rand_error"][t] for s in per_slice]))
                    for t in RAND_THRESHOLDS}
    best = min(by_threshold, key=by_threshold.get)
    return {
        "slices": len(per_slice),
        "threshold": 0.5,
        "pixel_error": mean("pixel_error"),
        "foreground_iou": mean("foreground_iou"),
        "rand_error": by_threshold[0.5],
        "warping_error": mean("warping_error"),
        "rand_error_best": by_threshold[best],
        "rand_error_best_threshold": float(best),
    }


def isbi_scores(interior_probabilities, labels):
    """ISBI figures of lists of P(cell interior) maps [H, W] and their labels (class
    ids: 0 cell, 1 membrane): `mean_scores` of each pair's `slice_scores`."""
    return mean_scores([slice_scores(p, label)
                        for p, label in zip(interior_probabilities, labels)])


def simple_point_table():
    """bool[256]: is the centre of a 3x3 binary patch a simple point?

    Index bit k is the neighbour at `_OFFSETS[k]` (row, col offsets). 2-D digital
    topology with 4-adjacent foreground (cells) and 8-adjacent background: the
    centre is simple when the foreground of its 8-neighbourhood has exactly one
    4-component containing a 4-neighbour and the background of its
    8-neighbourhood exactly one 8-component.
    """
    return _SIMPLE.copy()


def _simple_table():
    table = np.zeros(256, dtype=bool)
    edge = np.zeros((3, 3), dtype=bool)
    edge[0, 1] = edge[1, 0] = edge[1, 2] = edge[2, 1] = True
    for code in range(256):
        patch = np.zeros((3, 3), dtype=bool)
        for k, (dy, dx) in enumerate(_OFFSETS):
            patch[1 + dy, 1 + dx] = bool(code >> k & 1)
        fg_labels, _ = ndimage.label(patch, _FOUR)
        t4 = len(set(fg_labels[edge & patch].tolist()))
        background = ~patch
        background[1, 1] = False
        bg_labels, t8 = ndimage.label(background, _EIGHT)
        table[code] = t4 == 1 and t8 == 1
    return table


_SIMPLE = _simple_table()


def _as_arrays(pred, label):
    pred, label = np.asarray(pred), np.asarray(label)
    if label.ndim == pred.ndim + 1 and label.shape[-1] == 1:
        label = label[..., 0]
    if pred.shape != label.shape or pred.ndim not in (2, 3):
        raise ConfigError(
            "pred and label must be [H, W] or [N, H, W] of one shape, "
            f"got {pred.shape} and {label.shape}"
        )
    return pred, label


def _binarize(pred, threshold):
    if pred.dtype == bool:
        return pred
    if np.issubdtype(pred.dtype, np.integer):
        return pred > 0
    return pred > threshold


def _metric(pred, label, threshold, fn, minimise=True):
    pred, label = _as_arrays(pred, label)
    thresholds = np.atleast_1d(np.asarray(threshold, dtype=np.float64))
    if thresholds.ndim != 1 or thresholds.size == 0:
        raise ConfigError(f"threshold must be a number or a sequence of numbers, got {threshold!r}")
    slices = [(pred, label)] if pred.ndim == 2 else list(zip(pred, label))
    values = []
    for th in thresholds:
        per_slice = [fn(_binarize(p, th), p, label_slice != 0, th) for p, label_slice in slices]
        values.append(float(np.mean(per_slice)))
    return min(values) if minimise else max(values)


def _rand_scores(pred_bin, label_bin):
    truth, _ = ndimage.label(label_bin, _FOUR)
    proposal, num_pred = ndimage.label(pred_bin, _FOUR)
    inside = truth > 0
    n = np.count_nonzero(inside)
    if n == 0:
        raise DataError(
            "label has no cell-interior pixel: the foreground-restricted Rand score is undefined"
        )
    i = truth[inside].astype(np.int64)
    j = proposal[inside].astype(np.int64)
    counts = np.bincount(i * (num_pred + 1) + j, minlength=(truth.max() + 1) * (num_pred + 1))
    # p[t, q]: true cell t >= 1 (the docstring's j), predicted cell q (its i), 0 = membrane
    p = counts.reshape(truth.max() + 1, num_pred + 1)[1:] / n
    singletons = p[:, 0].sum() / n  # predicted-membrane pixels, each its own cell
    sum_ab = np.sum(p[:, 1:] ** 2) + singletons
    sum_truth = np.sum(p.sum(axis=1) ** 2)
    sum_pred = np.sum(p[:, 1:].sum(axis=0) ** 2) + singletons
    return {
        "v_rand": float(2.0 * sum_ab / (sum_truth + sum_pred)),
        "split": float(sum_ab / sum_truth),
        "merge": float(sum_ab / sum_pred),
    }


def _warp(pred, label_bin, threshold):
    """Fiji's simplePointWarp2d: returns (warping error, warped binary label)."""
    height, width = label_bin.shape
    if np.issubdtype(pred.dtype, np.floating):
        real = pred.astype(np.float64)
    else:
        real = _binarize(pred, threshold).astype(np.float64)
    stride = width + 2
    source = np.pad(label_bin, 1).astype(np.uint8)  # framed by membrane (0)
    target = np.pad(_binarize(pred, threshold), 1).astype(np.uint8)
    priority = np.pad(np.abs(real - threshold), 1)
    flat = source.ravel().tolist()
    offsets = [dy * stride + dx for dy, dx in _OFFSETS]
    simple = _SIMPLE.tolist()

    previous = None
    while True:
        source = np.asarray(flat, dtype=np.uint8).reshape(height + 2, width + 2)
        mismatched = source != target
        diff = int(np.count_nonzero(mismatched))
        if diff == 0 or diff == previous:
            break
        previous = diff
        xs, ys = np.nonzero(mismatched.T)  # Fiji's scan order: x outer, y inner
        order = np.argsort(-priority[ys, xs], kind="stable")
        for index in (ys[order] * stride + xs[order]).tolist():
            code = 0
            for k, offset in enumerate(offsets):
                code |= flat[index + offset] << k
            if simple[code]:
                flat[index] ^= 1
    return diff / (height * width), source[1:-1, 1:-1].astype(bool)
