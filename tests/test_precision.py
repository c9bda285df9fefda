"""--precision and --export-precision resolve the same way on every machine, given its answers."""

import pytest

from harness import pretend_machine
from segcore import precision
from segcore.errors import ConfigError
from segcore.onednn import capped_below_amx


@pytest.mark.parametrize("native_bf16, capped, auto", [
    (False, False, "float32"),
    (True, False, "mixed_bfloat16"),   # AVX-512 BF16 without AMX (AMD Zen 4/5): 1.7-2.1x fp32
    (True, True, "float32"),           # AMX with oneDNN capped below it: bf16 slower than fp32
])
def test_auto_follows_the_cpu_and_the_explicit_choices_do_not(monkeypatch, native_bf16, capped,
                                                              auto, caplog):
    pretend_machine(monkeypatch, native_bf16=native_bf16, capped_below_amx=capped)
    caplog.set_level("INFO", logger="segcore.precision")
    assert precision.resolve_policy("auto") == auto
    if capped:
        assert "capped below AMX" in caplog.text and "float32" in caplog.text
        assert "capped below AMX" in precision.choose_policy("auto")[1]
    assert precision.resolve_policy("fp32") == "float32"
    assert precision.resolve_policy("mixed") == "mixed_bfloat16"  # emulated without native bf16
    assert precision.resolve_export_policy("fp32") == "float32"
    assert precision.resolve_export_policy("mixed") == "mixed_bfloat16"


def test_gpu_mixed_is_float16(monkeypatch):
    pretend_machine(monkeypatch, gpus=1, native_bf16=True)
    assert precision.resolve_policy("auto") == "mixed_float16"
    assert precision.resolve_export_policy("mixed") == "mixed_float16"


def test_the_cap_below_amx_is_read_from_the_environment():
    amx = {"avx512_bf16", "amx_bf16"}
    assert capped_below_amx({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_FP16"}, amx)
    assert capped_below_amx({"ONEDNN_MAX_CPU_ISA": "avx512_core_bf16"}, amx)
    assert not capped_below_amx({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_AMX"}, amx)
    assert not capped_below_amx({"ONEDNN_MAX_CPU_ISA": "ALL"}, amx)
    assert not capped_below_amx({}, amx)
    assert not capped_below_amx({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_FP16"}, {"avx512_bf16"})


def test_cpu_flags_decide_native_bf16():
    assert precision.cpu_has_bf16({"avx512f", "avx512_bf16"})
    assert precision.cpu_has_bf16({"amx_bf16"})
    assert not precision.cpu_has_bf16({"avx512f", "avx2"})


@pytest.mark.parametrize("resolve, flag", [(precision.resolve_policy, "--precision"),
                                           (precision.resolve_export_policy, "--export-precision")])
def test_unknown_precision_names_the_flag(resolve, flag):
    with pytest.raises(ConfigError, match=f"{flag} must be one of .*'fp16'"):
        resolve("fp16")
