"""--precision and --export-precision resolve the same way on every machine, given its answers."""

import pytest

from segcore import precision
from segcore.errors import ConfigError


@pytest.mark.parametrize("native_bf16, auto", [(False, "float32"), (True, "mixed_bfloat16")])
def test_auto_follows_the_cpu_and_the_explicit_choices_do_not(monkeypatch, native_bf16, auto):
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda flags=None: native_bf16)
    monkeypatch.setattr(precision.tf.config, "list_logical_devices", lambda kind=None: [])
    assert precision.resolve_policy("auto") == auto
    assert precision.resolve_policy("fp32") == "float32"
    assert precision.resolve_policy("mixed") == "mixed_bfloat16"  # emulated without native bf16
    assert precision.resolve_export_policy("fp32") == "float32"
    assert precision.resolve_export_policy("mixed") == "mixed_bfloat16"


def test_gpu_mixed_is_float16(monkeypatch):
    monkeypatch.setattr(precision.tf.config, "list_logical_devices", lambda kind=None: ["gpu"])
    assert precision.resolve_policy("auto") == "mixed_float16"
    assert precision.resolve_export_policy("mixed") == "mixed_float16"


def test_cpu_flags_decide_native_bf16():
    assert precision.cpu_has_bf16({"avx512f", "avx512_bf16"})
    assert precision.cpu_has_bf16({"amx_bf16"})
    assert not precision.cpu_has_bf16({"avx512f", "avx2"})


@pytest.mark.parametrize("resolve, flag", [(precision.resolve_policy, "--precision"),
                                           (precision.resolve_export_policy, "--export-precision")])
def test_unknown_precision_names_the_flag(resolve, flag):
    with pytest.raises(ConfigError, match=f"{flag} must be one of .*'fp16'"):
        resolve("fp16")
