"""Pictures of results: overlays, side-by-side figures, training curves."""

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
    `colour`: the seeds' "road painted green". Otherwise every class is painted
    with its palette colour.
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


def plot_curves(history, path, title=""):
    """Loss and metric curves (train and validation) of a `History.history` dict -> PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
