"""COCO-VOC reader on the 50 real train2017 images of ../shared/datasets/coco.

The reference masks are built here independently, as torchvision's
references/segmentation/coco_utils.py does: pycocotools' `COCO.annToMask` per
annotation of the 20 classes (crowd included), `max(mask * class)` over the
instances, then 255 where two or more instances overlap.
"""

import contextlib
import io
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from segcore import data
from segcore.data import coco_voc, voc2012
from segcore.data.__main__ import main
from segcore.errors import DataError

# torchvision references/segmentation/coco_utils.py, get_coco: CAT_LIST (VOC id -> COCO id)
TORCHVISION_CAT_LIST = [0, 5, 2, 16, 9, 44, 6, 3, 17, 62, 21, 67, 18, 19, 4, 1, 64, 20, 63, 7, 72]
# VOC names that differ from COCO's
RENAMED = {"aeroplane": "airplane", "diningtable": "dining table", "motorbike": "motorcycle",
           "pottedplant": "potted plant", "sofa": "couch", "tvmonitor": "tv"}
# What the 1,000-area rule drops of the sample (computed once with the COCO API below).
DROPPED = ["000000000009.jpg", "000000000025.jpg", "000000000034.jpg", "000000000072.jpg",
           "000000000078.jpg", "000000000089.jpg", "000000000092.jpg", "000000000109.jpg",
           "000000000133.jpg", "000000000144.jpg", "000000000154.jpg", "000000000194.jpg",
           "000000000201.jpg", "000000000208.jpg", "000000000250.jpg", "000000000263.jpg"]
CROWD_IMAGES = {149: "000000000149.jpg", 257: "000000000257.jpg"}


@pytest.fixture(scope="module")
def coco_dir(datasets_root):
    return os.path.join(datasets_root, "coco")


@pytest.fixture(scope="module")
def coco_api(coco_dir):
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(os.path.join(coco_dir, "annotations", "instances_train2017.json"))


def reference_labels(coco_api, image_id, crowd=True):
    """torchvision's ConvertCocoPolysToMask on pycocotools' annToMask masks."""
    info = coco_api.imgs[image_id]
    anns = [a for a in coco_api.loadAnns(coco_api.getAnnIds(imgIds=image_id, iscrowd=None))
            if a["category_id"] in TORCHVISION_CAT_LIST and (crowd or not a["iscrowd"])]
    if not anns:
        return np.zeros((info["height"], info["width"]), np.uint8)
    masks = np.stack([coco_api.annToMask(a) for a in anns]).astype(np.uint8)
    classes = np.array([TORCHVISION_CAT_LIST.index(a["category_id"]) for a in anns], np.uint8)
    target = (masks * classes[:, None, None]).max(axis=0)
    target[masks.sum(axis=0) > 1] = 255
    return target


def read_all(data_dir, split="train", **options):
    return list(data.load("coco_voc", data_dir, split, **options).as_numpy_iterator())


def copy_layout(coco_dir, target, split="train", year="2017", edit=None):
    """A COCO folder of symlinked images and a (possibly edited) copy of the JSON."""
    (target / "annotations").mkdir(parents=True, exist_ok=True)
    images = target / f"{split}{year}"
    images.mkdir(exist_ok=True)
    for name in os.listdir(os.path.join(coco_dir, "train2017")):
        os.symlink(os.path.join(coco_dir, "train2017", name), images / name)
    with open(os.path.join(coco_dir, "annotations", "instances_train2017.json")) as f:
        content = json.load(f)
    if edit:
        edit(content)
    path = target / "annotations" / f"instances_{split}{year}.json"
    path.write_text(json.dumps(content))
    return path


# --- classes ------------------------------------------------------------------------


def test_class_table_matches_torchvision_and_the_json_category_names(coco_dir):
    assert list(coco_voc.COCO_IDS) == TORCHVISION_CAT_LIST
    info = data.info("coco_voc")
    assert info.class_names == voc2012.CLASS_NAMES and info.num_classes == 21
    assert info.palette == data.info("voc2012").palette
    assert info.palette[15] == (192, 128, 128)  # person, the VOC colour map
    with open(os.path.join(coco_dir, "annotations", "instances_train2017.json")) as f:
        names = {c["id"]: c["name"] for c in json.load(f)["categories"]}
    assert len(names) == 80
    for voc, coco in enumerate(coco_voc.COCO_IDS[1:], start=1):
        voc_name = voc2012.CLASS_NAMES[voc]
        assert names[coco] == RENAMED.get(voc_name, voc_name) == coco_voc.COCO_NAMES[voc]
    assert coco_voc.COCO_TO_VOC[5] == 1 and coco_voc.COCO_TO_VOC[72] == 20
    assert len(coco_voc.COCO_TO_VOC) == 20


