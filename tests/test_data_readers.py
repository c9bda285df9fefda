"""Dataset readers on the real samples: descriptors, exact decoding, splits."""

import os

import numpy as np
import pytest
import scipy.io
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from harness import read_all
from segcore import data
from segcore.data import (
    camvid,
    check,
    cityscapes,
    folder,
    images,
    isbi2012,
    kitti_road,
    sbd,
    voc2012,
)
from segcore.errors import DataError


def pil_rgb(path):
    return np.array(Image.open(path).convert("RGB"))




# --- descriptors ----------------------------------------------------------------


def test_descriptors_of_the_full_datasets():
    facts = {
        "voc2012": (21, {"train": 1464, "val": 1449, "trainval": 2913, "train_aug": 10582}),
        "sbd": (21, {"train": 8498, "val": 2857}),
        "isbi2012": (2, {"all": 30, "train": 26, "val": 4, "test": 30}),
        "camvid": (11, {"train": 367, "val": 101, "test": 233}),
        "cityscapes": (19, {"train": 2975, "val": 500, "test": 1525}),
        "oxford_iiit_pet": (3, {"train": 3680, "test": 3669}),
        "kitti_road": (2, {"training": 289, "train": 260, "val": 29}),
    }
    for name, (num_classes, splits) in facts.items():
        info = data.info(name)
        assert (info.name, info.num_classes, info.splits, info.ignore_label) == (
            name, num_classes, splits, 255)
        assert len(info.class_names) == len(info.palette) == num_classes
    assert data.info("voc2012").class_names[15] == "person"
    assert data.info("voc2012").palette[:3] == ((0, 0, 0), (128, 0, 0), (0, 128, 0))
    assert data.info("camvid").class_names[10] == "bicyclist"
    assert data.info("oxford_iiit_pet").class_names == ("pet", "background", "border")
    assert data.info("isbi2012").class_names == ("cell", "membrane")
    assert data.info("cityscapes").class_names[:3] == ("road", "sidewalk", "building")
    assert data.info("cityscapes").class_names[18] == "bicycle"


def test_cityscapes_table_is_the_official_one():
    table = cityscapes.FORMATS["labelIds"].table
    train = {label_id: table[label_id] for label_id in range(34) if table[label_id] != 255}
    # cityscapesScripts helpers/labels.py: the 19 evaluated classes and their labelIds
    assert train == {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10,
                     24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}
    assert [table[i] for i in (0, 1, 2, 3, 4, 5, 6, 9, 10, 14, 15, 16, 18, 29, 30)] == [255] * 15
    assert table[34:] == (-1,) * 222  # anything above 33 is not a label id: an error


def test_unknown_dataset_and_missing_data_dir():
    with pytest.raises(DataError, match="unknown dataset 'voc'; expected one of"):
        data.load("voc", "x")
    with pytest.raises(DataError, match="dataset 'camvid' needs --data-dir"):
        data.load("camvid", None)
    with pytest.raises(DataError, match=r"camvid: unknown split 'training'; expected one of "):
        data.load("camvid", "/nonexistent", "training")


# --- PASCAL VOC 2012 ------------------------------------------------------------


def test_voc_palette_masks_read_as_class_indices_pixel_for_pixel(datasets_root):
    root = os.path.join(datasets_root, "voc2012")
    index = voc2012.index(root, "train")
    assert len(index.samples) == 330 and index.problems == []
    ids = voc2012.split_ids(root, "train")
    assert [os.path.basename(s.image) for s in index.samples] == [f"{i}.jpg" for i in ids]
    histogram = np.zeros(256, np.int64)
    for sample, (image, labels) in zip(index.samples, data.load("voc2012", root, "train")
                                       .as_numpy_iterator(), strict=True):
        assert Image.open(sample.mask).mode == "P"
        np.testing.assert_array_equal(labels, np.array(Image.open(sample.mask)))
        np.testing.assert_array_equal(image, pil_rgb(sample.image))
        histogram += np.bincount(labels.ravel(), minlength=256)
    assert set(np.nonzero(histogram)[0].tolist()) == set(range(21)) | {255}
    assert histogram[0] == 41064179 and histogram[255] == 3224472 and histogram[15] == 3459620


