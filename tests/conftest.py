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

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

if os.environ.get("SEGCORE_DATASETS"):
    os.environ["SEGCORE_DATASETS"] = os.path.abspath(os.environ["SEGCORE_DATASETS"])


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
