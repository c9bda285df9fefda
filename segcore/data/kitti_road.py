"""KITTI Road (`data_road`), original layout (Fritsch, Kuehnl, Geiger, ITSC 2013).

    data_road/training/image_2/{um,umm,uu}_NNNNNN.png
    data_road/training/gt_image_2/{um,umm,uu}_road_NNNNNN.png   (+ um_lane_NNNNNN.png)

Ground truth is colour coded: (255, 0, 255) road -> 1, (255, 0, 0) not road -> 0,
(0, 0, 0) outside the evaluated area -> ignore (255). Any other colour is an
error naming the file and the colour. Only the training half has ground truth;
this reader serves it whole as "training", or split (`in_val_split`): of the
frames in sorted order (um, umm, uu), the 1st, 11th, 21st, ... are "val" and the
others "train": 29 and 260 of the 289 frames, and with 2 frames (the samples
`um_000000`, `um_000001`) "val" holds the first and "train" the second, so a
network trained on "train" is scored on a frame it did not see.
"""

import os

import tensorflow as tf

from segcore.data import images
from segcore.data.info import IGNORE_LABEL, DatasetInfo
from segcore.errors import DataError

INFO = DatasetInfo(
    name="kitti_road",
    num_classes=2,
    class_names=("not_road", "road"),
    palette=((255, 0, 0), (255, 0, 255)),
    splits={"training": 289, "train": 260, "val": 29},
    citation="Fritsch, Kuehnl, Geiger, A New Performance Measure and Evaluation "
             "Benchmark for Road Detection Algorithms, ITSC 2013",
)

COLOUR_TO_CLASS = {(255, 0, 0): 0, (255, 0, 255): 1, (0, 0, 0): IGNORE_LABEL}
CATEGORIES = ("um", "umm", "uu")
VAL_EVERY = 10


def in_val_split(index):
    """Whether the frame at `index` of the sorted list is in "val" (else "train")."""
    return index % VAL_EVERY == 0


def training_dir(data_dir):
    """`data_dir` may be `data_road`, its parent, or `data_road/training`."""
    for candidate in (data_dir, os.path.join(data_dir, "training"),
                      os.path.join(data_dir, "data_road", "training")):
        if os.path.isdir(os.path.join(candidate, "image_2")) and os.path.isdir(
                os.path.join(candidate, "gt_image_2")):
            return candidate
    raise DataError(
        f"kitti_road: no training/image_2 and training/gt_image_2 under {data_dir} "
        "(expected the data_road folder of data_road.zip)"
    )


def list_pairs(data_dir, split="train", task="road", categories=CATEGORIES):
    """[(image_path, mask_path)] of a split, checked: every image has its mask."""
    if task not in ("road", "lane"):
        raise DataError(f"kitti_road: task must be 'road' or 'lane', got {task!r}")
    if split not in INFO.splits:
        raise DataError(
            f"kitti_road: unknown split {split!r}; expected one of {sorted(INFO.splits)}")
    root = training_dir(data_dir)
    image_dir, gt_dir = os.path.join(root, "image_2"), os.path.join(root, "gt_image_2")
    image_names = [n for n in images.list_images(image_dir) if n.split("_")[0] in categories]
    if not image_names:
        raise DataError(f"kitti_road: no images of categories {categories} in {image_dir}")
    gt_names = set(images.list_images(gt_dir))
    pairs, missing = [], []
    for name in image_names:
        category, number = name.split("_", 1)
        if task == "lane" and category != "um":
            continue  # ego-lane ground truth exists for um only
        gt_name = f"{category}_{task}_{number}"
        if gt_name in gt_names:
            pairs.append((os.path.join(image_dir, name), os.path.join(gt_dir, gt_name)))
        else:
            missing.append(os.path.splitext(name)[0])
    if missing:
        raise DataError(
            f"kitti_road: {len(missing)} image(s) in {image_dir} without {task} ground truth "
            f"in {gt_dir}: {', '.join(missing[:20])}"
        )
    wanted = {f"{c}_{task}_{n}" for c, n in (name.split("_", 1) for name in image_names)}
    orphans = sorted(os.path.splitext(n)[0] for n in gt_names
                     if f"_{task}_" in n and n.split("_")[0] in categories and n not in wanted)
    if orphans:
        raise DataError(
            f"kitti_road: ground truth without image in {gt_dir}: {', '.join(orphans[:20])}")
    if split != "training":
        pairs = [p for i, p in enumerate(pairs) if in_val_split(i) == (split == "val")]
    if not pairs:
        raise DataError(
            f"kitti_road: split {split!r} of {root} is empty ({len(image_names)} images)")
    for image_path, mask_path in pairs:
        images.check_same_size(image_path, mask_path)
    return pairs


def decode_pair(image_path, mask_path):
    image = images.decode_rgb(image_path)
    labels = images.decode_colour_mask(mask_path, COLOUR_TO_CLASS)
    return images.check_same_shape(image, labels, image_path, mask_path)


def read(data_dir, split="train", task="road", categories=CATEGORIES):
    """tf.data.Dataset of (image uint8 [H, W, 3], labels uint8 [H, W]), original size."""
    pairs = list_pairs(data_dir, split, task, categories)
    paths = tf.data.Dataset.from_tensor_slices(tuple(map(list, zip(*pairs))))
    return paths.map(decode_pair, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
