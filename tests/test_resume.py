"""Interrupted runs resume exactly (segcore.resume): a trainer killed with SIGKILL at a
known moment and rerun ends with the uninterrupted run's weights, bit for bit, and its
record (metrics.json history, train_log.csv) has every epoch once, with the same values.

The moments come from the test hook SEGCORE_RESUME_TEST_BLOCK (the trainer writes a
marker file and sleeps there; the test then kills it): mid-epoch after a step with no
backup, right after a step backup, and in the middle of writing a backup.
"""

import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from harness import h5_arrays
from segcore import resume
from segcore.data.pipeline import make_training_stream
from segcore.errors import ConfigError, DataError

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# 2 epochs of 4 steps, a backup every 2 steps: backups after global steps 2, 4 (epoch end),
# 6 and 8 (epoch end).
COMMON = ["--preset", "smoke", "--epochs", "2", "--steps-per-epoch", "4", "--backup-every", "2",
          "--precision", "fp32", "--no-export", "--overlays", "0", "--eval-max-images", "1"]
FCN = ["fcn_tf.train"] + COMMON + [
    "--image-size", "32", "64", "--batch-size", "1", "--optimizer", "sgd", "--momentum", "0",
    "--dropout", "0.5"]
UNET = ["unet_tf.train"] + COMMON + ["--batch-size", "1", "--dropout", "0.5"]
# trained batch norm (momentum 0.9: its moving statistics move every step), SGD momentum
# 0.9 on the poly schedule, random scale/crop/flip: all three must continue exactly
DEEPLAB = ["deeplab_tf.train"] + COMMON + ["--batch-size", "2", "--momentum", "0.9"]
# Kill moments, in the order of one chain of reruns (global steps are 1-based):
#   backup:2  right after the backup of step 2 (mid-epoch 1): resumes at epoch 1, step 2;
#   step:3    after step 3, no backup since step 2: resumes at epoch 1, step 2 again;
#   writing:6 while the backup of step 6 is half written: resumes from the epoch-1 end.
MOMENTS = ("backup:2", "step:3", "writing:6")


def _env(block=None):
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop(resume.TEST_BLOCK_ENV, None)
    if block:
        env[resume.TEST_BLOCK_ENV] = block
    return env


def _command(trainer, runs_dir):
    return [sys.executable, "-m", trainer[0]] + trainer[1:] + ["--runs-dir", str(runs_dir)]


def _start(trainer, runs_dir, block=None, log=None, extra=()):
    return subprocess.Popen(_command(trainer, runs_dir) + list(extra), env=_env(block),
                            cwd=REPO_ROOT,
                            stdout=log, stderr=subprocess.STDOUT)


def _kill_at(trainer, runs_dir, moment, tmp_path, timeout=300):
    marker = tmp_path / f"blocked-{moment.replace(':', '-')}"
    with open(tmp_path / f"log-{moment.replace(':', '-')}.txt", "wb") as log:
        process = _start(trainer, runs_dir, f"{moment}:{marker}", log)
        deadline = time.time() + timeout
        while not marker.exists():
            if process.poll() is not None:
                raise AssertionError(f"trainer ended ({process.returncode}) before {moment}: "
                                     + (tmp_path / log.name).read_text()[-3000:])
            if time.time() > deadline:
                process.kill()
                raise AssertionError(f"trainer did not reach {moment} in {timeout} s")
            time.sleep(0.2)
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL


def _weights(run):
    return h5_arrays(run / "checkpoints" / "final.weights.h5")


