"""`python -m deeplab_tf.train`: run directory, multi-scale/flip inference wiring,
the reference's L2 weight decay, the batch-norm batch check, the flags."""

import json
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf import ResizeBilinear, predict_multiscale, preprocess_input
from deeplab_tf import train as deeplab_train
from harness import pretend_machine
from segcore import cli
from segcore.inference import make_predict_fn as plain_predict_fn
from segcore.task import SegmentationTask

SMOKE = deeplab_train.PRESETS["smoke"]


def smoke_config(**model):
    return SMOKE.replace(model={**SMOKE.model, **model})


def small_task():
    """A tiny stride-2 network whose logits vary over the image, in a SegmentationTask."""
    keras.utils.set_random_seed(3)
    image = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(image)
    x = keras.layers.Conv2D(4, 3, padding="same")(x)
    logits = ResizeBilinear()([x, image])
    return SegmentationTask(keras.Model(image, logits), deeplab_train.preprocess)


def test_eval_scales_and_flip_reach_the_predict_function():
    image = np.random.default_rng(1).integers(0, 256, (1, 45, 53, 3), dtype=np.uint8)
    task = small_task()
    plain = plain_predict_fn(task)(image).numpy()
    single = deeplab_train.make_predict_fn(task, smoke_config())(image).numpy()
    np.testing.assert_allclose(single, plain, atol=1e-6)

    config = smoke_config(eval_scales=(0.75, 1.0), eval_flip=True)
    multi = deeplab_train.make_predict_fn(task, config)(image).numpy()
    expected = predict_multiscale(task.network, deeplab_train.preprocess(image), (0.75, 1.0), True)
    np.testing.assert_allclose(multi, expected.numpy(), atol=1e-6)
    assert np.abs(multi - plain).max() > 0.05  # the scales and flips do change the answer
    mirrored = deeplab_train.make_predict_fn(task, config)(image[:, :, ::-1].copy()).numpy()
    np.testing.assert_allclose(mirrored[:, :, ::-1], multi, atol=1e-5)  # flip-averaged
    unflipped = deeplab_train.make_predict_fn(task, smoke_config(eval_scales=(0.75, 1.0)))
    assert np.abs(unflipped(image[:, :, ::-1].copy()).numpy()[:, :, ::-1] - multi).max() > 0.05


def test_l2_weight_decay_is_the_references_regulariser():
    network, notes = deeplab_train.build(smoke_config(l2_weight_decay=4e-5), 4)
    task = SegmentationTask(network, deeplab_train.preprocess)
    convolutions = [layer for layer in task.network.layers
                    if isinstance(layer, keras.layers.Conv2D)]
    assert notes["l2_regularised_kernels"] == len(convolutions) == 44
    assert not any(isinstance(layer, keras.layers.DepthwiseConv2D) for layer in convolutions)
    expected = 4e-5 / 2 * sum(float(tf.reduce_sum(layer.kernel ** 2)) for layer in convolutions)
    assert float(sum(task.losses)) == pytest.approx(expected, rel=1e-5)
    network, notes = deeplab_train.build(smoke_config(), 4)
    assert not SegmentationTask(network, deeplab_train.preprocess).losses
    assert "l2_regularised_kernels" not in notes


def test_resnet_input_layer_gives_the_caffe_preprocessing():
    images = np.random.default_rng(2).uniform(0, 255, (2, 5, 7, 3)).astype("float32")
    converted = deeplab_train.CaffeFromUnitRange()(deeplab_train.preprocess(images))
    np.testing.assert_allclose(converted, preprocess_input(images, "resnet50"), atol=1e-4)


def test_batch_norm_batch_is_checked_per_replica(two_replica_strategy):
    config = smoke_config(backbone="mobilenetv2", alpha=0.35)
    with two_replica_strategy.scope():
        with pytest.warns(UserWarning, match="per-replica batch of 1"):
            _, notes = deeplab_train.build(config, 4)  # batch 2 over 2 replicas
        assert notes["batch_norm_batch"] == 1
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            _, notes = deeplab_train.build(smoke_config(sync_batch_norm=True), 4)
        assert notes["batch_norm_batch"] == 2


