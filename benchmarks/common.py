"""Helpers shared by the benchmark scripts: timing, peak memory, isolation, tables.

* `time_calls(fn, steps, warmup, items)`: wall-clock time of each call after
  `warmup` untimed calls. `fn` must block until its result exists (return a
  NumPy value, or call `.numpy()`), or asynchronous work leaks between calls.
  `Timing.median_rate` (items / median call time) suits synchronous steps on a
  shared machine: a burst from another process spoils one call, not the figure.
  `Timing.rate` (all items / all time) suits prefetching pipelines, whose
  per-call times are bursty by design.
* `peak_rss_mb()`: this process's resident-set high-water mark
  (`resource.getrusage`), which never goes down: measure one configuration per
  process. `run_isolated` runs a script in a fresh interpreter and returns the
  dict it `emit_result`s, with its peak RSS, so peaks don't mix.
* `build_preset_task(family, preset, precision, ...)` and `synthetic_batch`:
  the network, task, loss, metric and optimiser a training run of a family's
  preset builds (random weights), and one in-memory batch for it.
* `markdown_table`, `ratio`, `machine_summary`: the printed report, pasteable
  into benchmarks/README.md.
"""

import argparse
import dataclasses
import importlib.metadata
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

RESULT_MARKER = "BENCH_RESULT "
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:  # the checkout, also from a venv without the package (bench_deeplab)
    sys.path.insert(0, REPO_ROOT)

from segcore.onednn import cpu_flags  # noqa: E402  (importing segcore applies the AMX cap)

# --------------------------------------------------------------------------- timing


@dataclasses.dataclass
class Timing:
    """Seconds of each timed call, and how many items (images) one call handles."""

    seconds: list
    items_per_call: int

    @property
    def median_rate(self):
        """Items per second from the median call: robust to bursts of other load."""
        return self.items_per_call / statistics.median(self.seconds)

    @property
    def rate(self):
        """Items per second over the whole timed window (throughput)."""
        return self.items_per_call * len(self.seconds) / sum(self.seconds)

    def summary(self):
        return {"calls": len(self.seconds), "items_per_call": self.items_per_call,
                "median_s": statistics.median(self.seconds), "min_s": min(self.seconds),
                "max_s": max(self.seconds), "total_s": sum(self.seconds)}


def time_calls(fn, steps, warmup=1, items=1):
    """`Timing` of `steps` calls of `fn()` after `warmup` untimed calls."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    for _ in range(warmup):
        fn()
    seconds = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)
    return Timing(seconds, items)


# --------------------------------------------------------------------------- memory, isolation


def peak_rss_mb():
    """Peak resident set size of this process so far, in MiB (`getrusage` ru_maxrss)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024  # bytes vs KiB


def emit_result(result):
    """Print `result` (a JSON-able dict) with this process's peak RSS, for `run_isolated`."""
    document = dict(result, peak_rss_mb=peak_rss_mb())
    print(RESULT_MARKER + json.dumps(document), flush=True)


def add_isolation_arguments(parser):
    """--timeout (per configuration) and the hidden --child of a script whose rows each run
    in a fresh process (`run_isolated` of the script itself with --child CONFIG_JSON)."""
    parser.add_argument("--timeout", type=float, default=3600,
                        help="seconds allowed for one configuration")
    parser.add_argument("--child", help=argparse.SUPPRESS)


def run_child(args, measure):
    """In a --child process, measure its configuration and emit the result; returns whether
    this process was one (then the script's main returns)."""
    if not args.child:
        return False
    emit_result(measure(json.loads(args.child)))
    return True


def child_argv(script, config):
    """`run_isolated` argv measuring `config` in a fresh process of `script`."""
    return [os.path.abspath(script), "--child", json.dumps(config)]


def default_steps(args, quick, full):
    """Fill --steps / --warmup left unset: (steps, warmup) `quick` with --quick, else `full`."""
    steps, warmup = quick if args.quick else full
    args.steps = args.steps or steps
    args.warmup = args.warmup if args.warmup is not None else warmup


