"""Pictures of results: overlays, side-by-side figures, training curves,
confusion-matrix heat maps and per-class IoU bar charts.

The figures are drawn with matplotlib's Agg backend (no display needed) at a
size fixed in pixels (`confusion_plot_size`, `iou_plot_size`), so a figure of
C classes is always the same size.
"""

import numpy as np

ROAD_GREEN = (0, 255, 0)


def colorize(class_ids, palette, ignore_label=255, ignore_colour=(255, 255, 255)):
    """uint8 RGB [H, W, 3] of class ids through `palette` (ignore -> `ignore_colour`)."""
    table = np.zeros((256, 3), np.uint8)
    table[: len(palette)] = np.asarray(palette, np.uint8)
    table[ignore_label] = ignore_colour
    return table[np.asarray(class_ids, np.uint8)]


def overlay(image, class_ids, palette=None, alpha=0.5, classes=None, colour=ROAD_GREEN):
    """Blend class colours over `image` (uint8 [H, W, 3]).

    With `classes` (e.g. (1,) for road), only those pixels are painted, in
    `colour`: the "road painted green" of the KITTI blog posts (seeds 000/003,
    SOURCES.md). Otherwise every class is painted with its palette colour.
    """
    image = np.asarray(image, np.float32)
    class_ids = np.asarray(class_ids)
    if classes is not None:
        mask = np.isin(class_ids, classes)[..., None]
        paint = np.broadcast_to(np.asarray(colour, np.float32), image.shape)
    else:
        mask = np.ones(class_ids.shape + (1,), bool)
        paint = colorize(class_ids, palette).astype(np.float32)
    blended = np.where(mask, (1 - alpha) * image + alpha * paint, image)
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)


def side_by_side(*panels):
    """Concatenate uint8 RGB panels of the same height horizontally, 4 px apart."""
    height = max(p.shape[0] for p in panels)
    gap = np.full((height, 4, 3), 255, np.uint8)
    parts = []
    for panel in panels:
        panel = np.asarray(panel, np.uint8)
        if panel.ndim == 2:
            panel = np.repeat(panel[..., None], 3, axis=-1)
        parts += [panel, gap]
    return np.concatenate(parts[:-1], axis=1)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(history, path, title=""):
    """Loss and metric curves (train and validation) of a `History.history` dict -> PNG."""
    plt = _pyplot()

    metrics = [k for k in history if not k.startswith("val_") and k != "learning_rate"]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.2), squeeze=False)
    for axis, key in zip(axes[0], metrics):
        epochs = np.arange(1, len(history[key]) + 1)
        axis.plot(epochs, history[key], "o-", label="train")
        if f"val_{key}" in history:
            axis.plot(epochs, history[f"val_{key}"], "s-", label="validation")
        axis.set_xlabel("epoch")
        axis.set_title(key)
        axis.grid(alpha=0.3)
        axis.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# --------------------------------------------------------------------------- evaluation figures

DPI = 100
IOU_BAR_COLOUR = (31, 119, 180)     # matplotlib "tab:blue"
_ANNOTATE_MAX_CLASSES = 25          # write the cell values when there are at most this many


def confusion_plot_size(num_classes):
    """(width, height) in pixels of `plot_confusion_matrix`'s PNG for `num_classes` classes."""
    return 360 + 32 * num_classes, 300 + 32 * num_classes


def iou_plot_size(num_classes):
    """(width, height) in pixels of `plot_per_class_iou`'s PNG for `num_classes` classes."""
    return 640, 160 + 24 * num_classes


def _class_labels(class_names, num_classes):
    names = list(class_names) if class_names is not None else []
    return [names[i] if i < len(names) else str(i) for i in range(num_classes)]