def test_voc_decoding_as_rgb_would_give_colours_not_ids(datasets_root):
    """The classic bug this reader avoids: decode_png expands the palette."""
    path = os.path.join(datasets_root, "voc2012", "SegmentationClass", "2007_000032.png")
    indices = np.array(Image.open(path))
    rgb = tf.io.decode_png(tf.io.read_file(path), channels=3).numpy()
    aeroplane = indices == 1
    assert aeroplane.sum() > 1000
    assert (rgb[aeroplane] == (128, 0, 0)).all()  # the palette colour, not class 1
    grey = tf.io.decode_png(tf.io.read_file(path), channels=1).numpy()[..., 0]
    assert not (grey[aeroplane] == 1).any()
    ((_, labels),) = list(data.load("voc2012", os.path.dirname(os.path.dirname(path)), "train")
                          .take(1).as_numpy_iterator())
    np.testing.assert_array_equal(labels, indices)


def make_voc(tmp_path, datasets_root, train, val):
    """A VOCdevkit/VOC2012 folder of symlinks to real samples, with these split lists."""
    src = os.path.join(datasets_root, "voc2012")
    root = tmp_path / "VOCdevkit" / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True)
    for item in train + val:
        os.symlink(os.path.join(src, "JPEGImages", f"{item}.jpg"),
                   root / "JPEGImages" / f"{item}.jpg")
        os.symlink(os.path.join(src, "SegmentationClass", f"{item}.png"),
                   root / "SegmentationClass" / f"{item}.png")
    (root / "ImageSets/Segmentation/train.txt").write_text("".join(f"{i}\n" for i in train))
    (root / "ImageSets/Segmentation/val.txt").write_text("".join(f"{i}\n" for i in val))
    return root


def write_jpeg(path, size, seed):
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=95)


def make_sbd(tmp_path, entries, train, val):
    """A fake SBD benchmark_RELEASE/dataset: entries maps id -> (image size, labels or None)."""
    root = tmp_path / "benchmark_RELEASE" / "dataset"
    (root / "cls").mkdir(parents=True)
    (root / "img").mkdir()
    for item, (labels, with_image) in entries.items():
        scipy.io.savemat(root / "cls" / f"{item}.mat", {"GTcls": {
            "Segmentation": labels, "Boundaries": np.zeros((1, 21), object),
            "CategoriesPresent": np.unique(labels[labels > 0]).astype(np.uint8)}})
        if with_image:
            write_jpeg(root / "img" / f"{item}.jpg", labels.shape[::-1], len(item))
    (root / "train.txt").write_text("".join(f"{i}\n" for i in train))
    (root / "val.txt").write_text("".join(f"{i}\n" for i in val))
    return root


def test_train_aug_rule_on_a_fake_sbd(datasets_root, tmp_path):
    ids = voc2012.split_ids(os.path.join(datasets_root, "voc2012"), "train")
    a, b, c, d, e = ids[:5]  # real VOC files; d and e play VOC val
    make_voc(tmp_path, datasets_root, train=[a, b, c], val=[d, e])
    size_b = Image.open(os.path.join(datasets_root, "voc2012", "JPEGImages", f"{b}.jpg")).size
    size_d = Image.open(os.path.join(datasets_root, "voc2012", "JPEGImages", f"{d}.jpg")).size
    rng = np.random.default_rng(0)
    x1 = rng.integers(0, 21, (40, 60), dtype=np.uint8)
    x2 = rng.integers(0, 21, (30, 50), dtype=np.uint8)
    entries = {
        b: (np.full(size_b[::-1], 7, np.uint8), False),   # also VOC train: VOC's mask wins
        d: (np.full(size_d[::-1], 3, np.uint8), False),   # VOC val: excluded
        e: (np.zeros((5, 5), np.uint8), False),            # VOC val: excluded
        "2011_900001": (x1, True),                         # SBD only (train)
        "2011_900002": (x2, True),                         # SBD only (val)
    }
    make_sbd(tmp_path, entries, train=[b, d, "2011_900001"], val=[e, "2011_900002"])
    assert sbd.train_aug_ids([a, b, c], [d, e], [b, d, "2011_900001"], [e, "2011_900002"]) == \
        sorted([a, b, c, "2011_900001", "2011_900002"])

    index = voc2012.index(str(tmp_path), "train_aug")
    assert index.problems == []
    names = [os.path.basename(s.mask) for s in index.samples]
    assert names == sorted([f"{a}.png", f"{b}.png", f"{c}.png", "2011_900001.mat",
                            "2011_900002.mat"])
    decoded = dict(zip(names, data.load("voc2012", str(tmp_path), "train_aug").as_numpy_iterator()))
    voc_mask = os.path.join(datasets_root, "voc2012", "SegmentationClass", f"{b}.png")
    np.testing.assert_array_equal(decoded[f"{b}.png"][1], np.array(Image.open(voc_mask)))
    np.testing.assert_array_equal(decoded["2011_900001.mat"][1], x1)
    np.testing.assert_array_equal(decoded["2011_900002.mat"][1], x2)
    sbd_image = tmp_path / "benchmark_RELEASE/dataset/img/2011_900002.jpg"
    np.testing.assert_array_equal(decoded["2011_900002.mat"][0], pil_rgb(sbd_image))

    # SBD on its own: its lists and its .mat masks
    train = list(data.load("sbd", str(tmp_path / "benchmark_RELEASE"), "val",
                           skip_bad=True).as_numpy_iterator())
    assert len(train) == 1 and np.array_equal(train[0][1], x2)