def test_eval_and_crop_flags_reach_the_config():
    parser = cli.build_parser(deeplab_train.PROG, deeplab_train.__doc__, deeplab_train.PRESETS,
                              deeplab_train.FAMILY)
    config = cli.parse_config(["--preset", "smoke", "--eval-scales", "0.5", "1.0", "1.5",
                               "--eval-flip", "true", "--crop-size", "33", "41"],
                              deeplab_train.PRESETS, deeplab_train.DEFAULT_PRESET, parser,
                              deeplab_train.FAMILY)
    assert config.model["eval_scales"] == (0.5, 1.0, 1.5) and config.model["eval_flip"] is True
    assert config.augment["crop_size"] == (33, 41)
    assert config.model["backbone"] == deeplab_train.PRESETS["smoke"].model["backbone"]


@pytest.mark.parametrize("argv, text", [
    (["--eval-scales", "0", "1"], "--eval-scales must be positive numbers"),
    (["--backbone", "vgg16"], "backbone must be one of"),
    (["--weights", "imagenet", "--backbone", "xception65"],
     "not available for backbone 'xception65'"),
])
def test_bad_flags_are_one_line_errors(argv, text, tmp_path, capsys):
    status = deeplab_train.main(["--preset", "smoke", "--runs-dir", str(tmp_path), *argv])
    assert status == 2
    message = capsys.readouterr().err.strip()
    assert text in message and len(message.splitlines()) == 1


@pytest.mark.slow
@pytest.mark.parametrize("native_bf16", [False, True], ids=["cpu_without_bf16", "cpu_with_bf16"])
def test_smoke_run_directory_and_single_scale_saved_model(tmp_path, monkeypatch, native_bf16):
    # Both answers of --precision auto are forced; the SavedModel is float32 either way.
    pretend_machine(monkeypatch, native_bf16=native_bf16)
    status = deeplab_train.main(["--preset", "smoke", "--runs-dir", str(tmp_path),
                                 "--eval-scales", "1.0"])
    assert status == 0
    run = tmp_path / "smoke"
    for name in ("config.json", "metrics.json", "curves.png", "checkpoints/final.weights.h5",
                 "saved_model/1/saved_model.pb", "overlays/val_000.png", "overlays/val_001.png"):
        assert (run / name).exists(), name
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["eval_scales"] == [1.0] and config["model"]["backbone"] == "mobilenetv2"
    assert config["resolved"]["dtype_policy"] == ("mixed_bfloat16" if native_bf16 else "float32")
    assert config["resolved"]["export_dtype_policy"] == "float32"
    assert config["resolved"]["batch_norm_batch"] == 2
    metrics = json.loads((run / "metrics.json").read_text())
    assert np.array(metrics["confusion_matrix"]).sum() <= 2 * 49 * 49  # void band ignored
    assert len(metrics["per_class_iou"]) == 4

    # The SavedModel (scales (1.0,), no flip) equals the plain softmax of the trained network.
    network, _ = deeplab_train.build(SMOKE, 4)
    network.load_weights(str(run / "checkpoints" / "final.weights.h5"))
    image = np.random.default_rng(4).integers(0, 256, (1, 37, 61, 3), dtype=np.uint8)
    loaded = tf.saved_model.load(str(run / "saved_model" / "1"))
    served = loaded.signatures["serving_default"](images=tf.constant(image))["probabilities"]
    plain = plain_predict_fn(SegmentationTask(network, deeplab_train.preprocess))(image)
    assert served.shape == (1, 37, 61, 4)
    np.testing.assert_allclose(served.numpy(), plain.numpy(), atol=1e-5)


