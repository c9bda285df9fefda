"""The oneDNN AMX work-around (segcore/onednn.py) is still needed, and only where it applies."""

import os
import subprocess
import sys

import pytest
import tensorflow as tf

from segcore import onednn

# Three mixed_bfloat16 training steps of FCN-32s (random weights, 64x160): the run that
# aborts on AMX CPUs with TensorFlow 2.21.0 unless oneDNN is capped below AMX.
BF16_TRAINING = """
import keras, numpy as np
from fcn_tf.model import build_fcn
keras.config.set_dtype_policy("mixed_bfloat16")
model = build_fcn("fcn32s", num_classes=2, weights=None)
model.compile(keras.optimizers.Adam(1e-4),
              keras.losses.SparseCategoricalCrossentropy(from_logits=True))
rng = np.random.default_rng(0)
images = rng.uniform(0, 255, (4, 64, 160, 3)).astype("float32")
labels = rng.integers(0, 2, (4, 64, 160))
for _ in range(3):
    model.fit(images, labels, batch_size=2, verbose=0)
print("trained")
"""


def _run_bf16_training(isa):
    env = dict(os.environ, ONEDNN_MAX_CPU_ISA=isa, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-c", BF16_TRAINING], env=env, capture_output=True,
                          text=True, timeout=600)


def test_written_for_this_tensorflow():
    assert tf.__version__ == onednn.WRITTEN_FOR_TENSORFLOW, (
        f"TensorFlow is {tf.__version__}; segcore/onednn.py was written for "
        f"{onednn.WRITTEN_FOR_TENSORFLOW}: check whether bf16 training still crashes on AMX "
        "without the cap (this file's slow test) and drop the work-around if not")


def test_cap_applies_only_on_amx_cpus_and_never_overrides_the_user():
    env = {}
    assert onednn.apply(env, flags={"avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}) == onednn.CAP
    assert env == {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}
    env = {}
    assert onednn.apply(env, flags={"avx512f", "avx512_bf16"}) is None and env == {}
    env = {"ONEDNN_MAX_CPU_ISA": "ALL"}
    assert onednn.apply(env, flags={"amx_bf16"}) == "ALL" and env == {"ONEDNN_MAX_CPU_ISA": "ALL"}


def test_importing_segcore_caps_onednn_on_this_machine():
    code = "import os, segcore; print(os.environ.get('ONEDNN_MAX_CPU_ISA'))"
    env = {k: v for k, v in os.environ.items() if k != "ONEDNN_MAX_CPU_ISA"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120, check=True).stdout.split()[-1]
    assert out == (onednn.CAP if onednn.cpu_has_amx() else "None")


@pytest.mark.slow
def test_bf16_training_with_the_cap_trains_and_without_it_crashes_on_amx():
    capped = _run_bf16_training(onednn.CAP)
    assert capped.returncode == 0 and "trained" in capped.stdout, capped.stderr[-2000:]
    if onednn.cpu_has_amx():
        uncapped = _run_bf16_training("ALL")
        assert uncapped.returncode != 0, (
            "mixed_bfloat16 training no longer crashes with oneDNN's AMX kernels: "
            "the work-around in segcore/onednn.py can go")
