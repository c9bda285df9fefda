"""TFDS builders: mocked, and built from small folders of real-sample symlinks."""

import os

import numpy as np
import pytest
import scipy.io
import tensorflow_datasets as tfds
from PIL import Image

from segcore import data
from segcore.data import isbi2012, kitti_road, voc2012
from segcore.data.tfds_builders import Isbi2012, KittiRoad, Voc2012Segmentation, as_pairs

BUILDERS = {"kitti_road": KittiRoad, "voc2012_segmentation": Voc2012Segmentation,
            "isbi2012": Isbi2012}


def build(builder_class, manual_dir, data_dir):
    builder = builder_class(data_dir=str(data_dir))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=str(manual_dir), compute_stats=tfds.download.ComputeStatsMode.SKIP))
    return builder


def by_key(builder, split):
    return {ex["file_name"].decode(): (ex["image"], ex["segmentation_mask"])
            for ex in builder.as_dataset(split=split).as_numpy_iterator()}


def assert_same_as_reader(built, keys, reader_pairs):
    assert sorted(built) == sorted(keys)
    for key, (image, labels) in zip(keys, reader_pairs, strict=True):
        np.testing.assert_array_equal(built[key][0], image)
        np.testing.assert_array_equal(built[key][1][..., 0], labels)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_builders_under_mock_data(name):
    builder_class = BUILDERS[name]
    assert "manual_dir" in builder_class.MANUAL_DOWNLOAD_INSTRUCTIONS
    with tfds.testing.mock_data(num_examples=3):
        builder = tfds.builder(name)
        assert isinstance(builder, builder_class)
        assert builder.info.supervised_keys == ("image", "segmentation_mask")
        dataset = tfds.load(name, split="train")
        examples = list(dataset.as_numpy_iterator())
        pairs = list(as_pairs(dataset).as_numpy_iterator())
    assert len(examples) == len(pairs) == 3
    for example, (image, labels) in zip(examples, pairs):
        assert image.dtype == labels.dtype == np.uint8
        assert image.ndim == 3 and image.shape[2] == 3 and labels.ndim == 2
        np.testing.assert_array_equal(labels, example["segmentation_mask"][..., 0])


def test_isbi_builder_from_real_slices(datasets_root, tmp_path):
    src = os.path.join(datasets_root, "isbi2012")
    manual = tmp_path / "manual"
    for sub in ("image", "label"):
        (manual / "train" / sub).mkdir(parents=True)
        for number in (0, 1, 20, 21):
            os.symlink(os.path.join(src, "train", sub, f"{number}.png"),
                       manual / "train" / sub / f"{number}.png")
    builder = build(Isbi2012, manual, tmp_path / "tfds")
    assert {k: v.num_examples for k, v in builder.info.splits.items()} == {"train": 2, "val": 2}
    for split in ("train", "val"):
        index = isbi2012.index(str(manual), split)
        keys = [os.path.relpath(s.image, manual) for s in index.samples]
        assert_same_as_reader(by_key(builder, split), keys,
                              data.load("isbi2012", str(manual), split).as_numpy_iterator())
    assert sorted(by_key(builder, "val")) == ["train/image/20.png", "train/image/21.png"]


def test_voc_builder_with_train_aug_from_real_samples(datasets_root, tmp_path):
    src = os.path.join(datasets_root, "voc2012")
    ids = voc2012.split_ids(src, "train")[:5]
    manual = tmp_path / "manual"
    root = manual / "VOCdevkit" / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True)
    for item in ids:
        os.symlink(os.path.join(src, "JPEGImages", f"{item}.jpg"),
                   root / "JPEGImages" / f"{item}.jpg")
        os.symlink(os.path.join(src, "SegmentationClass", f"{item}.png"),
                   root / "SegmentationClass" / f"{item}.png")
    (root / "ImageSets/Segmentation/train.txt").write_text("\n".join(ids[:3]) + "\n")
    (root / "ImageSets/Segmentation/val.txt").write_text("\n".join(ids[3:]) + "\n")
    sbd = manual / "benchmark_RELEASE" / "dataset"
    (sbd / "cls").mkdir(parents=True)
    (sbd / "img").mkdir()
    extra = np.random.default_rng(1).integers(0, 21, (20, 30), dtype=np.uint8)
    scipy.io.savemat(sbd / "cls" / "2011_900003.mat", {"GTcls": {"Segmentation": extra}})
    Image.fromarray(np.full((20, 30, 3), 90, np.uint8)).save(sbd / "img" / "2011_900003.jpg")
    (sbd / "train.txt").write_text(f"2011_900003\n{ids[3]}\n")  # ids[3] is VOC val: excluded
    (sbd / "val.txt").write_text(f"{ids[0]}\n")

    builder = build(Voc2012Segmentation, manual, tmp_path / "tfds")
    assert {k: v.num_examples for k, v in builder.info.splits.items()} == {
        "train": 3, "val": 2, "train_aug": 4}
    for split in ("train", "val", "train_aug"):
        index = voc2012.index(str(manual), split)
        keys = [os.path.relpath(s.image, manual) for s in index.samples]
        assert_same_as_reader(by_key(builder, split), keys,
                              data.load("voc2012", str(manual), split).as_numpy_iterator())
    aug = by_key(builder, "train_aug")
    np.testing.assert_array_equal(aug["benchmark_RELEASE/dataset/img/2011_900003.jpg"][1][..., 0],
                                  extra)
    first = aug[f"VOCdevkit/VOC2012/JPEGImages/{ids[0]}.jpg"][1][..., 0]
    np.testing.assert_array_equal(first, np.array(Image.open(
        os.path.join(src, "SegmentationClass", f"{ids[0]}.png"))))