@pytest.mark.slow
def test_export_precision_mixed_serves_bfloat16_close_to_float32(tmp_path, monkeypatch):
    pretend_machine(monkeypatch, native_bf16=True)  # a CPU: the mixed policy is bfloat16
    status = deeplab_train.main(["--preset", "smoke", "--runs-dir", str(tmp_path), "--precision",
                                 "fp32", "--eval-scales", "1.0", "--export-precision", "mixed"])
    assert status == 0
    run = tmp_path / "smoke"
    config = json.loads((run / "config.json").read_text())
    assert config["export_precision"] == "mixed"
    assert config["resolved"]["dtype_policy"] == "float32"
    assert config["resolved"]["export_dtype_policy"] == "mixed_bfloat16"
    loaded = tf.saved_model.load(str(run / "saved_model" / "1"))
    assert loaded.signatures["metadata"]()["dtype_policy"].numpy() == b"mixed_bfloat16"
    network, _ = deeplab_train.build(SMOKE, 4)
    network.load_weights(str(run / "checkpoints" / "final.weights.h5"))
    image = np.random.default_rng(4).integers(0, 256, (1, 37, 61, 3), dtype=np.uint8)
    served = loaded.signatures["serving_default"](images=tf.constant(image))["probabilities"]
    plain = plain_predict_fn(SegmentationTask(network, deeplab_train.preprocess))(image)
    difference = np.abs(served.numpy() - plain.numpy()).max()
    assert 0 < difference < 0.1  # computed in bfloat16 (8-bit mantissa), not in float32


def test_auto_weights_fall_back_to_random_initialisation(monkeypatch):
    from deeplab_tf import model as deeplab_model
    from segcore.errors import ConfigError
    from segcore.pretrained import WeightsUnavailable

    def unavailable(factory, weights, **kwargs):
        raise WeightsUnavailable(
            f"weights={weights!r}: could not get the {factory} ImageNet weights")

    monkeypatch.setattr(deeplab_model, "keras_application", unavailable)
    _, notes = deeplab_train.build(SMOKE.replace(weights="auto"), 4)
    assert notes["weights_used"].startswith("none (auto: ImageNet weights unavailable")
    _, notes = deeplab_train.build(SMOKE.replace(weights="auto", model={
        **SMOKE.model, "backbone": "xception65", "alpha": 1.0}), 4)
    assert notes["weights_used"] == (
        "none (auto: no ImageNet checkpoint for xception65 in this package)")
    with pytest.raises(ConfigError, match="could not get the MobileNetV2"):
        deeplab_train.build(SMOKE.replace(weights="imagenet"), 4)


@pytest.mark.slow
def test_cityscapes_preset_trains_on_769_crops_of_the_real_frames(datasets_root, tmp_path):
    """The Cityscapes recipe on the real sample frame: whole frames in, the training
    step scales and crops 769x769 (a small MobileNetV2 stands in for Xception-65)."""
    preset = deeplab_train.PRESETS["cityscapes_xception65"]
    assert preset.augment["crop_size"] == (769, 769) and preset.image_size is None
    with pytest.warns(UserWarning, match="per-replica batch of 1"):
        status = deeplab_train.main([
            "--preset", "cityscapes_xception65", "--runs-dir", str(tmp_path),
            "--data-dir", f"{datasets_root}/cityscapes", "--train-split", "val",
            "--backbone", "mobilenetv2", "--alpha", "0.35", "--weights", "none",
            "--batch-size", "1", "--epochs", "1", "--steps-per-epoch", "2",
            "--eval-max-images", "1", "--overlays", "0", "--no-export"])
    assert status == 0
    run = tmp_path / "cityscapes_xception65"
    config = json.loads((run / "config.json").read_text())
    assert config["augment"]["crop_size"] == [769, 769]
    metrics = json.loads((run / "metrics.json").read_text())
    assert np.array(metrics["confusion_matrix"]).shape == (19, 19)
    from segcore import data

    ((_, labels),) = list(data.load("cityscapes", f"{datasets_root}/cityscapes", "val"))
    assert labels.shape[0] < 769  # the samples are small: the crops pad with ignore
    # evaluated at the frame's own size, ignore (255) left out
    assert np.array(metrics["confusion_matrix"]).sum() == np.sum(labels.numpy() != 255)
