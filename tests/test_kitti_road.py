"""KITTI Road reader on the real samples: colour rule pixel for pixel, unknown colours."""

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from segcore import data
from segcore.data import images, kitti_road
from segcore.errors import DataError


def kitti_rule(rgb):
    """The published rule: magenta road 1, red not road 0, black outside the area 255."""
    r, g, b = (rgb[..., i].astype(int) for i in range(3))
    labels = np.full(rgb.shape[:2], 99, np.uint8)
    labels[(r == 255) & (g == 0) & (b == 255)] = 1
    labels[(r == 255) & (g == 0) & (b == 0)] = 0
    labels[(r == 0) & (g == 0) & (b == 0)] = 255
    return labels


def test_colour_decoding_matches_the_rule_pixel_for_pixel(datasets_root):
    root = os.path.join(datasets_root, "kitti_road")
    pairs = kitti_road.list_pairs(root, "training")
    assert [os.path.basename(m) for _, m in pairs] == ["um_road_000000.png", "um_road_000001.png"]
    decoded = list(data.load("kitti_road", root, "training").as_numpy_iterator())
    assert len(decoded) == 2
    counts = np.zeros(3, np.int64)
    for (image_path, mask_path), (image, labels) in zip(pairs, decoded):
        expected = kitti_rule(np.array(Image.open(mask_path).convert("RGB")))
        assert not (expected == 99).any()  # the samples hold only the three colours
        np.testing.assert_array_equal(labels, expected)
        np.testing.assert_array_equal(image, np.array(Image.open(image_path).convert("RGB")))
        assert image.shape == (375, 1242, 3)
        counts += [(labels == 0).sum(), (labels == 1).sum(), (labels == 255).sum()]
    # golden class counts of the two frames (also printed by `check kitti_road`)
    assert counts.tolist() == [787077, 130481, 13942]


def _copy_kitti(src_root, dst_root):
    src = kitti_road.training_dir(src_root)
    dst = os.path.join(dst_root, "data_road", "training")
    for sub in ("image_2", "gt_image_2"):
        os.makedirs(os.path.join(dst, sub))
        for name in os.listdir(os.path.join(src, sub)):
            shutil.copy(os.path.join(src, sub, name), os.path.join(dst, sub, name))
    return dst


def test_unknown_colour_names_file_and_colour(datasets_root, tmp_path):
    training = _copy_kitti(os.path.join(datasets_root, "kitti_road"), tmp_path)
    mask_path = os.path.join(training, "gt_image_2", "um_road_000001.png")
    rgb = np.array(Image.open(mask_path).convert("RGB"))
    rgb[200, 600] = (0, 255, 0)
    Image.fromarray(rgb).save(mask_path)
    dataset = data.load("kitti_road", str(tmp_path), "training")
    with pytest.raises(tf.errors.OpError) as caught:
        list(dataset.as_numpy_iterator())
    message = str(images.data_error_from(caught.value))
    assert mask_path in message
    assert "unknown mask colour (0,255,0)" in message


def test_palette_copy_of_a_colour_mask_decodes_the_same(datasets_root, tmp_path):
    """A palette PNG where an RGB mask is expected is read by its colours (correct)."""
    training = _copy_kitti(os.path.join(datasets_root, "kitti_road"), tmp_path)
    mask_path = os.path.join(training, "gt_image_2", "um_road_000000.png")
    rgb = np.array(Image.open(mask_path).convert("RGB"))
    Image.open(mask_path).convert("RGB").quantize(colors=3, method=Image.Quantize.FASTOCTREE,
                                                  dither=Image.Dither.NONE).save(mask_path)
    assert Image.open(mask_path).mode == "P"
    assert np.array_equal(np.array(Image.open(mask_path).convert("RGB")), rgb)
    (_, labels), _ = list(data.load("kitti_road", str(tmp_path), "training").as_numpy_iterator())
    np.testing.assert_array_equal(labels, kitti_rule(rgb))


def test_missing_ground_truth_lists_the_stems(datasets_root, tmp_path):
    training = _copy_kitti(os.path.join(datasets_root, "kitti_road"), tmp_path)
    os.remove(os.path.join(training, "gt_image_2", "um_road_000001.png"))
    with pytest.raises(DataError, match=r"without road ground truth .*: um_000001$"):
        data.load("kitti_road", str(tmp_path), "training")


def test_the_two_sample_frames_split_into_one_train_and_one_val_frame(datasets_root):
    root = os.path.join(datasets_root, "kitti_road")
    names = {split: [os.path.basename(image) for image, _ in kitti_road.list_pairs(root, split)]
             for split in ("training", "train", "val")}
    assert names == {"training": ["um_000000.png", "um_000001.png"],
                     "train": ["um_000001.png"], "val": ["um_000000.png"]}
    train = list(data.load("kitti_road", root, "train").as_numpy_iterator())
    val = list(data.load("kitti_road", root, "val").as_numpy_iterator())
    assert len(train) == len(val) == 1
    # the held-out frame's labelled pixels: 61,316 road of 460,280, p = 0.1332, so the
    # constant road probability scores MaxF 2p / (1 + p) = 0.2351 there
    labels = val[0][1]
    assert [(labels == 0).sum(), (labels == 1).sum()] == [398964, 61316]


def test_split_sizes_of_the_full_training_set():
    # 289 frames (um 95, umm 96, uu 98): every 10th from the first is val
    val = [i for i in range(289) if kitti_road.in_val_split(i)]
    assert (len(val), 289 - len(val)) == (29, 260) == (kitti_road.INFO.splits["val"],
                                                       kitti_road.INFO.splits["train"])
    assert val[:3] == [0, 10, 20] and val[-1] == 280