def test_train_aug_without_sbd_says_where_to_get_it(datasets_root, tmp_path):
    make_voc(tmp_path, datasets_root, train=["2007_000032"], val=["2007_000039"])
    with pytest.raises(DataError, match=r"split 'train_aug' needs SBD .*benchmark.tgz.*sbd_dir="):
        data.load("voc2012", str(tmp_path), "train_aug")


def test_voc_list_naming_missing_files(datasets_root, tmp_path):
    root = make_voc(tmp_path, datasets_root, train=["2007_000032"], val=["2007_000039"])
    with open(root / "ImageSets/Segmentation/train.txt", "a") as f:
        f.write("2099_000001\n")
    with pytest.raises(DataError, match=r"1 id\(s\) of .*train.txt without an image in "
                                        r".*JPEGImages: 2099_000001"):
        data.load("voc2012", str(tmp_path), "train")
    with pytest.raises(DataError, match=r"split list not found: .*trainval.txt"):
        data.load("voc2012", str(tmp_path), "trainval")


# --- ISBI 2012 ------------------------------------------------------------------


def test_isbi_slices_membrane_is_class_one(datasets_root):
    root = os.path.join(datasets_root, "isbi2012")
    numbers = {split: [int(os.path.basename(s.image)[:-4])
                       for s in isbi2012.index(root, split).samples]
               for split in ("train", "val", "all", "test")}
    assert numbers == {"train": list(range(20)), "val": [20, 21, 22, 23], "all": list(range(24)),
                       "test": list(range(30))}
    membrane = 0
    for number, (image, labels) in zip(numbers["val"], data.load("isbi2012", root, "val")
                                       .as_numpy_iterator(), strict=True):
        grey = np.array(Image.open(os.path.join(root, "train", "image", f"{number}.png")))
        raw = np.array(Image.open(os.path.join(root, "train", "label", f"{number}.png")))
        assert image.shape == (512, 512, 3) and grey.ndim == 2
        np.testing.assert_array_equal(image, np.repeat(grey[..., None], 3, -1))
        np.testing.assert_array_equal(labels, np.where(raw == 0, 1, 0))
        membrane += int(labels.sum())
    assert membrane == 218160
    ((_, stored),) = list(data.load("isbi2012", root, "val", membrane_class=0).take(1)
                          .as_numpy_iterator())
    raw = np.array(Image.open(os.path.join(root, "train", "label", "20.png")))
    np.testing.assert_array_equal(stored, (raw == 255).astype(np.uint8))
    ((image, unlabelled),) = list(data.load("isbi2012", root, "test").take(1).as_numpy_iterator())
    assert image.shape == (512, 512, 3) and (unlabelled == 255).all()


def test_isbi_multipage_tiff_stacks_equal_the_slices(datasets_root, tmp_path):
    root = os.path.join(datasets_root, "isbi2012")
    volume = [Image.open(os.path.join(root, "train", "image", f"{i}.png")) for i in range(24)]
    labels = [Image.open(os.path.join(root, "train", "label", f"{i}.png")) for i in range(24)]
    volume[0].save(tmp_path / "train-volume.tif", save_all=True, append_images=volume[1:])
    labels[0].save(tmp_path / "train-labels.tif", save_all=True, append_images=labels[1:])
    assert Image.open(tmp_path / "train-volume.tif").n_frames == 24
    index = isbi2012.index(str(tmp_path), "val")
    assert [(s.image_page, s.mask_page) for s in index.samples] == [(20, 20), (21, 21), (22, 22),
                                                                    (23, 23)]
    stacks = list(data.load("isbi2012", str(tmp_path), "val").as_numpy_iterator())
    slices = list(data.load("isbi2012", root, "val").as_numpy_iterator())
    assert len(stacks) == 4
    for (a, b), (c, d) in zip(stacks, slices):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)
    assert len(isbi2012.index(str(tmp_path), "train").samples) == 20
    # a labels stack with fewer pages than the volume is named with both counts
    labels[0].save(tmp_path / "train-labels.tif", save_all=True, append_images=labels[1:10])
    with pytest.raises(DataError,
                       match=r"train-volume.tif has 24 pages but .*train-labels.tif has 10"):
        data.load("isbi2012", str(tmp_path), "train")


