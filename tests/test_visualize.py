"""`segcore.visualize`: overlays, side-by-side panels, confusion heat map, per-class IoU bars."""

import numpy as np
import pytest
from matplotlib import colormaps
from PIL import Image

from segcore import visualize as vis


def read_rgb(path):
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"))


def test_colorize_and_overlay_values():
    palette = ((10, 20, 30), (200, 100, 0))
    ids = np.array([[0, 1], [255, 1]], np.uint8)
    np.testing.assert_array_equal(
        vis.colorize(ids, palette),
        [[[10, 20, 30], [200, 100, 0]], [[255, 255, 255], [200, 100, 0]]])
    image = np.full((2, 2, 3), 100, np.uint8)
    np.testing.assert_array_equal(vis.overlay(image, ids[:1], palette, alpha=0.5)[0],
                                  [[55, 60, 65], [150, 100, 50]])
    road = vis.overlay(image, np.array([[0, 1]]), alpha=0.5, classes=(1,))
    np.testing.assert_array_equal(road[0], [[100, 100, 100], [50, 178, 50]])  # round(177.5) = 178


def test_side_by_side_width():
    panels = [np.zeros((5, 7, 3), np.uint8), np.zeros((5, 3), np.uint8)]
    out = vis.side_by_side(*panels)
    assert out.shape == (5, 7 + 4 + 3, 3)
    assert (out[:, 7:11] == 255).all()


@pytest.mark.parametrize("num_classes", [2, 21])
def test_confusion_heat_map_size_and_row_normalisation(tmp_path, num_classes):
    darkest = np.array(colormaps["Blues"](1.0)[:3]) * 255

    def dark_pixels(confusion):
        path = tmp_path / "confusion.png"
        assert vis.plot_confusion_matrix(confusion, [f"c{i}" for i in range(num_classes)],
                                         path, title="t") == path
        rgb = read_rgb(path).astype(float)
        width, height = vis.confusion_plot_size(num_classes)
        assert rgb.shape == (height, width, 3)
        return int((np.abs(rgb - darkest).max(axis=-1) < 8).sum())

    # every class right: the diagonal cells are fraction 1.0, the darkest colour
    diagonal = dark_pixels(np.diag(np.arange(1, num_classes + 1) * 1000))
    # every row split evenly over two classes: no cell reaches 1.0 (only the colour bar's
    # top is that dark), though the counts are large (raw counts would be dark)
    split = np.eye(num_classes) + np.roll(np.eye(num_classes), 1, axis=1)
    even = dark_pixels(split * 10 ** 6)
    assert diagonal > 8000
    assert even < 1500


def bands(mask):
    """(first row, last row, max width) of each run of rows that contain `mask` pixels."""
    rows = mask.sum(axis=1)
    found, start = [], None
    for y, count in enumerate(list(rows) + [0]):
        if count and start is None:
            start = y
        elif not count and start is not None:
            found.append((start, y - 1, int(rows[start:y].max())))
            start = None
    return found


def test_per_class_iou_bars(tmp_path):
    path = vis.plot_per_class_iou([0.8, float("nan"), 0.4, None], ["a", "b", "c", "d"],
                                  tmp_path / "iou.png")
    rgb = read_rgb(path)
    width, height = vis.iou_plot_size(4)
    assert rgb.shape == (height, width, 3)
    found = bands(np.all(rgb == vis.IOU_BAR_COLOUR, axis=-1))
    assert len(found) == 2                       # NaN / None classes get no bar
    (top0, _, first), (top1, _, second) = found
    assert top0 < top1                           # first class on top
    assert first / second == pytest.approx(2.0, rel=0.02)   # bar length proportional to IoU


def test_plot_input_checks(tmp_path):
    with pytest.raises(ValueError, match="square"):
        vis.plot_confusion_matrix(np.zeros((2, 3)), None, tmp_path / "x.png")
    with pytest.raises(ValueError, match="empty"):
        vis.plot_per_class_iou([], None, tmp_path / "y.png")
