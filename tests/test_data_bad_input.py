"""Bad input: every case is a clear error naming the file, or a documented correct handling."""

import logging
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageOps

from harness import read_all
from segcore import data
from segcore.data import check, images, voc2012
from segcore.data.__main__ import main
from segcore.errors import DataError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))




def rgb(seed, size=(7, 5)):
    return np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)


def labels(seed, size=(7, 5), high=3):
    return np.random.default_rng(seed).integers(0, high, (size[1], size[0]), dtype=np.uint8)


def make_folder(root, pairs):
    """root/images and root/masks; pairs maps stem -> (image array or None, mask array or None)."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(exist_ok=True)
    for i, (stem, (image, mask)) in enumerate(sorted(pairs.items())):
        if image is not None:
            Image.fromarray(image).save(root / "images" / f"{stem}.png")
        if mask is not None:
            Image.fromarray(mask).save(root / "masks" / f"{stem}.png")
    return root


def voc_links(parent, datasets_root, train):
    """VOCdevkit/VOC2012 under `parent`: symlinks to real samples, a train list."""
    root = parent / "VOCdevkit" / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True)
    for item in train:
        for sub, ext in (("JPEGImages", "jpg"), ("SegmentationClass", "png")):
            os.symlink(os.path.join(datasets_root, "voc2012", sub, f"{item}.{ext}"),
                       root / sub / f"{item}.{ext}")
    (root / "ImageSets/Segmentation/train.txt").write_text("".join(f"{i}\n" for i in train))
    return root


def load(root, **options):
    options.setdefault("num_classes", 3)
    return data.load("folder", str(root), "all", **options)


# --- pairing --------------------------------------------------------------------


def test_image_without_mask_and_mask_without_image_list_the_stems(tmp_path):
    make_folder(tmp_path, {"a": (rgb(0), labels(0)), "b": (rgb(1), None), "c": (rgb(2), None),
                           "d": (None, labels(3))})
    with pytest.raises(DataError) as caught:
        load(tmp_path)
    message = str(caught.value)
    assert message.startswith(f"folder: 2 image(s) in {tmp_path / 'images'} without a mask in "
                               f"{tmp_path / 'masks'}: b, c")
    assert "and 1 more problem(s)" in message
    (report,) = check.check("folder", str(tmp_path), num_classes=3)
    assert report.problems[1] == (f"folder: 1 mask(s) in {tmp_path / 'masks'} without an image in "
                                  f"{tmp_path / 'images'}: d")
    assert report.pairs == 1


def test_two_candidate_masks_for_one_image(tmp_path):
    make_folder(tmp_path, {"a": (rgb(0), labels(0)), "b": (rgb(1), labels(1))})
    Image.fromarray(labels(2)).save(tmp_path / "masks" / "a.bmp")
    with pytest.raises(DataError, match=r"folder: 2 candidate masks for image .*images/a.png in "
                                        r".*masks: a.bmp, a.png$"):
        load(tmp_path)


def test_empty_directory(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    with pytest.raises(DataError, match=f"folder: no images in {tmp_path / 'images'}$"):
        load(tmp_path)
    with pytest.raises(DataError, match=r"folder masks: directory not found: .*nowhere"):
        load(tmp_path, mask_dir="nowhere")


# --- corrupt, truncated, deleted ------------------------------------------------


def test_corrupt_and_truncated_files(tmp_path):
    make_folder(tmp_path, {"a": (rgb(0), labels(0))})
    (tmp_path / "images" / "a.png").write_bytes(b"not an image at all")
    with pytest.raises(DataError, match=r"images/a.png: not a readable image \(cannot identify"):
        load(tmp_path)

    make_folder(tmp_path, {"a": (rgb(0, (64, 48)), labels(0, (64, 48)))})
    whole = (tmp_path / "images" / "a.png").read_bytes()
    (tmp_path / "images" / "a.png").write_bytes(whole[:-40])  # header intact, end missing
    with pytest.raises(DataError,
                       match=r"images/a.png: truncated or corrupt image file \(no end marker\)"):
        read_all(load(tmp_path))

    os.remove(tmp_path / "images" / "a.png")
    Image.fromarray(rgb(0, (64, 48))).save(tmp_path / "images" / "a.jpg", quality=90)
    whole = (tmp_path / "images" / "a.jpg").read_bytes()
    assert len(read_all(load(tmp_path))) == 1
    (tmp_path / "images" / "a.jpg").write_bytes(whole[:len(whole) // 2])
    with pytest.raises(DataError, match=r"images/a.jpg: truncated or corrupt image file"):
        read_all(load(tmp_path))


def test_file_deleted_after_indexing(tmp_path, datasets_root):
    make_folder(tmp_path, {"a": (rgb(0), labels(0)), "b": (rgb(1), labels(1))})
    dataset = load(tmp_path)
    os.remove(tmp_path / "images" / "b.png")
    with pytest.raises(DataError, match=r"images/b.png: file not found "
                                        r"\(deleted or moved after indexing\?\)"):
        read_all(dataset)
    # a palette mask (read with PIL) deleted after indexing
    voc = tmp_path / "voc"
    voc.mkdir()
    root = voc_links(voc, datasets_root, ["2007_000032"])
    dataset = data.load("voc2012", str(voc), "train")
    os.remove(root / "SegmentationClass" / "2007_000032.png")
    with pytest.raises(DataError, match=r"SegmentationClass/2007_000032.png: cannot decode mask "
                                        r"\(\[Errno 2\] No such file or directory"):
        read_all(dataset)


# --- sizes and values -----------------------------------------------------------


def test_size_mismatch_names_both_files_and_sizes(tmp_path):
    make_folder(tmp_path, {"a": (rgb(0, (7, 5)), labels(0, (8, 5)))})
    with pytest.raises(DataError) as caught:
        load(tmp_path)
    assert str(caught.value) == (f"image/mask size mismatch: {tmp_path / 'images' / 'a.png'} "
                                 f"is 7x5 but {tmp_path / 'masks' / 'a.png'} is 8x5")


def test_label_values_outside_the_classes_are_named(tmp_path):
    mask = labels(0)
    mask[0, :4] = (5, 7, 255, 5)
    make_folder(tmp_path, {"a": (rgb(0), mask)})
    with pytest.raises(DataError) as caught:
        read_all(load(tmp_path))
    assert str(caught.value) == (f"{tmp_path / 'masks' / 'a.png'}: mask values 5,7 are not "
                                 "class ids 0..2 or the ignore label 255")
    ((_, decoded),) = read_all(load(tmp_path, num_classes=8))
    np.testing.assert_array_equal(decoded, mask)


def test_sixteen_bit_masks_are_an_error(tmp_path):
    make_folder(tmp_path, {"a": (rgb(0), None)})
    Image.fromarray(labels(0).astype(np.uint16)).save(tmp_path / "masks" / "a.png")
    assert Image.open(tmp_path / "masks" / "a.png").mode == "I;16"
    with pytest.raises(DataError, match=r"masks/a.png: 16-bit mask \(mode I;16\); folder expects "
                                        r"8-bit class-index masks"):
        load(tmp_path)


# --- palette vs RGB confusion ---------------------------------------------------


def test_rgb_mask_where_voc_expects_a_palette_mask(tmp_path, datasets_root):
    root = voc_links(tmp_path, datasets_root, ["2007_000032", "2007_000039"])
    mask = root / "SegmentationClass" / "2007_000039.png"
    colours = Image.open(mask).convert("RGB")
    os.remove(mask)
    colours.save(mask)
    with pytest.raises(DataError) as caught:
        data.load("voc2012", str(tmp_path), "train")
    assert str(caught.value) == (
        f"{mask}: RGB colour mask where voc2012 expects an 8-bit class-index mask (palette 'P' or "
        "grey 'L' PNG whose pixel values are class ids); a colour rendering of the labels cannot "
        "be read as class ids")
    # a grey index copy of the same labels (SegmentationClassAug style) reads the same ids
    aug = root / "SegmentationClassAug"
    aug.mkdir()
    for item in ("2007_000032", "2007_000039"):
        source = os.path.join(datasets_root, "voc2012", "SegmentationClass", f"{item}.png")
        Image.fromarray(np.array(Image.open(source))).save(aug / f"{item}.png")
        assert Image.open(aug / f"{item}.png").mode == "L"
    decoded = read_all(data.load("voc2012", str(tmp_path), "train",
                                 mask_dir="SegmentationClassAug"))
    source = os.path.join(datasets_root, "voc2012", "SegmentationClass", "2007_000039.png")
    np.testing.assert_array_equal(decoded[1][1], np.array(Image.open(source)))
    assert voc2012.index(str(tmp_path), "train", mask_dir="SegmentationClassAug").samples[0] \
        .mask_method == images.MASK_GREY_PNG


def test_grey_mask_where_colours_expected_and_palette_where_colours_expected(tmp_path):
    colour_map = {(0, 0, 0): 0, (255, 0, 0): 1, (0, 0, 255): 2}
    ids = labels(0)
    colours = np.array(list(colour_map))[ids].astype(np.uint8)
    make_folder(tmp_path, {"a": (rgb(0), ids)})
    with pytest.raises(DataError, match=r"masks/a.png: L \(grey/index\) mask where folder "
                                        r"expects an RGB colour-coded mask"):
        load(tmp_path, colour_map=colour_map)
    # a palette PNG of the same colours is decoded by its colours: correct handling
    Image.fromarray(colours).quantize(palette=_palette_image(list(colour_map)),
                                      dither=Image.Dither.NONE).save(tmp_path / "masks" / "a.png")
    assert Image.open(tmp_path / "masks" / "a.png").mode == "P"
    ((_, decoded),) = read_all(load(tmp_path, colour_map=colour_map))
    np.testing.assert_array_equal(decoded, ids)


def _palette_image(colours):
    palette = Image.new("P", (1, 1))
    palette.putpalette([c for colour in colours for c in colour] * (256 // len(colours)) +
                       [0] * (768 - 3 * len(colours) * (256 // len(colours))))
    return palette


def test_unknown_colour_in_a_colour_coded_mask(tmp_path):
    colour_map = {(0, 0, 0): 0, (255, 0, 0): 1}
    colours = np.zeros((5, 7, 3), np.uint8)
    colours[2, 3] = (12, 34, 56)
    make_folder(tmp_path, {"a": (rgb(0), colours)})
    with pytest.raises(DataError) as caught:
        read_all(load(tmp_path, colour_map=colour_map))
    assert str(caught.value) == (f"{tmp_path / 'masks' / 'a.png'}: unknown mask colour (12,34,56); "
                                 "expected one of (0,0,0), (255,0,0)")


@pytest.mark.parametrize("count", [3, images.DIRECT_COMPARE_COLOURS + 4])
def test_colour_lookup_by_comparison_and_by_hash_table(count):
    """Small colour tables are compared directly, large ones hashed: same ids, same error."""
    colours = [(17 * i, 255 - 13 * i, (97 * i) % 256) for i in range(count)]
    colour_to_class = {colour: (i if i < count - 1 else 255) for i, colour in enumerate(colours)}
    rng = np.random.default_rng(count)
    index = rng.integers(0, count, (9, 11))
    mask = np.array(colours, np.uint8)[index]
    expected = np.array(list(colour_to_class.values()), np.uint8)[index]
    ids = images.colour_lookup(tf.constant(mask), colour_to_class, "m.png")
    np.testing.assert_array_equal(ids.numpy(), expected)
    mask[4, 5] = (1, 2, 3)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"m.png: unknown mask colour \(1,2,3\)"):
        images.colour_lookup(tf.constant(mask), colour_to_class, "m.png")


# --- image modes and EXIF orientation -------------------------------------------


@pytest.mark.parametrize("mode, ext", [("L", "png"), ("RGBA", "png"), ("P", "png"), ("CMYK", "jpg"),
                                       ("L", "jpg"), ("LA", "png")])
def test_grey_rgba_palette_cmyk_images_become_rgb(tmp_path, mode, ext):
    make_folder(tmp_path, {"a": (None, labels(0, (40, 30)))})
    source = Image.fromarray(rgb(3, (40, 30)))
    image = source.convert(mode) if mode != "P" else source.quantize(colors=17)
    path = tmp_path / "images" / f"a.{ext}"
    image.save(path, **({"quality": 92} if ext == "jpg" else {}))
    assert Image.open(path).mode == mode
    ((decoded, _),) = read_all(load(tmp_path))
    assert decoded.shape == (30, 40, 3) and decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded, np.array(Image.open(path).convert("RGB")))


@pytest.mark.parametrize("orientation, ext", [(o, "jpg") for o in range(1, 9)] + [(6, "png")])
def test_exif_orientation_is_applied(tmp_path, orientation, ext):
    pixels = rgb(4, (40, 24))
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "images" / f"a.{ext}"
    Image.fromarray(pixels).save(path, exif=exif.tobytes(),
                                 **({"quality": 95} if ext == "jpg" else {}))
    expected = np.array(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    height, width = expected.shape[:2]
    assert (width, height) == ((24, 40) if orientation >= 5 else (40, 24))
    Image.fromarray(labels(0, (width, height))).save(tmp_path / "masks" / "a.png")
    ((decoded, _),) = read_all(load(tmp_path))
    np.testing.assert_array_equal(decoded, expected)
    if orientation == 6:  # a mask drawn on the stored (unrotated) pixels does not fit
        Image.fromarray(labels(0, (40, 24))).save(tmp_path / "masks" / "a.png")
        with pytest.raises(DataError, match=rf"a.{ext} is 24x40 after EXIF orientation 6 but "
                                            r".*masks/a.png is 40x24"):
            load(tmp_path)


# --- skip_bad and the preflight check -------------------------------------------


def bad_folder(root):
    good = {f"good{i}": (rgb(i), labels(i)) for i in range(3)}
    mask = labels(9)
    mask[0, 0] = 9
    make_folder(root, {**good, "nomask": (rgb(5), None), "orphan": (None, labels(6)),
                       "size": (rgb(7, (7, 5)), labels(7, (6, 5))), "values": (rgb(9), mask),
                       "truncated": (rgb(8, (64, 48)), labels(8, (64, 48)))})
    truncated = root / "images" / "truncated.png"
    truncated.write_bytes(truncated.read_bytes()[:-30])
    return root


def test_skip_bad_leaves_out_and_logs_every_bad_pair(tmp_path, caplog):
    bad_folder(tmp_path)
    with pytest.raises(DataError, match=r"without a mask .*: nomask \(and 2 more problem\(s\); "):
        load(tmp_path)
    with caplog.at_level(logging.WARNING, logger="segcore.data"):
        kept = read_all(load(tmp_path, skip_bad=True))
    assert len(kept) == 3
    for (image, mask), i in zip(kept, range(3)):
        np.testing.assert_array_equal(image, rgb(i))
        np.testing.assert_array_equal(mask, labels(i))
    text = caplog.text
    assert "folder: skip_bad=True: skipped 5 bad pair(s)/problem(s), kept 3 pair(s)" in text
    for name in ("nomask", "orphan", "size.png", "truncated.png", "values.png"):
        assert name in text
    assert "mask values 9 are not class ids 0..2" in text


def test_check_reports_every_problem_and_fails(tmp_path, capsys):
    bad_folder(tmp_path)
    (report,) = check.check("folder", str(tmp_path), num_classes=3)
    assert (report.listed, report.pairs, len(report.problems)) == (5, 3, 5)
    assert report.sizes == {(7, 5): 3}
    assert main(["check", "folder", "--data-dir", str(tmp_path), "--option", "num_classes=3"]) == 1
    out = capsys.readouterr().out
    assert "folder / all in " in out and "3 of 5 listed pair(s) read" in out
    assert "5 problem(s) found" in out
    for fragment in ("without a mask", "without an image", "size mismatch", "truncated or corrupt",
                     "mask values 9"):
        assert fragment in out
    assert main(["check", "folder", "--data-dir", str(tmp_path), "--option", "colours=3"]) == 2


def test_check_on_real_samples(datasets_root, capsys):
    assert main(["check", "isbi2012", "--data-dir", os.path.join(datasets_root, "isbi2012"),
                 "--split", "val"]) == 0
    out = capsys.readouterr().out
    assert "isbi2012 / val in " in out and "4 of 4 listed pair(s) read" in out
    assert "sizes (WxH): 512x512 (4)" in out
    assert "0 cell: 830416 (79.19%); 1 membrane: 218160 (20.81%)" in out
    assert out.rstrip().endswith("no problems found")


def test_check_command_line_exit_status(tmp_path):
    bad_folder(tmp_path)
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    bad = subprocess.run(
        [sys.executable, "-m", "segcore.data", "check", "folder", "--data-dir", str(tmp_path),
         "--option", "num_classes=3"], capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 1, bad.stderr
    assert bad.stdout.count("\n  - ") == 5 and "5 problem(s) found" in bad.stdout
