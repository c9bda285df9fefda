"""Training FCN through the shared engine: a step lowers the loss, 2 replicas = 1,
mixed precision = fp32, and the main job's run directory."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from fcn_tf import build_fcn, preprocess
from fcn_tf.presets import PRESETS
from segcore.data import synthetic
from segcore.losses import SegmentationCrossEntropy
from segcore.optimizers import FusedAdam
from segcore.precision import dtype_policy
from segcore.task import SegmentationTask


def road_batch(count=4, size=(64, 96)):
    images, labels = synthetic.road_scenes_arrays("train", size=size, count=count, seed=3)
    return images, labels


NARROW = 0.125  # VGG16's graph at 8 ... 64 channels: the engine's behaviour, not the width


def compiled_task(network, optimizer):
    task = SegmentationTask(network, preprocess)
    task.compile(optimizer=optimizer, loss=SegmentationCrossEntropy(2))
    return task


def test_training_steps_lower_the_loss():
    images, labels = road_batch()
    task = compiled_task(build_fcn("fcn8s", 2, dropout=0.0, width=NARROW),
                         keras.optimizers.Adam(1e-3))
    before = float(task.test_on_batch(images, labels))
    assert before == pytest.approx(np.log(2), abs=1e-6)  # zero-initialised score layers
    for _ in range(3):
        task.train_on_batch(images, labels)
    after = float(task.test_on_batch(images, labels))
    assert after < before - 0.05


def test_kitti_preset_rate_trains_random_vgg16_where_the_seeds_rate_diverges():
    # From random VGG16 weights the score layers start at zero, so Adam's second update is
    # the first to reach the VGG layers: every weight moves by about the learning rate, in
    # the same direction over non-negative ReLU inputs, and the growth of each layer's
    # output multiplies through the 15 layers.
    images, labels = road_batch(count=2, size=(64, 192))
    losses = {}
    for rate in (1e-3, PRESETS["kitti_fcn8s"].learning_rate):
        keras.utils.set_random_seed(0)
        task = compiled_task(build_fcn("fcn8s", 2, dropout=0.0), FusedAdam(rate))
        # the loss of each step, before its update
        losses[rate] = [float(task.train_on_batch(images, labels)) for _ in range(3)]
        del task
        keras.backend.clear_session()
    seeds, preset = losses[1e-3], losses[PRESETS["kitti_fcn8s"].learning_rate]
    assert seeds[0] == preset[0] == pytest.approx(np.log(2), abs=1e-6)
    assert seeds[2] > 100                    # 0.69, 0.51, 957
    assert max(preset) <= np.log(2) + 1e-6   # 0.69, 0.67, 0.60


def test_two_replicas_give_the_same_step_as_one(two_replica_strategy, tmp_path):
    images, labels = road_batch(count=4, size=(32, 64))
    labels[0, :20] = 255  # ignored pixels fall unevenly between the two replicas
    initial = str(tmp_path / "initial.weights.h5")
    build_fcn("fcn8s", 2, dropout=0.0, width=NARROW, name="init").save_weights(initial)

    def one_step(strategy):
        with strategy.scope():
            network = build_fcn("fcn8s", 2, dropout=0.0, width=NARROW)
            network.load_weights(initial)
            task = compiled_task(network, keras.optimizers.SGD(0.01, momentum=0.9))
        data = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4)
        task.fit(data, epochs=2, verbose=0, shuffle=False)
        return {name: network.get_layer(name).get_weights()[0]
                for name in ("conv1_1", "fc7", "score_fr", "score_pool3", "upscore2")}

    single = one_step(tf.distribute.MirroredStrategy(["/cpu:0"]))
    double = one_step(two_replica_strategy)
    for name in single:
        change = np.abs(single[name]).max()
        np.testing.assert_allclose(double[name], single[name], atol=1e-5 * max(change, 1.0),
                                   err_msg=name)
    assert np.abs(single["score_fr"]).max() > 0  # the step did move the weights


def test_mixed_precision_matches_fp32_loss():
    images, labels = road_batch(count=2, size=(32, 64))
    losses = {}
    for policy in ("float32", "mixed_bfloat16"):
        keras.utils.set_random_seed(7)
        with dtype_policy(policy):
            network = build_fcn("fcn8s", 2, dropout=0.0, width=NARROW)
            task = compiled_task(network, keras.optimizers.Adam(1e-3))
            expected = "bfloat16" if policy.startswith("mixed") else "float32"
            assert network.get_layer("fc6").compute_dtype == expected
            for _ in range(3):
                task.train_on_batch(images, labels)
            losses[policy] = float(task.test_on_batch(images, labels))
            assert task(images).dtype == "float32"
    assert losses["mixed_bfloat16"] == pytest.approx(losses["float32"], rel=0.05)
    assert losses["float32"] < np.log(2) - 0.02


@pytest.mark.slow
def test_main_job_writes_the_run_directory(tmp_path):
    from harness import run_trainer

    run_trainer("fcn_tf.train", "--preset", "smoke", "--runs-dir", tmp_path)
    run = tmp_path / "smoke"
    for name in ("config.json", "metrics.json", "curves.png", "train_log.csv", "train.log",
                 "checkpoints/final.weights.h5", "saved_model/1/saved_model.pb",
                 "overlays/val_000.png", "overlays/val_001.png"):
        assert (run / name).exists(), name
    assert os.listdir(run / "tensorboard")
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["variant"] == "fcn8s" and config["image_size"] == [64, 160]
    assert config["resolved"]["weights_used"].startswith("none")
    metrics = json.loads((run / "metrics.json").read_text())
    confusion = np.array(metrics["confusion_matrix"])
    assert confusion.sum() == 2 * 64 * 160  # eval_max_images=2 at the generated size
    assert metrics["pixel_accuracy"] == pytest.approx(np.trace(confusion) / confusion.sum())
    assert set(metrics["road"]) == {"max_f", "ap", "precision", "recall", "fpr", "fnr", "threshold"}
    assert "val_mean_iou" in metrics["history"] and len(metrics["history"]["loss"]) == 1
    # The export's absl INFO chatter (a line of thousands of characters per signature about
    # renamed capture names) stays out of the run's log; the export's own lines stay in.
    log = (run / "train.log").read_text()
    assert " INFO absl: " not in log and "saved_model" in log


@pytest.mark.slow
def test_a_run_logs_no_tf_data_warnings(tmp_path):
    """No "did not fully read the dataset being cached" (a cache a short run never completes)
    and no "GeneratorDatasetOp ... will not be optimized" (a one-device MirroredStrategy's
    input iterator, at every epoch): a user reads warnings as problems."""
    import subprocess
    import sys

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="0")
    result = subprocess.run(
        [sys.executable, "-m", "fcn_tf.train", "--preset", "smoke", "--precision", "fp32",
         "--epochs", "2", "--no-export", "--overlays", "0", "--runs-dir", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Epoch 2/2" in result.stdout + result.stderr
    for warning in ("did not fully read the dataset being cached", "will not be optimized"):
        assert warning not in result.stderr, warning
