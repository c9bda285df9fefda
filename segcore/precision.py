"""Mixed precision: bfloat16 on CPUs that have it, float16 with loss scaling on GPUs.

Softmax, loss and metrics stay float32: every network's last layer has
dtype float32, and the loss casts logits to float32.
"""

import logging

import keras
import tensorflow as tf

from segcore.errors import ConfigError
from segcore.onednn import capped_below_amx, cpu_flags

log = logging.getLogger(__name__)
PRECISIONS = ("auto", "fp32", "mixed")
EXPORT_PRECISIONS = ("fp32", "mixed")


def cpu_has_bf16(flags=None):
    """True when the CPU advertises native bfloat16 arithmetic (AVX-512 BF16 or AMX)."""
    flags = cpu_flags() if flags is None else flags
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_policy(precision):
    """Keras dtype policy name for --precision auto|fp32|mixed on the machine running it."""
    return choose_policy(precision)[0]


def choose_policy(precision):
    """(Keras dtype policy name, why) for --precision auto|fp32|mixed on this machine.

    auto: mixed_float16 on a GPU; mixed_bfloat16 on a CPU with native bfloat16 whose
    bf16 kernels oneDNN may use; float32 otherwise. On AMX CPUs where oneDNN is capped
    below AMX (segcore.onednn), bf16 runs on AVX-512 BF16 kernels that are slower than
    float32 (0.64-0.78x in benchmarks/README.md), so auto keeps float32 there.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    if precision == "fp32":
        return "float32", "--precision fp32"
    if tf.config.list_logical_devices("GPU"):
        # Keras compile() wraps the optimizer in LossScaleOptimizer
        return "mixed_float16", f"--precision {precision}: a GPU (float16 with loss scaling)"
    if precision == "mixed":
        if not cpu_has_bf16():
            log.warning("--precision mixed: this CPU has no native bfloat16; bf16 will be "
                        "emulated and slow")
            return "mixed_bfloat16", "--precision mixed: bfloat16 emulated (no native bf16)"
        return "mixed_bfloat16", "--precision mixed: native bfloat16 on this CPU"
    if not cpu_has_bf16():
        reason = "--precision auto: no GPU and no native bfloat16 on this CPU: float32"
    elif capped_below_amx():
        reason = ("--precision auto: oneDNN is capped below AMX on this CPU (segcore.onednn), "
                  "where its bfloat16 kernels are slower than float32: float32")
    else:
        return "mixed_bfloat16", "--precision auto: native bfloat16 on this CPU"
    log.info(reason)
    return "float32", reason


def resolve_export_policy(export_precision):
    """Keras dtype policy of the exported SavedModel (and of the evaluation that writes
    metrics.json): float32 unless `--export-precision mixed` asks for the running machine's mixed
    policy. A served model must not depend on the CPU it was trained on."""
    if export_precision not in EXPORT_PRECISIONS:
        raise ConfigError(f"--export-precision must be one of {', '.join(EXPORT_PRECISIONS)}; "
                          f"got {export_precision!r}")
    return "float32" if export_precision == "fp32" else resolve_policy("mixed")


class dtype_policy:
    """Context manager setting the global Keras dtype policy, restoring it on exit."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        self.previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy(self.name)
        return self

    def __exit__(self, *exc):
        keras.config.set_dtype_policy(self.previous)
        return False