# --- CamVid ---------------------------------------------------------------------


def test_camvid_void_becomes_ignore(datasets_root):
    root = os.path.join(datasets_root, "camvid")
    assert len(camvid.index(root, "train").samples) == 367
    index = camvid.index(root, "val")
    assert len(index.samples) == 101 and index.problems == []
    void = 0
    for sample, (image, labels) in zip(index.samples, data.load("camvid", root, "val")
                                       .as_numpy_iterator(), strict=True):
        raw = np.array(Image.open(sample.mask))
        assert os.path.basename(sample.image) == os.path.basename(sample.mask)
        np.testing.assert_array_equal(labels, np.where(raw == 11, 255, raw))
        np.testing.assert_array_equal(image, pil_rgb(sample.image))
        assert labels.shape == (360, 480)
        void += int((raw == 11).sum())
    assert void == 297271


# --- Cityscapes -----------------------------------------------------------------


def test_cityscapes_train_ids_agree_with_the_shipped_label_train_ids(datasets_root):
    root = os.path.join(datasets_root, "cityscapes")
    ((image, labels),) = list(data.load("cityscapes", root, "val").as_numpy_iterator())
    stem = os.path.join(root, "gtFine", "val", "frankfurt", "frankfurt_000000_000294_gtFine_")
    shipped = np.array(Image.open(stem + "labelTrainIds.png"))
    label_ids = np.array(Image.open(stem + "labelIds.png"))
    table = np.array(cityscapes.FORMATS["labelIds"].table)
    np.testing.assert_array_equal(labels, table[label_ids])
    agree = int((labels == shipped).sum())
    # 32,691 of 32,768 pixels = 99.765 %: the sample was downscaled, and the two
    # files disagree only on single boundary pixels
    assert (agree, labels.size) == (32691, 32768)
    assert agree / labels.size >= 0.99
    assert image.shape == (128, 256, 3)
    ((_, train_ids),) = list(data.load("cityscapes", root, "val", label_source="labelTrainIds")
                             .as_numpy_iterator())
    np.testing.assert_array_equal(train_ids, shipped)


def test_cityscapes_instance_ids_are_refused(datasets_root, tmp_path):
    src = os.path.join(datasets_root, "cityscapes")
    for sub in ("leftImg8bit", "gtFine"):
        (tmp_path / sub / "val" / "frankfurt").mkdir(parents=True)
    stem = "frankfurt_000000_000294"
    os.symlink(os.path.join(src, "leftImg8bit/val/frankfurt", f"{stem}_leftImg8bit.png"),
               tmp_path / "leftImg8bit/val/frankfurt" / f"{stem}_leftImg8bit.png")
    os.symlink(os.path.join(src, "gtFine/val/frankfurt", f"{stem}_gtFine_instanceIds.png"),
               tmp_path / "gtFine/val/frankfurt" / f"{stem}_gtFine_labelIds.png")
    with pytest.raises(DataError, match=r"_gtFine_labelIds.png: 16-bit mask \(mode I;16\)"):
        data.load("cityscapes", str(tmp_path), "val")


# --- Oxford-IIIT Pet (TFDS) -----------------------------------------------------


