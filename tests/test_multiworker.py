"""Multi-worker training (segcore.distribute, segcore.launch): 2 workers on 127.0.0.1.

Every worker is a subprocess with one CPU device, fp32, and a timeout. The
end-to-end tests are marked slow (they still run in CI).
"""

import csv
import inspect
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import keras
import numpy as np
import pytest
from keras.src.backend.tensorflow import trainer as keras_tf_trainer

from harness import h5_arrays
from segcore import distribute
from segcore.errors import ConfigError
from segcore.launch import free_ports, tf_configs
from segcore.task import SegmentationTask

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = sys.executable


def worker_env(tmp_path, **extra):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env.update(PYTHONPATH=REPO_ROOT, TF_CPP_MIN_LOG_LEVEL="2", TMPDIR=str(tmp_path / "tmp"),
               SEGCORE_JOIN_TIMEOUT="60")
    env.update(extra)
    os.makedirs(env["TMPDIR"], exist_ok=True)
    return env


def launch(workers, command, env, timeout):
    return subprocess.run([PYTHON, "-m", "segcore.launch", "--workers", str(workers),
                           "--grace", "30", "--", *command],
                          env=env, capture_output=True, text=True, timeout=timeout)


def worker_temp_dirs(tmp_path):
    return [name for name in os.listdir(tmp_path / "tmp") if name.startswith("segcore-")]


# --- TF_CONFIG ------------------------------------------------------------------------

def _config(cluster, task):
    return {"TF_CONFIG": json.dumps({"cluster": cluster, "task": task})}


def test_tf_config_roles_and_single_host():
    two = {"worker": ["127.0.0.1:1001", "127.0.0.1:1002"]}
    first = distribute.cluster_from_env(_config(two, {"type": "worker", "index": 0}))
    second = distribute.cluster_from_env(_config(two, {"type": "worker", "index": 1}))
    assert (first.is_chief, second.is_chief) == (True, False)
    assert second.name() == "worker 1 (127.0.0.1:1002)"
    assert second.chief == "worker 0 (127.0.0.1:1001)"
    with_chief = {"chief": ["h0:1"], "worker": ["h1:1", "h2:1"]}
    worker0 = distribute.cluster_from_env(_config(with_chief, {"type": "worker", "index": 0}))
    assert worker0.num_workers == 3 and not worker0.is_chief and worker0.rank == 1
    assert distribute.cluster_from_env({}) is None
    assert distribute.cluster_from_env(
        _config({"worker": ["h:1"]}, {"type": "worker", "index": 0})) is None


@pytest.mark.parametrize("text, message", [
    ('{"cluster": {"worker": ["127.0.0.1:1"', "TF_CONFIG is not valid JSON"),
    (json.dumps({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}),
     "task index 2 is out of range: the cluster has 2 'worker' task(s) (0..1)"),
    (json.dumps({"cluster": {"worker": ["a:1", "b"]}, "task": {"type": "worker", "index": 0}}),
     '"worker"[1] = \'b\' is not "host:port"'),
    (json.dumps({"cluster": {"worker": ["a:1"], "ps": ["b:2"]},
                 "task": {"type": "worker", "index": 0}}),
     "job(s) ps not supported"),
    (json.dumps({"cluster": {"worker": ["a:1", "b:2"]}}), '"task"'),
    ("[1, 2]", '"cluster" object'),
])
def test_bad_tf_config_is_a_one_line_config_error(text, message):
    with pytest.raises(ConfigError) as raised:
        distribute.cluster_from_env({"TF_CONFIG": text})
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_launcher_tf_configs_name_every_worker_and_free_ports():
    ports = free_ports(3)
    assert len(set(ports)) == 3
    configs = [json.loads(text) for text in tf_configs([f"127.0.0.1:{p}" for p in ports])]
    assert [c["task"]["index"] for c in configs] == [0, 1, 2]
    assert all(c["cluster"]["worker"] == [f"127.0.0.1:{p}" for p in ports] for c in configs)


def test_lost_worker_error_names_the_peer():
    import tensorflow as tf

    cluster = distribute.cluster_from_env(
        _config({"worker": ["127.0.0.1:5001", "127.0.0.1:5002"]}, {"type": "worker", "index": 0}))
    error = tf.errors.UnavailableError(None, None, (
        "Collective ops is aborted by: failed to connect to all addresses; last error: UNKNOWN: "
        "ipv4:127.0.0.1:5002: Failed to connect to remote host: Connection refused\n"
        "Additional GRPC error information from remote target /job:worker/replica:0/task:1"))
    lost = distribute.lost_worker_error(error, cluster)
    assert str(lost).startswith("worker 1 (127.0.0.1:5002) was lost during training")
    assert distribute.lost_worker_error(tf.errors.InvalidArgumentError(None, None, "DataError: x"),
                                        cluster) is None
    assert distribute.lost_worker_error(error, None) is None


# --- the Keras workaround ----------------------------------------------------------------