def plot_confusion_matrix(confusion, class_names, path, title=""):
    """Heat map of a [C, C] confusion matrix (rows ground truth, columns prediction) -> PNG.

    Each row is normalised by its ground-truth pixel count, so a cell is the
    fraction of class i's pixels predicted as j and the diagonal is the
    per-class accuracy (colour scale 0..1, "Blues"); rows of classes absent
    from the ground truth stay blank. With at most 25 classes the fractions are
    written in the cells (the diagonal, and the other cells from 0.01). The PNG
    is `confusion_plot_size(C)` pixels.
    """
    plt = _pyplot()
    hist = np.asarray(confusion, np.float64)
    if hist.ndim != 2 or hist.shape[0] != hist.shape[1] or hist.shape[0] == 0:
        raise ValueError(f"confusion must be a square [C, C] matrix, got shape {hist.shape}")
    num_classes = hist.shape[0]
    labels = _class_labels(class_names, num_classes)
    totals = hist.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        fractions = np.where(totals > 0, hist / totals, np.nan)
    width, height = confusion_plot_size(num_classes)
    fig, axis = plt.subplots(figsize=(width / DPI, height / DPI), dpi=DPI)
    image = axis.imshow(np.ma.masked_invalid(fractions), cmap="Blues", vmin=0.0, vmax=1.0,
                        interpolation="nearest")
    fig.colorbar(image, ax=axis, fraction=0.046, pad=0.04, label="fraction of ground-truth pixels")
    axis.set_xticks(range(num_classes), labels, rotation=90, fontsize=8)
    axis.set_yticks(range(num_classes), labels, fontsize=8)
    axis.set_xlabel("predicted class")
    axis.set_ylabel("ground-truth class")
    if num_classes <= _ANNOTATE_MAX_CLASSES:
        size = 8 if num_classes <= 12 else 6
        for i in range(num_classes):
            for j in range(num_classes):
                if np.isfinite(fractions[i, j]) and (i == j or fractions[i, j] >= 0.01):
                    axis.text(j, i, f"{fractions[i, j]:.2f}", ha="center", va="center",
                              fontsize=size, color="white" if fractions[i, j] > 0.5 else "black")
    axis.set_title(title or "confusion matrix (row-normalised)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def plot_per_class_iou(per_class_iou, class_names, path, title=""):
    """Horizontal bar chart of per-class IoU (0..1) with the mean IoU as a dashed line -> PNG.

    NaN entries (a class neither in the ground truth nor predicted) get no bar
    and the note "n/a"; the mean is over the other classes, as `mean_iou`. The
    PNG is `iou_plot_size(C)` pixels; bars are drawn in `IOU_BAR_COLOUR`.
    """
    plt = _pyplot()
    iou = np.array([np.nan if v is None else v for v in per_class_iou], np.float64)
    num_classes = iou.size
    if num_classes == 0:
        raise ValueError("per_class_iou is empty")
    labels = _class_labels(class_names, num_classes)
    width, height = iou_plot_size(num_classes)
    fig, axis = plt.subplots(figsize=(width / DPI, height / DPI), dpi=DPI)
    rows = np.arange(num_classes)
    present = np.isfinite(iou)
    axis.barh(rows[present], iou[present], height=0.7,
              color=np.asarray(IOU_BAR_COLOUR) / 255.0, edgecolor="none", antialiased=False)
    for row, value in zip(rows, iou):
        axis.text(value + 0.01 if np.isfinite(value) else 0.01, row,
                  f"{value:.3f}" if np.isfinite(value) else "n/a", va="center", fontsize=8)
    if present.any():
        mean = float(iou[present].mean())
        axis.axvline(mean, color="black", linestyle="--", linewidth=1)
        axis.text(mean, -0.9, f" mean {mean:.3f}", fontsize=8, va="bottom")
    axis.set_yticks(rows, labels, fontsize=8)
    axis.set_ylim(num_classes - 0.5, -1.2)       # first class on top, room for the mean label
    axis.set_xlim(0.0, 1.1)
    axis.set_xlabel("IoU")
    axis.grid(axis="x", alpha=0.3)
    axis.set_title(title or "per-class IoU", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path
