"""`python -m segcore.predict`: palette PNGs equal to the SavedModel's class ids, overlays,
side-by-side figures, on mixed-size JPEG/PNG (grey, RGBA, palette) inputs; bad inputs."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from harness import one_line_error
from segcore import predict as pr
from segcore.export import export_saved_model
from segcore.visualize import colorize, overlay, side_by_side

CLASS_NAMES = ("sky", "wall", "tree", "person", "car")
PALETTE = ((70, 130, 180), (102, 102, 156), (107, 142, 35), (220, 20, 60), (0, 0, 142))


def conv_model(path, num_classes, class_names, palette, seed=0):
    """A random 3x3 conv on the image: class ids that vary from pixel to pixel."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((None, None, 3))
    logits = keras.layers.Conv2D(num_classes, 3, padding="same", name="score")(inputs)
    network = keras.Model(inputs, logits)

    def predict(images):
        return tf.nn.softmax(network(tf.cast(images, tf.float32) / 64.0 - 2.0), axis=-1)

    export_saved_model(str(path), predict, network.variables, num_classes, class_names, palette)
    return str(path)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return conv_model(tmp_path_factory.mktemp("m") / "saved_model", 5, CLASS_NAMES, PALETTE)


@pytest.fixture(scope="module")
def road_model(tmp_path_factory):
    run = tmp_path_factory.mktemp("road_run")            # a run directory: run/saved_model
    conv_model(run / "saved_model", 2, ("not_road", "road"), ((255, 0, 0), (255, 0, 255)), seed=1)
    return str(run)


def write_inputs(directory):
    """Mixed sizes and modes; returns {file name: the RGB image the model must see}."""
    rng = np.random.default_rng(0)
    os.makedirs(directory)
    expected = {}
    rgb = rng.integers(0, 256, (37, 53, 3)).astype(np.uint8)
    Image.fromarray(rgb).save(directory / "photo.jpg", quality=90)
    with Image.open(directory / "photo.jpg") as image:
        expected["photo.jpg"] = np.asarray(image.convert("RGB"))
    grey = rng.integers(0, 256, (20, 31)).astype(np.uint8)
    Image.fromarray(grey).save(directory / "grey.png")
    expected["grey.png"] = np.repeat(grey[..., None], 3, axis=-1)
    rgba = rng.integers(0, 256, (64, 48, 4)).astype(np.uint8)
    Image.fromarray(rgba, "RGBA").save(directory / "alpha.png")
    expected["alpha.png"] = rgba[..., :3]                  # alpha dropped, colours kept
    indices = rng.integers(0, 4, (9, 70)).astype(np.uint8)
    colours = np.array([[0, 0, 0], [250, 10, 10], [10, 250, 10], [30, 60, 90]], np.uint8)
    paletted = Image.fromarray(indices)
    paletted.putpalette(colours.ravel().tolist() + [0] * (768 - 12))
    paletted.save(directory / "paletted.png")
    expected["paletted.png"] = colours[indices]
    grey_jpeg = rng.integers(0, 256, (33, 17)).astype(np.uint8)
    Image.fromarray(grey_jpeg).save(directory / "grey.jpeg")
    with Image.open(directory / "grey.jpeg") as image:
        assert image.mode == "L"
        expected["grey.jpeg"] = np.repeat(np.asarray(image)[..., None], 3, axis=-1)
    return expected


def serve(saved_model, image):
    loaded = tf.saved_model.load(saved_model)
    return loaded.signatures["serving_default"](images=tf.constant(image[None]))["class_ids"][0]