def run_isolated(argv, timeout=None, quiet_tensorflow=True):
    """Run `python *argv` in a fresh process; return the dict it `emit_result`ed.

    On failure returns ``{"error": <last lines of its stderr>}`` instead of
    raising, so one broken configuration does not lose the others' figures.
    """
    env = dict(os.environ)
    if quiet_tensorflow:
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        done = subprocess.run([sys.executable, *argv], capture_output=True, text=True,
                              timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(RESULT_MARKER):
            return json.loads(line[len(RESULT_MARKER):])
    tail = [line for line in done.stderr.strip().splitlines() if line.strip()][-8:]
    return {"error": f"exit code {done.returncode}: " + " | ".join(tail)}


# --------------------------------------------------------------------------- models

PRESET_MODULES = {"deeplab": "deeplab_tf.presets", "fcn": "fcn_tf.presets",
                  "unet": "unet_tf.presets"}


def build_preset_task(family, preset, precision, num_classes, batch_size, size, model=None,
                      adjust_network=None):
    """(task, network, policy): what `python -m <family>_tf.train --preset <preset>` builds,
    random weights, under `segcore.precision.resolve_policy(precision)`.

    `model` updates the preset's model options (e.g. {"backbone": "resnet50"});
    DeepLab's sync batch norm is off (one replica). The loss is
    `SegmentationCrossEntropy(num_classes)` (no class or border weights), the
    metric the `ConfusionMatrixMetric`, the optimiser the preset's (schedule over
    1000 steps), under the training loop's one-device strategy.
    `adjust_network(network)` runs inside the policy and strategy scopes, before
    the task is made.
    """
    import importlib

    from segcore.families import get_family
    from segcore.losses import SegmentationCrossEntropy
    from segcore.metrics import ConfusionMatrixMetric
    from segcore.precision import dtype_policy, resolve_policy
    from segcore.task import SegmentationTask
    from segcore.training import make_optimizer, make_strategy

    config = importlib.import_module(PRESET_MODULES[family]).PRESETS[preset]
    options = dict(config.model, **(model or {}))
    if family == "deeplab":
        options["sync_batch_norm"] = False
    config = config.replace(batch_size=batch_size, weights=None, model=options,
                            image_size=tuple(size))
    family_ = get_family(family)
    policy = resolve_policy(precision)
    with dtype_policy(policy), make_strategy(config.devices).scope():
        network, _ = family_.build(config, num_classes)
        if adjust_network:
            adjust_network(network)
        task = SegmentationTask(network, family_.preprocess)
        task.compile(optimizer=make_optimizer(config, 1000),
                     loss=SegmentationCrossEntropy(num_classes),
                     metrics=[ConfusionMatrixMetric(num_classes)])
    return task, network, policy


def deeplab_speed_fixes(enabled):
    """Switch DeepLab's speed paths for networks built from now on in this process:
    `deeplab_tf.aspp.FusedBatchNormalization.fused` (fused batch norm) and
    `deeplab_tf.atrous.AtrousConv2D.native` (dilated Conv2D without space-to-batch).
    Off is the plain Keras code path, the benchmarks' "before" baseline."""
    from deeplab_tf.aspp import FusedBatchNormalization
    from deeplab_tf.atrous import AtrousConv2D
    FusedBatchNormalization.fused = AtrousConv2D.native = bool(enabled)


def synthetic_batch(task, batch_size, size, num_classes, seed=0):
    """(images, labels) tensors: uint8 random pixels [B, H, W, 3]; uint8 labels of the
    task's output size, a class-k rectangle on background 0 per image."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    height, width = size
    images = rng.integers(0, 256, (batch_size, height, width, 3), dtype=np.uint8)
    out_h, out_w = task(images[:1]).shape[1:3]
    labels = np.zeros((batch_size, out_h, out_w), np.uint8)
    for b in range(batch_size):
        labels[b, out_h // 4:3 * out_h // 4, out_w // 4:3 * out_w // 4] = \
            rng.integers(1, num_classes)
    return tf.constant(images), tf.constant(labels)


# --------------------------------------------------------------------------- report


def ratio(value, reference):
    """'1.52x', or 'n/a' when either figure is missing."""
    if value is None or not reference:
        return "n/a"
    return f"{value / reference:.2f}x"


def number(value, digits=None):
    """`value` with `digits` decimals, by default 3 significant digits (at most 4
    decimals): 0.0123, 0.456, 11.1, 275, 3461."""
    if value is None:
        return "n/a"
    if digits is None:
        digits = 0 if value == 0 else min(4, max(0, 2 - math.floor(math.log10(abs(value)))))
    return f"{value:.{digits}f}"


def markdown_table(headers, rows):
    """A GitHub-flavoured Markdown table; numbers right-aligned, text left-aligned."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    numeric = [all(_looks_numeric(r[i]) for r in cells) if cells else False
               for i in range(len(headers))]

    def line(values):
        return "| " + " | ".join(v.rjust(w) if n else v.ljust(w)
                                 for v, w, n in zip(values, widths, numeric)) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if n else ("-" * (w + 2))
                          for w, n in zip(widths, numeric)) + "|"
    return "\n".join([line(headers), rule] + [line(r) for r in cells])


def _looks_numeric(text):
    text = text.rstrip("x")
    if text == "n/a":
        return True
    try:
        float(text)
        return True
    except ValueError:
        return False


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(*distributions):
    """Version of the first installed distribution of `distributions`."""
    for name in distributions:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "not installed"


def machine_summary():
    """Lines describing where the figures come from (without importing TensorFlow)."""
    flags = cpu_flags()
    bf16 = "yes" if {"avx512_bf16", "amx_bf16"} & flags else "no (bfloat16 is emulated)"
    load = os.getloadavg()
    tensorflow = _version("tensorflow", "tensorflow-cpu", "tf-nightly")
    return "\n".join([
        f"CPU: {cpu_model()}, {os.cpu_count()} logical cores, native bfloat16: {bf16}, "
        f"oneDNN ISA cap: {os.environ.get('ONEDNN_MAX_CPU_ISA', 'none')} (segcore/onednn.py)",
        f"load average (1/5/15 min): {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
        f"Python {platform.python_version()}, TensorFlow {tensorflow}, "
        f"Keras {_version('keras')}",
    ])