# --- masks ----------------------------------------------------------------------------


def test_masks_equal_ann_to_mask_combined_by_torchvision_rule_for_all_50_images(coco_dir, coco_api):
    pairs = read_all(coco_dir, min_area=None)  # every image of the file
    ids = sorted(coco_api.imgs)
    assert len(pairs) == len(ids) == 50
    overlap_pixels = 0
    for image_id, (image, labels) in zip(ids, pairs, strict=True):
        info = coco_api.imgs[image_id]
        path = os.path.join(coco_dir, "train2017", info["file_name"])
        np.testing.assert_array_equal(image, np.array(Image.open(path).convert("RGB")))
        expected = reference_labels(coco_api, image_id)
        np.testing.assert_array_equal(labels, expected, err_msg=info["file_name"])
        overlap_pixels += int((expected == 255).sum())
    assert overlap_pixels > 1000  # the overlap rule is exercised by the sample
    assert {int(v) for _, labels in pairs for v in np.unique(labels)} == {
        0, 1, 2, 3, 5, 6, 7, 9, 11, 12, 13, 14, 15, 16, 18, 19, 255}


def test_the_unannotated_image_is_all_background_and_dropped_from_train(coco_dir):
    index = coco_voc.index(coco_dir, "train", min_area=None)
    entry = next(e for e in index.entries if e.file_name == "000000000250.jpg")
    assert entry.annotations == [] and entry.area == 0
    labels = coco_voc.render(entry, index.rules)
    assert labels.shape == (entry.height, entry.width) and not labels.any()
    assert "000000000250.jpg" in coco_voc.index(coco_dir, "train").dropped


def test_crowd_rle_annotations_follow_the_rule(coco_dir, coco_api):
    index = {e.image_id: e for e in coco_voc.index(coco_dir, "train", min_area=None).entries}
    for image_id in CROWD_IMAGES:
        entry = index[image_id]
        (crowd,) = [a for a in coco_api.loadAnns(coco_api.getAnnIds(imgIds=image_id, iscrowd=True))]
        assert crowd["category_id"] == 1 and isinstance(crowd["segmentation"]["counts"], list)
        crowd_mask = coco_api.annToMask(crowd).astype(bool)
        assert crowd_mask.sum() > 1000
        as_class = coco_voc.render(entry, coco_voc.rules_for("train"))  # default: crowd="class"
        np.testing.assert_array_equal(as_class, reference_labels(coco_api, image_id))
        others = reference_labels(coco_api, image_id, crowd=False)
        # crowd pixels are person (15) where no other instance is, 255 where one is
        assert set(np.unique(as_class[crowd_mask & (others == 0)])) == {15}
        assert (as_class[crowd_mask & (others > 0)] == 255).all()
        ignored = coco_voc.render(entry, coco_voc.rules_for("train", crowd="ignore"))
        assert (ignored[crowd_mask] == 255).all()
        np.testing.assert_array_equal(ignored[~crowd_mask], others[~crowd_mask])
        background = coco_voc.render(entry, coco_voc.rules_for("train", crowd="background"))
        np.testing.assert_array_equal(background, others)
    # overlap="max": no 255, the highest class wins where instances overlap
    entry = index[149]
    highest = coco_voc.render(entry, coco_voc.rules_for("train", overlap="max"))
    assert 255 not in highest
    default = coco_voc.render(entry, coco_voc.rules_for("train"))
    np.testing.assert_array_equal(highest[default != 255], default[default != 255])
    assert (highest[default == 255] > 0).all()


def test_pycocotools_rendering_equals_ann_to_mask_for_every_annotation(coco_dir, coco_api):
    for annotation in coco_api.dataset["annotations"]:
        info = coco_api.imgs[annotation["image_id"]]
        np.testing.assert_array_equal(
            coco_voc.annotation_mask(annotation["segmentation"], info["height"], info["width"]),
            coco_api.annToMask(annotation))