def test_predict_directory_of_mixed_images(model, tmp_path, capsys):
    expected = write_inputs(tmp_path / "in")
    out = tmp_path / "out"
    assert pr.main(["--model", model, str(tmp_path / "in"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    loaded = tf.saved_model.load(model)
    palette = np.array(PALETTE, np.uint8)
    # grey.jpeg and grey.png share a stem: both kept, named by their full file names
    names = {"photo.jpg": "photo", "grey.png": "grey_png", "grey.jpeg": "grey_jpeg",
             "alpha.png": "alpha", "paletted.png": "paletted"}
    seen_classes = set()
    for source, name in names.items():
        image = expected[source]
        class_ids = loaded.signatures["serving_default"](
            images=tf.constant(image[None]))["class_ids"][0].numpy()
        with Image.open(out / "labels" / f"{name}.png") as labels:
            assert labels.mode == "P"
            np.testing.assert_array_equal(np.asarray(labels), class_ids)   # exact indices
            table = np.array(labels.getpalette()[:15], np.uint8).reshape(5, 3)
            np.testing.assert_array_equal(table, palette)
            np.testing.assert_array_equal(np.asarray(labels.convert("RGB")), palette[class_ids])
        seen_classes |= set(np.unique(class_ids).tolist())
        painted = overlay(image, class_ids, palette)
        np.testing.assert_array_equal(np.asarray(Image.open(out / "overlays" / f"{name}.png")),
                                      painted)
        np.testing.assert_array_equal(
            np.asarray(Image.open(out / "side_by_side" / f"{name}.png")),
            side_by_side(image, colorize(class_ids, palette), painted))
        assert f"{source} ({image.shape[1]}x{image.shape[0]})" in printed
    assert len(seen_classes) >= 3                    # the ids really vary
    assert sorted(os.listdir(out / "labels")) == sorted(f"{n}.png" for n in names.values())


def test_road_model_from_run_directory(road_model, tmp_path):
    image = np.random.default_rng(5).integers(0, 256, (21, 34, 3)).astype(np.uint8)
    Image.fromarray(image).save(tmp_path / "frame.png")
    assert pr.main(["--model", road_model, str(tmp_path / "frame.png"),
                    "--out", str(tmp_path / "out"), "--alpha", "0.5"]) == 0
    class_ids = serve(os.path.join(road_model, "saved_model"), image).numpy()
    assert 0 < class_ids.mean() < 1
    with Image.open(tmp_path / "out" / "labels" / "frame.png") as labels:
        assert labels.mode == "P"
        np.testing.assert_array_equal(np.asarray(labels), class_ids)
        assert labels.getpalette()[:6] == [255, 0, 0, 255, 0, 255]
    painted = np.asarray(Image.open(tmp_path / "out" / "overlays" / "frame.png")).astype(int)
    road = class_ids == 1
    # road painted green (round half to even of (pixel + (0, 255, 0)) / 2), the rest untouched
    np.testing.assert_array_equal(painted[road], np.rint((image[road] + [0, 255, 0]) / 2.0))
    np.testing.assert_array_equal(painted[~road], image[~road])


def test_test_time_options_change_nothing_for_a_covering_window(model, tmp_path):
    image = np.random.default_rng(6).integers(0, 256, (30, 40, 3)).astype(np.uint8)
    Image.fromarray(image).save(tmp_path / "x.png")
    assert pr.main(["--model", model, str(tmp_path / "x.png"), "--out", str(tmp_path / "a"),
                    "--crop", "30", "40", "--scales", "1.0"]) == 0
    with Image.open(tmp_path / "a" / "labels" / "x.png") as labels:
        np.testing.assert_array_equal(np.asarray(labels), serve(model, image).numpy())


def test_bad_inputs(model, tmp_path, capsys):
    empty = tmp_path / "empty"
    os.makedirs(empty)
    (empty / "notes.txt").write_text("no images here")
    assert pr.main(["--model", model, str(empty), "--out", str(tmp_path / "o1")]) == 2
    assert one_line_error(capsys) == (f"python -m segcore.predict: error: {empty}: directory has "
                                      "no images (.png, .jpg, .jpeg, .bmp, .tif, .tiff)")

    assert pr.main(["--model", model, str(tmp_path / "nope.png"), "--out", str(tmp_path)]) == 2
    assert f"{tmp_path / 'nope.png'}: no such file or directory" in one_line_error(capsys)

    module = tf.Module()
    module.fn = tf.function(lambda x: {"y": x},
                            input_signature=[tf.TensorSpec([None], tf.float32, "x")])
    tf.saved_model.save(module, str(tmp_path / "foreign"),
                        signatures={"predict": module.fn.get_concrete_function()})
    good = tmp_path / "good"
    os.makedirs(good)
    Image.fromarray(np.zeros((4, 5, 3), np.uint8)).save(good / "a.png")
    assert pr.main(["--model", str(tmp_path / "foreign"), str(good), "--out",
                    str(tmp_path / "o2")]) == 2
    assert "SavedModel has no signature serving_default (found predict)" in one_line_error(capsys)


def test_undecodable_image_is_named_and_the_others_are_written(model, tmp_path, capsys):
    folder = tmp_path / "in"
    os.makedirs(folder)
    Image.fromarray(np.full((6, 7, 3), 90, np.uint8)).save(folder / "a.png")
    (folder / "b.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    Image.fromarray(np.full((8, 5, 3), 200, np.uint8)).save(folder / "c.png")
    out = tmp_path / "out"
    assert pr.main(["--model", model, str(folder), "--out", str(out)]) == 1
    captured = capsys.readouterr()
    errors = captured.err.strip().splitlines()
    assert len(errors) == 2 and "Traceback" not in captured.err
    assert errors[0].startswith(f"python -m segcore.predict: error: {folder / 'b.jpg'}: "
                                "cannot decode image (")
    assert errors[1] == "python -m segcore.predict: error: 1 of 3 image(s) could not be read"
    assert sorted(os.listdir(out / "labels")) == ["a.png", "c.png"]
    assert sorted(os.listdir(out / "side_by_side")) == ["a.png", "c.png"]


@pytest.mark.slow
def test_module_entry_point(model, tmp_path):
    """`python -m segcore.predict` in a fresh process, from the SavedModel alone."""
    os.makedirs(tmp_path / "in")
    image = np.random.default_rng(7).integers(0, 256, (19, 23, 3)).astype(np.uint8)
    Image.fromarray(image).save(tmp_path / "in" / "z.png")
    result = subprocess.run(
        [sys.executable, "-m", "segcore.predict", "--model", model, str(tmp_path / "in"),
         "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr
    assert "wrote 1 image(s)" in result.stdout
    with Image.open(tmp_path / "out" / "labels" / "z.png") as labels:
        np.testing.assert_array_equal(np.asarray(labels), serve(model, image).numpy())
