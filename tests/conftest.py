"""Test set-up shared by every test module.

* The CPU is split into 2 logical devices before TensorFlow starts, so tests can
  run `tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])` on a machine
  without GPUs; everything else runs on "/cpu:0" as usual.
* `datasets_root` is the folder of real dataset samples (`../shared/datasets`),
  read from the environment variable SEGCORE_DATASETS (the README's test command
  sets it, relative to the repository root). A relative value is made absolute
  here, once, against the directory pytest was started from, and written back
  to the environment, so links made under `tmp_path` and subprocesses see the
  same folder. When it is missing the tests that need it fail; they never skip.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import gc

import keras
import pytest
import tensorflow as tf

from segcore import gradient_registry

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# TensorFlow's and Keras's modules are some 300,000 objects that live as long as the
# process: moved out of the collector's sight, every collection below walks only what
# the tests made (a full collection over them takes ~0.2 s, ~1 s late in the suite).
gc.freeze()

if os.environ.get("SEGCORE_DATASETS"):
    os.environ["SEGCORE_DATASETS"] = os.path.abspath(os.environ["SEGCORE_DATASETS"])


def _resident_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# A full collection walks every object the tests keep (module fixtures' networks): about
# 0.3 s late in the suite. It runs when the process has grown by this much since the last
# one; in between, the young generations are collected.
FULL_COLLECTION_GROWTH = 512 * 2**20
_last_full_collection = [0]


@pytest.fixture(autouse=True)
def _release_memory():
    """After every test: Keras' global state cleared, TensorFlow's custom gradients
    dropped (they keep every traced training step alive: segcore/gradient_registry.py)
    and reference cycles collected, so the networks a test built are freed before the
    next one grows the process further."""
    yield
    keras.backend.clear_session(free_memory=False)  # one collection, after the release
    gradient_registry.release(gradient_registry.custom_gradient_names())
    if _resident_bytes() - _last_full_collection[0] > FULL_COLLECTION_GROWTH:
        gc.collect()
        _last_full_collection[0] = _resident_bytes()
    else:
        gc.collect(1)


@pytest.fixture(scope="session")
def datasets_root():
    root = os.environ.get("SEGCORE_DATASETS")
    if not root:
        pytest.fail(
            "SEGCORE_DATASETS is not set: point it at the real dataset samples "
            "(../shared/datasets from the repository root); .ci/run sets it"
        )
    if not os.path.isdir(root):
        pytest.fail(f"SEGCORE_DATASETS={root} is not a directory")
    return root


@pytest.fixture(scope="session")
def two_replica_strategy():
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