# --- the subset -------------------------------------------------------------------


def test_area_filter_kept_and_dropped_lists(coco_dir, coco_api, tmp_path):
    expected_kept = []
    for image_id in sorted(coco_api.imgs):  # torchvision's _coco_remove_images_without_annotations
        anns = [a for a in coco_api.loadAnns(coco_api.getAnnIds(imgIds=image_id, iscrowd=None))
                if a["category_id"] in TORCHVISION_CAT_LIST]
        if anns and sum(a["area"] for a in anns) > 1000:
            expected_kept.append(coco_api.imgs[image_id]["file_name"])
    index = coco_voc.index(coco_dir, "train")
    assert [e.file_name for e in index.entries] == expected_kept
    assert index.dropped == DROPPED and len(expected_kept) == 34
    assert index.rules.min_area == 1000 and index.listed == 50
    # dropped with little area, not only without annotations: 000000000025 has giraffes only,
    # 000000000009 has bowls, broccoli and an orange (no VOC class), ...
    areas = {e.file_name: e.area for e in coco_voc.index(coco_dir, "train", min_area=None).entries}
    assert any(0 < areas[name] <= 1000 for name in DROPPED)
    assert len(read_all(coco_dir)) == 34
    assert len(coco_voc.index(coco_dir, "train", min_area=0).entries) == 50 - sum(
        1 for name in DROPPED if areas[name] == 0)
    # val keeps every image, also with 2014 names
    copy_layout(coco_dir, tmp_path / "v", split="val")
    assert len(coco_voc.index(str(tmp_path / "v"), "val").entries) == 50
    copy_layout(coco_dir, tmp_path / "y", split="train", year="2014")
    index_2014 = coco_voc.index(str(tmp_path / "y"), "train")
    assert [e.file_name for e in index_2014.entries] == expected_kept
    assert index_2014.image_dir == str(tmp_path / "y" / "train2014")


def test_check_reports_kept_dropped_and_the_class_histogram(coco_dir, capsys):
    assert main(["check", "coco_voc", "--data-dir", coco_dir]) == 0
    out = capsys.readouterr().out
    assert "coco_voc / train in" in out and "34 of 34 listed pair(s) read" in out
    assert "50 image(s) listed" in out and "kept 34, dropped 16 (000000000009.jpg" in out
    assert "overlap=ignore, crowd=class; 2 crowd annotation(s)" in out
    assert "class histogram (pixels): 0 background:" in out and "15 person:" in out
    assert "ignore:" in out and "no problems found" in out


def test_rendered_masks_are_cached_once_per_json_and_rules(coco_dir, tmp_path):
    cache = tmp_path / "cache"
    first = read_all(coco_dir, cache_dir=str(cache))
    digest = coco_voc.json_digest(os.path.join(coco_dir, "annotations", "instances_train2017.json"))
    folder = cache / f"train2017-{digest[:16]}-overlap_ignore-crowd_class-v1"
    assert sorted(os.listdir(cache)) == [folder.name]
    names = sorted(os.listdir(folder))
    assert len(names) == 34 and names[0] == "000000000030.png"
    index = coco_voc.index(coco_dir, "train")
    for entry, (_, labels) in zip(index.entries, first, strict=True):
        stored = np.array(Image.open(folder / (entry.file_name[:-4] + ".png")))
        np.testing.assert_array_equal(stored, labels)
        np.testing.assert_array_equal(labels, coco_voc.render(entry, index.rules))
    # a later read takes the stored file (marked here) instead of rendering again
    marked = np.full_like(first[0][1], 7)
    Image.fromarray(marked).save(folder / names[0])
    np.testing.assert_array_equal(read_all(coco_dir, cache_dir=str(cache))[0][1], marked)
    # other rules: another folder
    read_all(coco_dir, cache_dir=str(cache), crowd="ignore")
    assert len(os.listdir(cache)) == 2
    # a cached file of the wrong size is an error naming it
    Image.fromarray(np.zeros((3, 4), np.uint8)).save(folder / names[0])
    with pytest.raises(Exception, match=f"{names[0]}: cached mask is uint8 \\(3, 4\\)"):
        read_all(coco_dir, cache_dir=str(cache))


# --- bad input --------------------------------------------------------------------