def test_oxford_pet_trimaps_through_tfds_mock(tmp_path):
    trimap = np.array([[1, 2, 3], [3, 2, 1]], np.uint8)[..., None]

    def examples(builder, split, **kwargs):
        del builder, kwargs
        image = np.arange(18, dtype=np.uint8).reshape(2, 3, 3)
        return tf.data.Dataset.from_tensors({
            "image": image, "segmentation_mask": trimap, "file_name": f"{split}_cat.jpg",
            "label": np.int64(0), "species": np.int64(0), "head_bbox": np.zeros(4, np.float32)})

    with tfds.testing.mock_data(as_dataset_fn=examples):
        ((image, labels),) = list(data.load("oxford_iiit_pet", str(tmp_path), "test")
                                  .as_numpy_iterator())
    np.testing.assert_array_equal(labels, [[0, 1, 2], [2, 1, 0]])  # pet 0, background 1, border 2
    np.testing.assert_array_equal(image, np.arange(18).reshape(2, 3, 3))

    bad = trimap.copy()
    bad[0, 0] = 0

    def good_and_bad(builder, split, **kwargs):
        del builder, split, kwargs
        return tf.data.Dataset.from_tensor_slices({
            "image": np.zeros((2, 2, 3, 3), np.uint8), "segmentation_mask": np.stack([trimap, bad]),
            "file_name": ["good.jpg", "bad.jpg"], "label": np.zeros(2, np.int64),
            "species": np.zeros(2, np.int64), "head_bbox": np.zeros((2, 4), np.float32)})

    with tfds.testing.mock_data(as_dataset_fn=good_and_bad):
        (report,) = check.check("oxford_iiit_pet", str(tmp_path), ["train"])
    assert (report.listed, report.pairs) == (2, 1)
    assert report.problems == ["oxford_iiit_pet: bad.jpg: trimap values 0 are not 1 (pet), "
                               "2 (background) or 3 (border)"]
    assert report.histogram[:3].tolist() == [2, 2, 2]

    with tfds.testing.mock_data(num_examples=2):  # random masks: values outside 1..3
        dataset = data.load("oxford_iiit_pet", str(tmp_path), "train")
        with pytest.raises(tf.errors.OpError) as caught:
            list(dataset.as_numpy_iterator())
    assert "oxford_iiit_pet: " in str(images.data_error_from(caught.value))


# --- folder ---------------------------------------------------------------------


def test_folder_reads_kitti_with_a_colour_map(datasets_root, tmp_path):
    pairs = kitti_road.list_pairs(os.path.join(datasets_root, "kitti_road"), "training")
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for image, mask in pairs:
        stem = os.path.basename(image)[:-4]
        os.symlink(image, tmp_path / "images" / f"{stem}.png")
        os.symlink(mask, tmp_path / "masks" / f"{stem}_gt.png")
    colour_map = {"#ff0000": 0, "255,0,255": 1, (0, 0, 0): 255}
    via_folder = list(data.load("folder", str(tmp_path), "all", mask_suffix="_gt",
                                colour_map=colour_map).as_numpy_iterator())
    via_kitti = list(data.load("kitti_road", os.path.join(datasets_root, "kitti_road"),
                               "training").as_numpy_iterator())
    assert len(via_folder) == 2
    for (a, b), (c, d) in zip(via_folder, via_kitti):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)
    assert folder.make_info(2, colour_map=folder.make_format(2, colour_map).colours).palette == (
        (255, 0, 0), (255, 0, 255))


def test_folder_index_masks_per_split(datasets_root, tmp_path):
    src = os.path.join(datasets_root, "camvid")
    for split, names in (("train", ["0001TP_006690.png", "0001TP_006720.png"]),
                         ("val", ["0016E5_07959.png"])):
        (tmp_path / split / "images").mkdir(parents=True)
        (tmp_path / split / "masks").mkdir()
        for name in names:
            os.symlink(os.path.join(src, "train" if split == "train" else "val", name),
                       tmp_path / split / "images" / name)
            os.symlink(os.path.join(src, f"{split}annot", name), tmp_path / split / "masks" / name)
    dataset = data.load("folder", str(tmp_path), "train", num_classes=12)
    for (image, labels), name in zip(dataset.as_numpy_iterator(), ["0001TP_006690.png",
                                                                   "0001TP_006720.png"]):
        np.testing.assert_array_equal(
            labels, np.array(Image.open(os.path.join(src, "trainannot", name))))
    assert len(list(data.load("folder", str(tmp_path), "val", num_classes=12))) == 1
    reports = check.check("folder", str(tmp_path), num_classes=12)
    assert [(r.split, r.pairs, r.problems) for r in reports] == [("train", 2, []), ("val", 1, [])]
    with pytest.raises(DataError, match=r"0016E5_07959.png: mask values 11 are not class ids "
                                        r"0..10 or the ignore label 255"):
        read_all(data.load("folder", str(tmp_path), "val", num_classes=11))
    with pytest.raises(DataError, match=r"folder: no .*test/images for split 'test'"):
        data.load("folder", str(tmp_path), "test")
