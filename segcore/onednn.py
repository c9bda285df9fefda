"""Work-around: TensorFlow 2.21's oneDNN corrupts memory in bfloat16 training on AMX CPUs.

On CPUs with AMX (Intel Sapphire Rapids and later), training any FCN in
``mixed_bfloat16`` with TensorFlow 2.21.0 aborts the process within the first
steps ("malloc(): unaligned tcache chunk detected", "free(): invalid next size",
segmentation faults): the heap is corrupted inside oneDNN's AMX bf16 matmul
kernels (`brgemm_matmul_t<avx512_core_amx>` under `MklMatMulOp<bfloat16>` in a
gdb backtrace). Upstream: tensorflow/tensorflow issue 117700 (memory corruption
in oneDNN matmul, TF 2.21.0) and the AMX bf16 brgemm faults fixed in oneDNN
(uxlfoundation/oneDNN pull request 3815, "[SPR] Matmul (bf16) failed with SegFault").
It is not the matmul alone: the same FCN-32s run with `fc6` as a plain `Conv2D` (no
MatMul op in the graph) aborts the same way, while 10 training steps of a lone bf16
1200x25088 @ 25088x4096 matmul do not, so no per-network exemption is safe.
What the cap costs: DeepLabv3+ ResNet-50 at 513x513 trains in mixed_bfloat16 at 0.70x
float32 capped, 1.60x uncapped (benchmarks/README.md, bench_families.py).

With oneDNN capped just below AMX (``ONEDNN_MAX_CPU_ISA=AVX512_CORE_FP16``, the
AVX-512 FP16 level: oneDNN orders avx512_core_bf16 < avx512_core_fp16 < AMX) the
same runs train normally: bf16 still runs natively (AVX-512 BF16 dot products),
only the AMX tiles are not used; float32 and float16 kernels are unaffected (a cap
at AVX512_CORE_BF16 would make oneDNN refuse float16 convolutions, which TensorFlow
still routes to it on a CPU with AVX-512 FP16). oneDNN reads the
variable once, when it creates its first primitive, so `apply()` runs when
`segcore` is imported, before any network is built. A user who sets
ONEDNN_MAX_CPU_ISA keeps their value. `tests/test_onednn_workaround.py` fails
when TensorFlow is upgraded (re-check the crash, then drop this module) and, on
an AMX machine, when the crash no longer happens without the cap.
"""

import os

WRITTEN_FOR_TENSORFLOW = "2.21.0"
CAP = "AVX512_CORE_FP16"
VARIABLE = "ONEDNN_MAX_CPU_ISA"


def cpu_flags(path="/proc/cpuinfo"):
    """The CPU's feature flags (empty when /proc/cpuinfo cannot be read)."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_has_amx(flags=None):
    return "amx_bf16" in (cpu_flags() if flags is None else flags)


def capped_below_amx(environ=os.environ, flags=None):
    """True on an AMX CPU whose oneDNN is kept below AMX by ONEDNN_MAX_CPU_ISA (this
    module's cap, or a user's value naming a lower level)."""
    value = environ.get(VARIABLE, "").upper()
    return cpu_has_amx(flags) and value not in ("", "ALL", "DEFAULT") and "AMX" not in value


def apply(environ=os.environ, flags=None):
    """Cap oneDNN below AMX on AMX CPUs unless ONEDNN_MAX_CPU_ISA is set; returns the
    value in force (None when nothing was capped)."""
    if VARIABLE in environ:
        return environ[VARIABLE]
    if not cpu_has_amx(flags):
        return None
    environ[VARIABLE] = CAP
    return CAP