def test_annotation_file_that_is_not_json_or_lacks_keys(coco_dir, tmp_path):
    path = copy_layout(coco_dir, tmp_path)
    path.write_text("{ not json")
    with pytest.raises(DataError, match=f"^{path}: not JSON \\(Expecting property name"):
        coco_voc.read(str(tmp_path))
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(DataError, match=f"^{path}: not JSON"):
        coco_voc.read(str(tmp_path))
    path.write_text(json.dumps({"images": [], "annotations": []}))
    with pytest.raises(DataError) as caught:
        coco_voc.read(str(tmp_path))
    assert str(caught.value) == (f"{path}: no 'categories' key; expected a COCO instances file "
                                 "with 'images', 'annotations' and 'categories'")
    path.write_text("[1, 2]")
    with pytest.raises(DataError, match="the JSON is a list, expected an object"):
        coco_voc.read(str(tmp_path))
    with pytest.raises(DataError, match="no .*instances_val2017.json or .*instances_val2014.json"):
        coco_voc.read(str(tmp_path), "val")


@pytest.mark.parametrize("edit, message", [
    (lambda c: c["annotations"][3].pop("area"), r"annotations\[3\] \(id \d+\) has no 'area' key"),
    (lambda c: c["images"][5].pop("width"), r"images\[5\] \(id 42\) has no 'width' key"),
    (lambda c: c["annotations"][0].update(category_id=999),
     r"annotations\[0\] \(id 1774\) has category_id 999, which is not in the file's 'categories'"),
    (lambda c: c["annotations"][0].update(image_id=123456),
     r"annotations\[0\] \(id 1774\) has image_id 123456, which is not in the file's 'images'"),
    (lambda c: c["categories"][4].update(name="plane"),
     r"category id 5 is named 'plane'; coco_voc maps COCO id 5 \('airplane'\) to VOC 'aeroplane'"),
])
def test_bad_annotations_are_named(coco_dir, tmp_path, edit, message):
    path = copy_layout(coco_dir, tmp_path, edit=edit)
    with pytest.raises(DataError, match=f"^{path}: {message}"):
        coco_voc.read(str(tmp_path))


def test_missing_images_are_named_with_the_count_of_the_others(coco_dir, tmp_path, caplog):
    copy_layout(coco_dir, tmp_path)
    for name in ("000000000030.jpg", "000000000042.jpg", "000000000049.jpg"):
        os.remove(tmp_path / "train2017" / name)
    os.remove(tmp_path / "train2017" / "000000000009.jpg")  # dropped by the area rule: not needed
    with pytest.raises(DataError) as caught:
        coco_voc.read(str(tmp_path))
    assert str(caught.value) == (
        f"{tmp_path}/train2017/000000000030.jpg: listed in "
        f"{tmp_path}/annotations/instances_train2017.json but not found "
        "(and 2 other listed image(s) missing)")
    assert len(read_all(str(tmp_path), skip_bad=True)) == 31
    assert "skipped: " in caplog.text
    shutil.rmtree(tmp_path / "train2017")
    with pytest.raises(DataError, match="image folder not found: .*train2017"):
        coco_voc.read(str(tmp_path))


def test_json_size_that_differs_from_the_jpeg_is_named(coco_dir, tmp_path, capsys):
    def edit(content):
        image = next(i for i in content["images"] if i["file_name"] == "000000000030.jpg")
        image["width"], image["height"] = image["height"], image["width"]

    copy_layout(coco_dir, tmp_path, edit=edit)
    with pytest.raises(DataError) as caught:
        coco_voc.read(str(tmp_path))
    assert str(caught.value) == (
        f"{tmp_path}/train2017/000000000030.jpg: the JPEG is 640x428 but "
        f"{tmp_path}/annotations/instances_train2017.json gives width x height 428x640 "
        "(image id 30)")
    assert main(["check", "coco_voc", "--data-dir", str(tmp_path)]) == 1
    assert "the JPEG is 640x428" in capsys.readouterr().out


def test_bad_options_are_named(coco_dir):
    with pytest.raises(DataError, match="overlap must be one of ignore, max; got 'union'"):
        coco_voc.read(coco_dir, overlap="union")
    with pytest.raises(DataError, match="crowd must be one of class, ignore, background"):
        coco_voc.read(coco_dir, crowd="drop")
    with pytest.raises(DataError, match="unknown split 'test'"):
        coco_voc.read(coco_dir, "test")
    with pytest.raises(DataError, match="takes no option\\(s\\) colour_map"):
        data.load("coco_voc", coco_dir, "train", colour_map={})