def test_keras_code_the_workaround_targets_is_unchanged():
    """keras-team/keras#20585: when this fails, Keras changed the code MultiWorkerFitMixin
    works around. Check whether `fit` under MultiWorkerMirroredStrategy now works without
    the mixin (test_stock_keras_fit_fails_under_multi_worker); remove the mixin if so,
    else update it and KERAS_VERSION."""
    assert keras.__version__.startswith(distribute.KERAS_VERSION), keras.__version__
    build = inspect.getsource(keras_tf_trainer.TensorFlowTrainer._maybe_symbolic_build)
    assert re.search(r"data_batch = self\.distribute_strategy\.reduce\(\s*\"MEAN\"", build)
    reduce = inspect.getsource(keras_tf_trainer.reduce_per_replica)
    assert "if _collective_all_reduce_multi_worker(strategy):" in reduce
    assert 'return strategy.reduce("MEAN", v, axis=0)' in reduce
    # The overrides sit before Keras' trainer in SegmentationTask's method order.
    mro = SegmentationTask.__mro__
    assert mro.index(distribute.MultiWorkerFitMixin) < mro.index(keras_tf_trainer.TensorFlowTrainer)


STOCK_KERAS_FIT = """
import numpy as np, tensorflow as tf, keras
strategy = tf.distribute.MultiWorkerMirroredStrategy()
x = np.ones((16, 3), np.float32)
with strategy.scope():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
try:
    model.fit(tf.data.Dataset.from_tensor_slices((x, x[:, :1])).batch(4), epochs=1, verbose=0)
except Exception as error:
    print("STOCK FIT FAILED:", type(error).__name__, str(error).splitlines()[0][:200])
    raise SystemExit(3)
print("STOCK FIT WORKS")
"""


@pytest.mark.slow
def test_stock_keras_fit_fails_under_multi_worker(tmp_path):
    """The workaround is still needed: plain Keras 3 `fit` fails with 2 workers."""
    done = launch(2, [PYTHON, "-c", STOCK_KERAS_FIT], worker_env(tmp_path), timeout=120)
    assert done.returncode == 3, done.stdout[-3000:]
    assert "STOCK FIT FAILED: ValueError" in done.stdout and "PerReplica" in done.stdout


# --- start-up errors ------------------------------------------------------------------------

@pytest.mark.slow
def test_unreachable_peer_and_malformed_tf_config_end_with_one_line(tmp_path):
    port, absent = free_ports(2)
    env = worker_env(tmp_path, SEGCORE_JOIN_TIMEOUT="3", TF_CONFIG=json.dumps(
        {"cluster": {"worker": [f"127.0.0.1:{port}", f"127.0.0.1:{absent}"]},
         "task": {"type": "worker", "index": 0}}))
    command = [PYTHON, "-m", "unet_tf.train", "--preset", "smoke", "--precision", "fp32",
               "--runs-dir", str(tmp_path / "runs")]
    started = time.monotonic()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=90)
    assert done.returncode == -signal.SIGKILL  # ended by the watchdog: blocked in C++
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert lines == [f"error: TF_CONFIG: worker 0 (127.0.0.1:{port}) waited 3 s for worker 1 "
                     f"(127.0.0.1:{absent}) to join (unreachable address, or not started?); "
                     "set SEGCORE_JOIN_TIMEOUT to wait longer"]
    assert time.monotonic() - started < 60

    env["TF_CONFIG"] = '{"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": '
    command[-1] = str(tmp_path / "runs_malformed")
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=90)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith(
        "python -m unet_tf.train: error: TF_CONFIG is not valid JSON")
    assert not (tmp_path / "runs_malformed").exists()


# --- training ---------------------------------------------------------------------------

EQUALITY_RUN = """
import importlib, sys
family = importlib.import_module(sys.argv[3] + ".train")
smoke = family.PRESETS["smoke"]
config = smoke.replace(
    name=sys.argv[2], runs_dir=sys.argv[1], precision="fp32", augment={}, seed=3,
    model={**smoke.model, "dropout": 0.0}, dataset_options={"count": 2}, validation_steps=1,
    steps_per_epoch=1, epochs=3, export=False, overlays=0, eval_max_images=1, verbose=0)
from segcore.training import train_and_evaluate
train_and_evaluate(config, family.FAMILY)
"""