def test_kitti_builder_train_val_rule(datasets_root, tmp_path):
    pairs = kitti_road.list_pairs(os.path.join(datasets_root, "kitti_road"), "training")
    training = tmp_path / "manual" / "data_road" / "training"
    (training / "image_2").mkdir(parents=True)
    (training / "gt_image_2").mkdir()
    for number in range(10):  # ten frames: frames 0, 10, 20, ... are val, so um_000000
        image, mask = pairs[number % 2]
        os.symlink(image, training / "image_2" / f"um_{number:06d}.png")
        os.symlink(mask, training / "gt_image_2" / f"um_road_{number:06d}.png")
    builder = build(KittiRoad, tmp_path / "manual", tmp_path / "tfds")
    assert {k: v.num_examples for k, v in builder.info.splits.items()} == {"train": 9, "val": 1}
    val = by_key(builder, "val")
    assert list(val) == ["data_road/training/image_2/um_000000.png"]
    ((image, labels),) = list(data.load("kitti_road", str(tmp_path / "manual"), "val")
                              .as_numpy_iterator())
    np.testing.assert_array_equal(val["data_road/training/image_2/um_000000.png"][0], image)
    np.testing.assert_array_equal(val["data_road/training/image_2/um_000000.png"][1][..., 0],
                                  labels)
    assert set(np.unique(labels).tolist()) == {0, 1, 255}


def test_builder_refuses_bad_pairs(datasets_root, tmp_path):
    manual = tmp_path / "manual"
    for sub in ("image", "label"):
        (manual / "train" / sub).mkdir(parents=True)
    src = os.path.join(datasets_root, "isbi2012", "train")
    os.symlink(os.path.join(src, "image", "20.png"), manual / "train" / "image" / "20.png")
    os.symlink(os.path.join(src, "image", "21.png"), manual / "train" / "image" / "21.png")
    os.symlink(os.path.join(src, "label", "20.png"), manual / "train" / "label" / "20.png")
    with pytest.raises(Exception, match=r"isbi2012: 1 image\(s\) in .* without a mask in .*: 21"):
        build(Isbi2012, manual, tmp_path / "tfds")


def test_coco_voc_builder_under_mock_data_and_from_the_real_sample(datasets_root, tmp_path):
    from segcore.data import coco_voc
    from segcore.data.tfds_builders import CocoVoc

    assert "manual_dir" in CocoVoc.MANUAL_DOWNLOAD_INSTRUCTIONS
    with tfds.testing.mock_data(num_examples=2):
        builder = tfds.builder("coco_voc")
        assert isinstance(builder, CocoVoc)
        assert builder.info.supervised_keys == ("image", "segmentation_mask")
        assert len(list(as_pairs(tfds.load("coco_voc", split="train")).as_numpy_iterator())) == 2
    manual = os.path.join(datasets_root, "coco")  # train2017 only: one split
    builder = build(CocoVoc, manual, tmp_path / "tfds")
    assert {k: v.num_examples for k, v in builder.info.splits.items()} == {"train": 34}
    index = coco_voc.index(manual, "train")
    keys = [os.path.relpath(entry.path, manual) for entry in index.entries]
    assert keys[0] == "train2017/000000000030.jpg"
    assert_same_as_reader(by_key(builder, "train"), keys,
                          data.load("coco_voc", manual, "train").as_numpy_iterator())