@pytest.mark.parametrize("segmentation, message", [
    ("garbage", r"annotation id 10: segmentation is neither polygons nor RLE"),
    ({"counts": [0, 5], "size": [3, 3]},
     r"annotation id 10: RLE size \[3, 3\] differs from its image's height x width \[24, 40\]"),
])
def test_bad_segmentations_are_named_when_rendered(tmp_path, segmentation, message):
    _one_image_dataset(tmp_path, Image.new("RGB", (40, 24)))
    path = tmp_path / "annotations" / "instances_train2017.json"
    content = json.loads(path.read_text())
    content["annotations"][0]["segmentation"] = segmentation
    path.write_text(json.dumps(content))
    with pytest.raises(DataError, match=f"^{path}: {message}"):
        coco_voc.render(coco_voc.index(str(tmp_path)).entries[0], coco_voc.rules_for("train"),
                        str(path))
    from segcore.data import images

    with pytest.raises(Exception) as caught:
        read_all(str(tmp_path))
    assert str(images.data_error_from(caught.value)).startswith(f"{path}: ")


def _one_image_dataset(tmp_path, image, exif=None):
    """A COCO folder with one JPEG and one polygon annotation (a chair, VOC 9)."""
    (tmp_path / "annotations").mkdir()
    (tmp_path / "train2017").mkdir()
    image.save(tmp_path / "train2017" / "1.jpg", quality=92, **({"exif": exif} if exif else {}))
    content = {
        "images": [{"id": 1, "file_name": "1.jpg", "width": image.width, "height": image.height}],
        "annotations": [{"id": 10, "image_id": 1, "category_id": 62, "iscrowd": 0,
                         "area": 2000.0, "segmentation": [[2, 2, 30, 2, 30, 20, 2, 20]]}],
        "categories": [{"id": 62, "name": "chair"}],
    }
    (tmp_path / "annotations" / "instances_train2017.json").write_text(json.dumps(content))
    return tmp_path / "train2017" / "1.jpg"


@pytest.mark.parametrize("mode", ["L", "CMYK"])
def test_grey_and_cmyk_jpegs_become_rgb(tmp_path, mode):
    rng = np.random.default_rng(0)
    source = Image.fromarray(rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)).convert(mode)
    path = _one_image_dataset(tmp_path, source)
    assert Image.open(path).mode == mode
    ((image, labels),) = read_all(str(tmp_path))
    assert image.shape == (24, 40, 3)
    np.testing.assert_array_equal(image, np.array(Image.open(path).convert("RGB")))
    assert set(np.unique(labels)) == {0, 9}


def test_the_real_greyscale_jpeg_becomes_rgb(coco_dir):
    index = coco_voc.index(coco_dir, "train", min_area=None)
    position = [e.file_name for e in index.entries].index("000000000086.jpg")
    image, _ = read_all(coco_dir, min_area=None)[position]
    path = os.path.join(coco_dir, "train2017", "000000000086.jpg")
    assert Image.open(path).mode == "L" and image.shape == (640, 512, 3)
    np.testing.assert_array_equal(image[..., 0], np.array(Image.open(path)))
    np.testing.assert_array_equal(image[..., 0], image[..., 2])


def test_exif_orientation_is_not_applied(tmp_path):
    """COCO's polygons are on the stored pixel grid (torchvision does not rotate either)."""
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    source = Image.fromarray(np.random.default_rng(1).integers(0, 256, (24, 40, 3), dtype=np.uint8))
    path = _one_image_dataset(tmp_path, source, exif=exif.tobytes())
    assert Image.open(path).getexif()[0x0112] == 6
    ((image, labels),) = read_all(str(tmp_path))
    assert image.shape == (24, 40, 3) and labels.shape == (24, 40)
    np.testing.assert_array_equal(image, np.array(Image.open(path).convert("RGB")))


