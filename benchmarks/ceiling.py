"""This CPU's ceiling: the GFLOP/s TensorFlow's oneDNN kernels reach on a dense matmul and a
3x3 convolution.

    python benchmarks/ceiling.py              # the table of the four figures
    python benchmarks/ceiling.py --quick      # smaller shapes, fewer repeats

`measure()` times, in the calling process, each of

* matmul: `tf.linalg.matmul` of two N x N matrices (default 2048), 2 N^3 FLOP;
* conv 3x3: `tf.nn.conv2d` of NHWC [2, 128, 128, 128] with a 3x3x128x128 filter,
  stride 1, SAME padding, 2 * 2*128*128 * 3*3*128 * 128 FLOP (9.66 G),

in float32 and bfloat16, each in a `tf.function` returning one element of its
result (so the whole product runs but nothing large is copied out), `warmup`
untimed calls then the median of `repeats` timed calls. The inputs are random
normal, made before timing.

`ceiling(figures, dtype)` is the best of the matmul and the convolution for a
dtype: what a segmentation network's step is compared with (float32 rows against
the float32 ceiling, mixed_bfloat16 rows against the bfloat16 one).

The cap: importing `segcore` (here, through `common`) caps oneDNN below AMX on
AMX CPUs (segcore/onednn.py: TensorFlow 2.21's AMX bf16 kernels corrupt the
heap), so the ceiling is that of the kernels training gets, not of the silicon:
on a Sapphire Rapids, bfloat16 runs on AVX-512 BF16, not on the AMX tiles.
`cap_note()` says which cap is in force; every table printing a ceiling says it.
"""

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # imports segcore first: the oneDNN cap is in force before TensorFlow

# The docstring's first paragraph on one line: the title printed and the --help description.
SUMMARY = " ".join(__doc__.split("\n\n")[0].split())
DTYPES = ("float32", "bfloat16")
KERNELS = ("matmul", "conv3x3")


def cap_note():
    """One line: which oneDNN ISA cap the figures were measured under."""
    from segcore import onednn
    cap = os.environ.get(onednn.VARIABLE)
    if cap == onednn.CAP:
        return f"oneDNN ISA cap {cap} in force (segcore/onednn.py; AMX kernels off), as in training"
    if cap:
        return (f"oneDNN ISA cap {cap}, set by the user (not segcore's {onednn.CAP}: AMX kernels "
                "on where the CPU has them and the cap allows)")
    return "no oneDNN ISA cap in force (this CPU has no AMX, or segcore/onednn.py was bypassed)"


def _median_seconds(fn, repeats, warmup):
    for _ in range(warmup):
        fn().numpy()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn().numpy()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def measure(matmul_size=2048, conv_shape=(2, 128, 128, 128), conv_filters=128,
            repeats=5, warmup=2, dtypes=DTYPES):
    """{(kernel, dtype): GFLOP/s} for kernel in KERNELS, dtype in `dtypes`, in this process."""
    import tensorflow as tf

    figures = {}
    for dtype in dtypes:
        tf.random.set_seed(0)
        n = matmul_size
        a = tf.cast(tf.random.normal([n, n]), dtype)
        b = tf.cast(tf.random.normal([n, n]), dtype)
        matmul = tf.function(lambda: tf.linalg.matmul(a, b)[0, 0])
        figures[("matmul", dtype)] = 2.0 * n ** 3 / _median_seconds(matmul, repeats, warmup) / 1e9

        batch, height, width, channels = conv_shape
        x = tf.cast(tf.random.normal(conv_shape), dtype)
        w = tf.cast(tf.random.normal([3, 3, channels, conv_filters]) * 0.05, dtype)
        conv = tf.function(lambda: tf.nn.conv2d(x, w, strides=1, padding="SAME")[0, 0, 0, 0])
        flops = 2.0 * batch * height * width * 9 * channels * conv_filters
        figures[("conv3x3", dtype)] = flops / _median_seconds(conv, repeats, warmup) / 1e9
    return figures


def ceiling(figures, dtype):
    """The best GFLOP/s of `dtype` in `figures` (matmul or 3x3 convolution)."""
    return max(v for (kernel, d), v in figures.items() if d == dtype)


def to_json(figures):
    return {f"{kernel} {dtype}": value for (kernel, dtype), value in figures.items()}


def from_json(document):
    return {tuple(key.split(" ")): value for key, value in document.items()}


def table(figures, matmul_size=2048, conv_shape=(2, 128, 128, 128), conv_filters=128, **_):
    """Markdown table of `figures`, one row per kernel, a column per dtype (the
    keyword arguments: those `measure` was given, for the shapes column)."""
    shapes = {"matmul": f"{matmul_size}x{matmul_size} @ {matmul_size}x{matmul_size}",
              "conv3x3": "NHWC " + "x".join(map(str, conv_shape)) + f" -> {conv_filters}, SAME"}
    dtypes = [d for d in DTYPES if any(k[1] == d for k in figures)]
    rows = [[kernel, shapes[kernel]] + [common.number(figures.get((kernel, d))) for d in dtypes]
            for kernel in KERNELS]
    rows.append(["ceiling (best)", ""] + [common.number(ceiling(figures, d)) for d in dtypes])
    return common.markdown_table(["kernel", "shape"] + [f"{d} GFLOP/s" for d in dtypes], rows)


QUICK = {"matmul_size": 1024, "conv_shape": (1, 64, 64, 128), "conv_filters": 128,
         "repeats": 3, "warmup": 1}


def main(argv=None):
    parser = argparse.ArgumentParser(description=SUMMARY)
    parser.add_argument("--quick", action="store_true", help="smaller shapes, 1 + 3 calls")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--emit", action="store_true", help=argparse.SUPPRESS)  # for run_isolated
    args = parser.parse_args(argv)
    options = dict(QUICK) if args.quick else {"repeats": args.repeats}
    figures = measure(**options)
    if args.emit:
        common.emit_result({"ceiling": to_json(figures), "options": options})
        return 0
    print(SUMMARY)
    print(common.machine_summary())
    print(cap_note() + "\n")
    print(table(figures, **options))
    return 0


if __name__ == "__main__":
    sys.exit(main())