@pytest.mark.slow
@pytest.mark.parametrize("package", ["unet_tf", "fcn_tf"])
def test_two_workers_end_with_the_single_process_weights(tmp_path, package):
    """The smoke preset (U-Net: border weight maps on; augmentation and drop-out off):
    2 workers x 1 image per step end with the weights of 1 process with the global batch
    of 2, after 3 steps of 3 passes.

    Two training images, so every step's global batch holds both if the workers agree
    on each pass's order (`segcore.distribute.same_global_seed`); when they did not, a
    worker's half of the batch could repeat the other's image."""
    runs = tmp_path / "runs"
    env = worker_env(tmp_path)
    single = subprocess.run([PYTHON, "-c", EQUALITY_RUN, str(runs), "single", package], env=env,
                            capture_output=True, text=True, timeout=180)
    assert single.returncode == 0, single.stderr[-3000:]
    multi = launch(2, [PYTHON, "-c", EQUALITY_RUN, str(runs), "multi", package], env,
                   timeout=240)
    assert multi.returncode == 0, multi.stdout[-3000:]
    assert sorted(os.listdir(runs)) == ["multi", "single"] and worker_temp_dirs(tmp_path) == []
    resolved = json.loads((runs / "multi" / "config.json").read_text())["resolved"]
    assert (resolved["workers"], resolved["replicas"], resolved["data_sharding"]) == (2, 2, "data")
    single_log, multi_log = (list(csv.DictReader(open(runs / name / "train_log.csv")))
                             for name in ("single", "multi"))
    assert len(single_log) == len(multi_log) == 3
    for one_pass, two_pass in zip(single_log, multi_log):  # each pass's training metrics
        for column in ("loss", "pixel_accuracy", "mean_iou"):
            assert float(two_pass[column]) == pytest.approx(float(one_pass[column]), rel=1e-4)
    one = h5_arrays(runs / "single" / "checkpoints" / "final.weights.h5")
    two = h5_arrays(runs / "multi" / "checkpoints" / "final.weights.h5")
    assert one.keys() == two.keys() and len(one) >= 10
    for key in one:
        np.testing.assert_allclose(two[key], one[key], rtol=1e-5, atol=1e-6, err_msg=key)


class _Lines:
    """The launcher's output, read on a thread (so the test never blocks on a pipe)."""

    def __init__(self, process):
        self.lines, self.process = [], process
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in iter(self.process.stdout.readline, ""):
            self.lines.append(line)

    def text(self):
        return "".join(self.lines)


@pytest.mark.slow
def test_killed_worker_stops_the_launch_and_rerun_resumes(tmp_path):
    runs = tmp_path / "runs"
    env = worker_env(tmp_path)
    command = [PYTHON, "-m", "segcore.launch", "--workers", "2", "--grace", "30", "--",
               PYTHON, "-m", "unet_tf.train", "--preset", "smoke", "--precision", "fp32",
               "--epochs", "5", "--steps-per-epoch", "3", "--runs-dir", str(runs)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    output = _Lines(process)
    backup = runs / "smoke" / "backup" / "state.zip"  # segcore.resume's backup
    try:
        deadline = time.monotonic() + 150
        while not backup.exists():
            assert process.poll() is None and time.monotonic() < deadline, output.text()[-3000:]
            time.sleep(0.05)
        pid = int(re.search(r"\[launch\] worker 1: pid (\d+)", output.text()).group(1))
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        status = process.wait(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
    output.thread.join(timeout=10)
    text = output.text()
    assert status != 0 and time.monotonic() - killed < 60, text[-3000:]
    assert "[launch] worker 1 killed by SIGKILL" in text
    # The chief noticed by itself, named the lost worker and exited with status 2.
    assert re.search(r"\[worker 0\] python -m unet_tf.train: error: worker 1 \(127\.0\.0\.1:\d+\) "
                     r"was lost during training", text), text[-3000:]
    assert "[launch] worker 0 exited with status 2" in text
    assert len(worker_temp_dirs(tmp_path)) == 1  # the killed worker could not clean up
    from segcore.resume import read_backup_meta

    restored_epoch = read_backup_meta(str(backup))["epoch"]  # the 0-based epoch it resumes at
    assert 1 <= restored_epoch < 5

    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert rerun.returncode == 0, rerun.stdout[-3000:]
    epochs = [int(e) for e in re.findall(r"\[worker 0\] Epoch (\d+)/5", rerun.stdout)]
    assert epochs[0] == restored_epoch + 1 and epochs[-1] == 5, epochs
    run = runs / "smoke"
    assert os.listdir(runs) == ["smoke"] and worker_temp_dirs(tmp_path) == []  # rerun replaced it
    assert (run / "metrics.json").is_file() and (run / "saved_model").is_dir()
    assert not (run / "backup").exists()  # deleted at the end of a finished run
    resolved = json.loads((run / "config.json").read_text())["resolved"]
    assert resolved["workers"] == 2 and resolved["chief"].startswith("worker 0 (127.0.0.1:")


def test_workers_build_their_input_order_under_one_global_seed():
    """A worker's own seed (seed + rank) would reorder `Dataset.shuffle(seed=s)`: inside
    `same_global_seed` every worker orders as the chief; after it, the worker's seed is back."""
    import types

    import tensorflow as tf

    def order():
        return [int(x) for x in tf.data.Dataset.range(8).shuffle(8, seed=5)]

    chief, worker = types.SimpleNamespace(rank=0), types.SimpleNamespace(rank=1)
    tf.random.set_seed(3)
    expected = order()
    distribute.seed_augmentation(3, worker)  # the worker's own seed, 4
    assert order() != expected
    with distribute.same_global_seed(3, worker):
        assert order() == expected
    assert order() == order() != expected  # seed 4 again
    with distribute.same_global_seed(3, chief):  # the chief (or one process): left as it is
        assert order() != expected
    tf.random.set_seed(None)  # no global seed for the tests after this one