def test_presets_aim_at_torchvision_figures_and_any_preset_takes_the_dataset(coco_dir):
    from deeplab_tf import train as deeplab_train
    from deeplab_tf.presets import PRESETS as DEEPLAB
    from fcn_tf.presets import PRESETS as FCN
    from segcore import cli

    fcn, deeplab = FCN["coco_voc_fcn8s"], DEEPLAB["coco_voc_deeplab_mobilenetv2"]
    assert fcn.dataset == deeplab.dataset == "coco_voc" and fcn.cache is deeplab.cache is False
    assert "60.5 mIoU / 91.4" in fcn.target and "VGG16" in fcn.target
    assert "60.3" in deeplab.target and "MobileNetV2" in deeplab.target
    assert deeplab.model["backbone"] == "mobilenetv2" and fcn.model["variant"] == "fcn8s_atonce"
    parser = cli.build_parser("t", "", DEEPLAB, deeplab_train.FAMILY)
    config = cli.parse_config(["--preset", "camvid_mobilenetv2", "--dataset", "coco_voc",
                               "--data-dir", coco_dir], DEEPLAB, "smoke", parser,
                              deeplab_train.FAMILY)
    assert (config.dataset, config.data_dir, config.dataset_options) == ("coco_voc", coco_dir, {})


# --- end to end ---------------------------------------------------------------------


@pytest.mark.slow
def test_coco_voc_fcn8s_preset_trains_end_to_end(coco_dir, tmp_path):
    """The preset's run, small: 2 steps at 64x64, validation and evaluation on 3 images."""
    from harness import run_trainer

    cache = tmp_path / "masks"
    runs = tmp_path / "runs"
    run_trainer("fcn_tf.train", "--preset", "coco_voc_fcn8s", "--data-dir", coco_dir,
                "--set", f"dataset_options.cache_dir={cache}", "--val-split", "train",
                "--epochs", 1, "--steps-per-epoch", 2, "--set", "validation_steps=3",
                "--eval-max-images", 3, "--image-size", 64, 64, "--precision", "fp32",
                "--weights", "none", "--runs-dir", runs, "--overlays", 1, "--no-export")
    with open(runs / "coco_voc_fcn8s" / "metrics.json") as f:
        metrics = json.load(f)
    # the report is the evaluation's confusion matrix over the 3 images' labelled pixels
    confusion = np.array(metrics["confusion_matrix"])
    assert confusion.shape == (21, 21) and metrics["num_images"] == 3
    assert metrics["pixel_accuracy"] == pytest.approx(np.trace(confusion) / confusion.sum())
    union = confusion.sum(0) + confusion.sum(1) - np.diag(confusion)
    assert metrics["mean_iou"] == pytest.approx(
        (np.diag(confusion)[union > 0] / union[union > 0]).mean())
    assert metrics["baseline"]["pixel_accuracy"] == pytest.approx(
        confusion.sum(1).max() / confusion.sum())
    with open(tmp_path / "runs" / "coco_voc_fcn8s" / "config.json") as f:
        recorded = json.load(f)
    assert recorded["dataset"] == "coco_voc" and recorded["model"]["variant"] == "fcn8s_atonce"
    (folder,) = os.listdir(cache)
    assert folder.startswith("train2017-") and len(os.listdir(cache / folder)) >= 3
    # the classes are VOC's: the run initialises a VOC fine-tuning run (--init-from),
    # here on 4 real VOC pairs
    src = os.path.join(os.path.dirname(coco_dir), "voc2012")
    root = tmp_path / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True)
    ids = voc2012.split_ids(src, "train")[:4]
    for item in ids:
        os.symlink(os.path.join(src, "JPEGImages", f"{item}.jpg"),
                   root / "JPEGImages" / f"{item}.jpg")
        os.symlink(os.path.join(src, "SegmentationClass", f"{item}.png"),
                   root / "SegmentationClass" / f"{item}.png")
    (root / "ImageSets/Segmentation/train.txt").write_text("\n".join(ids) + "\n")
    run_trainer("fcn_tf.train", "--preset", "voc_fcn8s", "--data-dir", root,
                "--train-split", "train", "--val-split", "train", "--epochs", 1,
                "--steps-per-epoch", 2, "--set", "validation_steps=2", "--eval-max-images", 2,
                "--image-size", 64, 64, "--precision", "fp32", "--init-from",
                runs / "coco_voc_fcn8s", "--runs-dir", runs, "--overlays", 0, "--no-export")
    with open(tmp_path / "runs" / "voc_fcn8s" / "config.json") as f:
        copied = json.load(f)["resolved"]["init_from_layers"]
    assert {"conv1_1", "fc6", "fc7", "score_fr", "score_pool4", "score_pool3"} <= set(copied)
