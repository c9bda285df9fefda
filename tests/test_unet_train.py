"""`python -m unet_tf.train`: the valid U-Net trained at output = input size, its
overlap-tile evaluation and SavedModel, the ISBI metrics of its runs, the ISBI data path."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from harness import pretend_machine
from unet_tf import border_weight_map, build_unet, isbi_weight_map, predict_tiled_batch
from unet_tf import train as unet_train

RUN_FILES = ("config.json", "metrics.json", "curves.png", "train_log.csv",
             "checkpoints/final.weights.h5", "saved_model/1/saved_model.pb",
             "overlays/val_000.png", "overlays/val_001.png")


def test_covering_input_size_is_the_smallest_valid_input_covering_the_image():
    assert [int(unet_train.covering_input_size(n)) for n in (1, 4, 5, 388, 389, 512)] == \
        [188, 188, 204, 572, 588, 700]
    # depth 2: inputs 4b + 28 with outputs 4b - 12 (border 20)
    assert [int(unet_train.covering_input_size(n, depth=2)) for n in (4, 28, 29, 48)] == \
        [44, 68, 72, 88]


def test_training_logits_equal_the_overlap_tile_prediction():
    tf.keras.utils.set_random_seed(1)
    unet = build_unet((None, None, 1), 2, base_filters=4, depth=2)
    images = np.random.default_rng(0).uniform(0, 1, (2, 45, 61, 1)).astype("float32")
    whole = tf.nn.softmax(unet_train.OverlapTileUNet(unet)(images)).numpy()
    tiles = tf.nn.softmax(unet_train.OverlapTileUNet(unet, train_tile=68)(images)).numpy()
    served = predict_tiled_batch(unet, images, tile_size=68, batch_size=3).numpy()
    assert whole.shape == tiles.shape == served.shape == (2, 45, 61, 2)
    np.testing.assert_allclose(whole, served, atol=1e-6)
    np.testing.assert_allclose(tiles, served, atol=1e-6)
    assert np.ptp(served[..., 1]) > 1e-3  # the map is not constant


def test_weight_map_of_membrane_labels_is_the_papers():
    labels = np.zeros((40, 50), np.uint8)
    labels[:, 20:23] = 1  # a membrane between two cells
    labels[25:27, :20] = 1
    weights = unet_train.weight_map(labels, w0=10.0, sigma=5.0)
    np.testing.assert_array_equal(weights, border_weight_map(labels == 0, 10.0, 5.0))
    np.testing.assert_array_equal(weights, isbi_weight_map(np.where(labels == 0, 255, 0)))
    membrane_share = labels.mean()
    # class balancing: cells weigh 1, membranes n_cell / n_membrane, plus the border term
    assert weights[0, 0] == pytest.approx(1.0)
    assert weights[0, 21] == pytest.approx((1 - membrane_share) / membrane_share
                                           + 10 * np.exp(-16.0 / 50), rel=1e-5)


def test_data_dir_selects_the_isbi_preset():
    assert unet_train.default_preset([]) == "synthetic_unet"
    assert unet_train.default_preset(["--data-dir", "d"]) == "isbi_unet"
    assert unet_train.default_preset(["--data-dir=d"]) == "isbi_unet"
    assert unet_train.default_preset(["--data-dir", "d", "--preset", "smoke"]) == "synthetic_unet"
    assert unet_train.default_preset(["--data-dir", "d", "--dataset", "folder"]) == "synthetic_unet"
    paper = unet_train.PRESETS["isbi_unet"]
    assert (paper.dataset, paper.batch_size, paper.momentum, paper.image_size) == \
        ("isbi2012", 1, 0.99, None)
    assert paper.weight_map == {"w0": 10.0, "sigma": 5.0}
    assert paper.augment == {"flip": True, "elastic_sigma": 10.0}
    assert paper.model["base_filters"] == 64 and paper.model["tile_size"] == 572


def test_bad_tile_size_is_a_one_line_error(tmp_path, capsys):
    status = unet_train.main(["--preset", "smoke", "--runs-dir", str(tmp_path),
                              "--tile-size", "70"])
    assert status == 2
    message = capsys.readouterr().err.strip()
    assert "input size 70 is not valid" in message and "68 or 72" in message
    assert len(message.splitlines()) == 1


@pytest.mark.slow
@pytest.mark.parametrize("native_bf16", [False, True], ids=["cpu_without_bf16", "cpu_with_bf16"])
def test_smoke_run_directory_and_saved_model_of_any_size(tmp_path, monkeypatch, native_bf16):
    # --precision auto trains in float32 or mixed_bfloat16 as the CPU has bf16 or not; both
    # answers are forced here, and the SavedModel is float32 either way (--export-precision).
    pretend_machine(monkeypatch, native_bf16=native_bf16)
    assert unet_train.main(["--preset", "smoke", "--runs-dir", str(tmp_path)]) == 0
    run = tmp_path / "smoke"
    for name in RUN_FILES:
        assert (run / name).exists(), name
    config = json.loads((run / "config.json").read_text())
    assert config["resolved"]["dtype_policy"] == ("mixed_bfloat16" if native_bf16 else "float32")
    assert config["resolved"]["export_dtype_policy"] == "float32"
    assert config["image_size"] == [48, 48] and config["model"]["tile_size"] == 68
    assert "one mirrored tile per image" in config["resolved"]["geometry"]
    metrics = json.loads((run / "metrics.json").read_text())
    confusion = np.array(metrics["confusion_matrix"])
    assert confusion.sum() == 2 * 48 * 48
    isbi = metrics["isbi"]
    assert isbi["slices"] == 2
    assert isbi["pixel_error"] == pytest.approx(1 - metrics["pixel_accuracy"])  # no ignored pixels
    # (The ISBI foreground IoU is a mean of per-slice IoUs, the confusion matrix's is pooled
    # over the slices: they are compared on one slice, in the ISBI test below.)
    assert 0 <= isbi["rand_error_best"] <= isbi["rand_error"] <= 1

    # The SavedModel tiles images of any size; it agrees with the trained network.
    loaded = tf.saved_model.load(str(run / "saved_model" / "1"))
    assert loaded.signatures["metadata"]()["dtype_policy"].numpy() == b"float32"
    image = np.random.default_rng(1).integers(0, 256, (1, 37, 53, 3), dtype=np.uint8)
    outputs = loaded.signatures["serving_default"](images=tf.constant(image))
    assert outputs["class_ids"].shape == (1, 37, 53)
    assert outputs["probabilities"].shape == (1, 37, 53, 2)
    network, _ = unet_train.build(unet_train.PRESETS["smoke"], 2)
    network.load_weights(str(run / "checkpoints" / "final.weights.h5"))
    expected = tf.nn.softmax(network(unet_train.preprocess(image))).numpy()
    np.testing.assert_allclose(outputs["probabilities"].numpy(), expected, atol=1e-5)


@pytest.mark.slow
def test_isbi_preset_trains_on_the_real_slices(tmp_path, datasets_root):
    data_dir = os.path.join(datasets_root, "isbi2012")
    status = unet_train.main([
        "--data-dir", data_dir, "--train-split", "val", "--base-filters", "4", "--depth", "2",
        "--tile-size", "132",
        "--steps-per-epoch", "1", "--epochs", "1", "--eval-max-images", "1", "--overlays", "1",
        "--no-export", "--runs-dir", str(tmp_path)])
    assert status == 0
    run = tmp_path / "isbi_unet"  # --data-dir alone selects the paper's preset
    config = json.loads((run / "config.json").read_text())
    assert config["dataset"] == "isbi2012" and config["image_size"] is None
    assert config["weight_map"] == {"w0": 10.0, "sigma": 5.0}
    metrics = json.loads((run / "metrics.json").read_text())
    assert np.array(metrics["confusion_matrix"]).sum() == 512 * 512  # one whole slice
    assert metrics["isbi"]["slices"] == 1
    assert metrics["isbi"]["pixel_error"] == pytest.approx(1 - metrics["pixel_accuracy"])
    # one slice: the ISBI cell IoU is the confusion matrix's class-0 (cell) IoU
    assert metrics["isbi"]["foreground_iou"] == pytest.approx(metrics["per_class_iou"][0])
    assert (run / "overlays" / "val_000.png").exists()