def _check_exact_resume(trainer, tmp_path):
    reference_dir, resumed_dir = tmp_path / "reference", tmp_path / "resumed"
    with open(tmp_path / "log-reference.txt", "wb") as log:
        # Runs while the others are killed; with backups at epoch ends only (when backups
        # are taken does not change what is trained).
        reference = _start(trainer, reference_dir, log=log, extra=["--backup-every", "0"])
        for moment in MOMENTS:
            _kill_at(trainer, resumed_dir, moment, tmp_path)
            if moment == "writing:6":
                assert (resumed_dir / "smoke" / "backup" / "state.zip.partial").exists()
        final = subprocess.run(_command(trainer, resumed_dir), env=_env(), cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=600)
        assert final.returncode == 0, final.stderr[-3000:]
        assert reference.wait(timeout=600) == 0, (tmp_path / "log-reference.txt").read_text()
    expected, got = reference_dir / "smoke", resumed_dir / "smoke"

    weights, reference_weights = _weights(got), _weights(expected)
    assert sorted(weights) == sorted(reference_weights) and len(weights) > 4
    for name in reference_weights:
        np.testing.assert_array_equal(weights[name], reference_weights[name], err_msg=name)
    history = json.loads((got / "metrics.json").read_text())["history"]
    assert history == json.loads((expected / "metrics.json").read_text())["history"]
    assert len(history["loss"]) == 2 and len(history["val_mean_iou"]) == 2
    rows = (got / "train_log.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["0", "1"]
    assert rows == (expected / "train_log.csv").read_text().splitlines()
    assert not (got / "backup").exists()  # removed once metrics.json was written
    log = (got / "train.log").read_text()
    assert log.count("resuming smoke from its backup") == 3
    assert "epoch 1 of 2, step 2 of 4" in log and "epoch 2 of 2, step 0 of 4" in log
    assert "a backup whose writing was interrupted" in log


@pytest.mark.slow
def test_fcn_with_dropout_resumes_exactly_after_three_kills(tmp_path):
    _check_exact_resume(FCN, tmp_path)


@pytest.mark.slow
def test_unet_with_elastic_deformation_and_weight_maps_resumes_exactly(tmp_path):
    from unet_tf.presets import PRESETS
    smoke = PRESETS["smoke"]
    assert smoke.augment["elastic_sigma"] > 0 and smoke.weight_map and smoke.augment["flip"]
    _check_exact_resume(UNET, tmp_path)


@pytest.mark.slow
def test_deeplab_batch_norm_statistics_and_poly_schedule_resume_exactly(tmp_path):
    from deeplab_tf.presets import PRESETS
    smoke = PRESETS["smoke"]
    assert smoke.schedule == "poly" and smoke.model["batch_norm_momentum"] == 0.9
    assert not smoke.model.get("freeze_batch_norm")
    _check_exact_resume(DEEPLAB, tmp_path)  # every array of the weights file, equal
    from harness import h5_arrays
    arrays = h5_arrays(tmp_path / "resumed" / "smoke" / "checkpoints" / "final.weights.h5")
    # Keras keeps a batch norm's moving mean and variance as its vars/2 and vars/3: the
    # compared arrays include them, and training moved them off their start (0 and 1).
    means = [a for name, a in arrays.items() if "batch_normalization" in name
             and name.endswith("vars/2")]
    assert len(means) > 50 and all(np.abs(mean).max() > 0 for mean in means)


# --- the data order and the augmentation draws --------------------------------------

def _pairs(count=10):
    images = np.arange(count, dtype=np.uint8)[:, None, None, None] * np.ones((1, 4, 4, 3), np.uint8)
    return tf.data.Dataset.from_tensor_slices((images, np.zeros((count, 4, 4), np.uint8)))


def _ids(dataset):
    return [batch[0][:, 0, 0, 0].numpy().tolist() for batch in dataset]


def test_training_stream_from_any_batch_continues_the_same_order():
    whole = _ids(make_training_stream(_pairs(), 3, batches=9, seed=5))  # 3 passes of 3 batches
    assert len(whole) == 9 and all(len(b) == 3 for b in whole)
    passes = [sorted(sum(whole[i:i + 3], [])) for i in (0, 3, 6)]
    assert all(len(set(p)) == 9 for p in passes)  # each pass: 9 distinct of 10, one dropped
    assert whole[0:3] != whole[3:6]  # reshuffled at each pass
    for first in (1, 3, 4, 8):
        assert _ids(make_training_stream(_pairs(), 3, 9 - first, first, seed=5)) == whole[first:]
    assert _ids(make_training_stream(_pairs(), 3, 9, seed=6)) != whole


def test_augmentation_is_a_function_of_the_step_seed():
    from segcore.augment import AugmentConfig, Augmenter
    augment = Augmenter(AugmentConfig(flip=True, scale=(0.8, 1.2), rotation=10, brightness=20,
                                      contrast=0.2, saturation=0.2, elastic_sigma=3.0))
    images = tf.random.stateless_uniform([2, 16, 16, 3], [1, 2], 0, 255)
    labels = tf.cast(tf.random.stateless_uniform([2, 16, 16], [3, 4], 0, 2, tf.int32), tf.uint8)
    weights = tf.ones([2, 16, 16])
    first = augment(images, labels, weights, seed=tf.constant([0, 7], tf.int64))
    tf.random.uniform([5])  # the global generator moves: no effect on seeded draws
    again = augment(images, labels, weights, seed=tf.constant([0, 7], tf.int64))
    other = augment(images, labels, weights, seed=tf.constant([0, 8], tf.int64))
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not np.array_equal(first[0].numpy(), other[0].numpy())


# --- the backup file -------------------------------------------------------------

class _Var:
    def __init__(self, value, path):
        self.value, self.path = np.asarray(value), path
        self.shape, self.dtype = self.value.shape, self.value.dtype

    def numpy(self):
        return self.value

    def assign(self, value):
        self.value = np.asarray(value)


def _state():
    return {"task": [_Var(np.arange(6.0).reshape(2, 3), "w"), _Var(np.int64(3), "seed")],
            "optimizer": [_Var(np.ones(4, np.float32), "m")], "metrics": []}


def test_backup_round_trip_and_corruption_is_named(tmp_path):
    path = str(tmp_path / "state.zip")
    resume.write_backup(path, _state(), {"epoch": 1, "step": 2})
    assert not os.path.exists(path + ".partial")
    meta = resume.read_backup_meta(path)
    assert (meta["epoch"], meta["step"]) == (1, 2)
    arrays = resume.read_backup_arrays(path, meta, _state())
    np.testing.assert_array_equal(arrays["task"][0], np.arange(6.0).reshape(2, 3))
    assert arrays["task"][1] == 3

    data = bytearray(open(path, "rb").read())
    start = data.index(np.arange(6.0).tobytes())  # flip one bit of the weights
    data[start + 9] ^= 1
    open(path, "wb").write(bytes(data))
    meta = resume.read_backup_meta(path)  # the directory is intact, the data is not
    with pytest.raises(DataError, match=f"{path}: corrupt or partial backup .*CRC"):
        resume.read_backup_arrays(path, meta, _state())

    open(path, "wb").write(bytes(data[: len(data) // 2]))  # truncated
    with pytest.raises(DataError, match=f"{path}: corrupt or partial backup"):
        resume.read_backup_meta(path)

    resume.write_backup(path, _state(), {"epoch": 1, "step": 2})
    other = _state()
    other["task"][0] = _Var(np.zeros((3, 3)), "w")
    with pytest.raises(DataError, match="task variables are not this run's"):
        resume.read_backup_arrays(path, resume.read_backup_meta(path), other)


def test_train_log_has_each_epoch_once_in_csvlogger_format(tmp_path):
    path = str(tmp_path / "train_log.csv")
    resume.write_train_log(path, {"loss": [0.5, 0.25], "val_loss": [0.75, 0.125]})
    assert open(path).read().splitlines() == ["epoch,loss,val_loss", "0,0.5,0.75",
                                              "1,0.25,0.125"]


# --- the run directory -----------------------------------------------------------

def test_a_run_directory_of_another_experiment_is_refused_naming_the_fields(tmp_path, capsys):
    from unet_tf import train as unet_train
    run = tmp_path / "smoke"
    run.mkdir()
    document = json.loads(unet_train.PRESETS["smoke"].replace(epochs=3).to_json())
    document["resolved"] = {"num_classes": 2}
    (run / "config.json").write_text(json.dumps(document))
    argv = ["--preset", "smoke", "--runs-dir", str(tmp_path), "--precision", "fp32",
            "--learning-rate", "0.01"]
    assert unet_train.main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert f"{run}/config.json: this run directory holds another experiment" in error
    assert "epochs: 3 -> 1" in error and "learning_rate: 0.001 -> 0.01" in error
    assert "precision" in error and "--overwrite" in error and "name:" not in error

    # Fields that do not change what is trained do not count; --overwrite starts over.
    config = unet_train.PRESETS["smoke"].replace(epochs=3, runs_dir=str(tmp_path), verbose=0,
                                                  backup_every=5)
    resume.prepare_run_dir(str(run), config)
    (run / "backup").mkdir()
    with pytest.raises(ConfigError, match="epochs: 3 -> 4"):
        resume.prepare_run_dir(str(run), config.replace(epochs=4))
    resume.prepare_run_dir(str(run), config.replace(epochs=4, overwrite=True))
    assert not (run / "backup").exists()


def test_disk_full_before_training_names_the_path(tmp_path, monkeypatch):
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(resume.shutil, "disk_usage",
                        lambda path: usage._replace(free=5_000_000))
    with pytest.raises(DataError, match=f"{tmp_path}: disk full: 5 MB free, a backup needs 8 MB"):
        resume.check_free_space(str(tmp_path), 8_000_000, "a backup")


def test_disk_full_while_writing_keeps_the_previous_backup(tmp_path, monkeypatch):
    path = str(tmp_path / "state.zip")
    resume.write_backup(path, _state(), {"epoch": 0, "step": 1})
    real_write_array = np.lib.format.write_array

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np.lib.format, "write_array", full)
    with pytest.raises(DataError, match=f"{path}: disk full while writing the backup; "
                                        f"the previous backup {path} is intact"):
        resume.write_backup(path, _state(), {"epoch": 0, "step": 2})
    monkeypatch.setattr(np.lib.format, "write_array", real_write_array)
    assert not os.path.exists(path + ".partial")
    assert resume.read_backup_meta(path)["step"] == 1


def _unshare_works():
    if not shutil.which("unshare"):
        return False
    return subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode == 0


def _in_tmpfs(mount_options, directory, argv):
    """(exit status, last stderr line) of `argv` run with a tmpfs mounted over
    `directory` in a private mount namespace."""
    script = (f"mount -t tmpfs -o {mount_options} tmpfs {directory} && "
              + " ".join(f"'{a}'" for a in argv))
    result = subprocess.run(["unshare", "-rm", "sh", "-c", script], env=_env(), cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=300)
    return result.returncode, result.stderr.strip().splitlines()[-1]


def _in_process(trainer, runs, capsys):
    """(exit status, last stderr line) of the trainer's main() in this process."""
    main = __import__(trainer[0], fromlist=["main"]).main
    status = main(trainer[1:] + ["--runs-dir", str(runs)])
    return status, capsys.readouterr().err.strip().splitlines()[-1]


def _read_only_run(trainer, runs, monkeypatch, capsys):
    """The trainer on a read-only run folder: a read-only tmpfs where `unshare -rm` is
    allowed; elsewhere (containers refuse it, and root writes through file modes) the
    file system's EROFS answer where the run directory is first written."""
    if _unshare_works():
        return _in_tmpfs("ro,size=1m", runs, _command(trainer, runs))

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    with monkeypatch.context() as patch:
        patch.setattr(resume.tempfile, "NamedTemporaryFile", read_only)
        return _in_process(trainer, runs, capsys)


def _full_disk_run(trainer, runs, megabytes, monkeypatch, capsys):
    """The trainer on a run folder of `megabytes` (a tmpfs, or where `unshare -rm` is
    refused, that free space as the file system reports it)."""
    if _unshare_works():
        return _in_tmpfs(f"size={megabytes}m", runs, _command(trainer, runs))
    usage = shutil.disk_usage(runs)
    with monkeypatch.context() as patch:
        patch.setattr(resume.shutil, "disk_usage",
                      lambda path: usage._replace(free=megabytes * 1_000_000))
        return _in_process(trainer, runs, capsys)


@pytest.mark.slow
@pytest.mark.parametrize("file_system", ["tmpfs where allowed", "simulated"])
def test_read_only_and_full_run_directories_are_one_line_errors(tmp_path, monkeypatch, capsys,
                                                                file_system):
    if file_system == "simulated":  # the containers' path, exercised on every machine
        monkeypatch.setattr(sys.modules[__name__], "_unshare_works", lambda: False)
    runs = tmp_path / "runs"
    runs.mkdir()
    status, last = _read_only_run(UNET, runs, monkeypatch, capsys)
    assert status == 2, last
    assert last == (f"python -m unet_tf.train: error: {runs}/smoke: run directory is not "
                    "writable (Read-only file system)")

    # 10 MB: room for the run's logs, not for a backup of the smoke FCN-8s (width 0.125,
    # 2,101,742 parameters: 8 MB in float32) next to its final weights (8 MB more).
    status, last = _full_disk_run(FCN, runs, 10, monkeypatch, capsys)
    assert status == 2, last
    assert last.startswith(f"python -m fcn_tf.train: error: {runs}/smoke/backup: disk full: ")
    state_mb, needed_mb = map(int, re.search(
        r"MB free, a backup of the training state \((\d+) MB\) needs (\d+) MB$", last).groups())
    assert (state_mb, needed_mb) == (8, 17)  # weights, fp32; SGD without momentum keeps none
