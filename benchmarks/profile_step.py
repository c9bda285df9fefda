"""Where a training step goes: per-op-type and per-layer time of a few training steps.

    python benchmarks/profile_step.py --family deeplab --backbone resnet50 --size 257 257
    python benchmarks/profile_step.py --family deeplab --backbone xception65 --precisions fp32
    python benchmarks/profile_step.py --family fcn --size 160 576
    python benchmarks/profile_step.py --family unet --preset isbi_unet_small --size 188 188

Builds the network, task, loss, metric and optimiser a training run builds from
the family's preset (`--preset`, default: deeplab voc_xception65_os16, fcn
kitti_fcn8s, unet isbi_unet_small; `--backbone` and `--set KEY=VALUE` change
model options), random weights, one synthetic batch held in memory (uint8
images, labels of the network's output size), and for each `--precisions`
entry (fp32, mixed: `segcore.precision.resolve_policy`) in ONE process:

1. `--warmup` untimed `train_on_batch` steps, then `--steps` steps under the
   TensorFlow profiler (`tf.profiler.experimental`, host tracer);
2. the profile's `.xplane.pb` is parsed with the protobuf TensorFlow ships
   (`tensorflow.tsl.profiler.protobuf.xplane_pb2`, no profile plugin needed):
   every TensorFlow op event ("<op name>:<op type>", one per executed kernel,
   on the executor's threads) is summed by op type, by category (convolution
   forward / backward-input / backward-filter, depthwise likewise, batch norm,
   casts, resize, the L2 regulariser, the optimiser update, element-wise, ...)
   and by layer (the deepest name-scope component that is a layer of the
   network), forward and backward (`gradient_tape/`) apart.

Then `--timed` more steps per precision with the profiler off, interleaved
(fp32, mixed, fp32, mixed, ...) so the mixed/fp32 ratio sees the same load: train
img/s (wall clock) and CPU seconds per step (the process's user + system time: the
work, which an oversubscribed machine's scheduler does not stretch; "CPU work vs
first" > 1 means less work than the first row).

Op time is the sum of kernel durations: ops on the two inter-op threads
overlap, so it can exceed wall time; its FRACTIONS are what to read (much less
sensitive to other processes' load than wall-clock figures, which the header's
load average qualifies). Kernels from graph rewrites keep the node's name and
oneDNN's type (`_MklNativeFusedConv2D`, `_MklFusedBatchNormV3`, ...): they are
filed under the category of the op they replace.
"""

import argparse
import collections
import glob
import os
import re
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common

sys.path.insert(0, common.REPO_ROOT)

DEFAULT_PRESETS = {"deeplab": "voc_xception65_os16", "fcn": "kitti_fcn8s",
                   "unet": "isbi_unet_small"}
PRECISIONS = ("fp32", "mixed")

# (category, predicate on (op type, op name, backward?)); first match wins.
CATEGORIES = (
    # Keras 3 adds a kernel regulariser's loss at the top level of the step's graph
    # ("Square", "Sum", "mul"; its gradient "gradient_tape/Mul_<k>"): top-level Sum / Mul
    # also hold a few scalar loss reductions, microseconds each.
    ("L2 regulariser", lambda t, n, b: "regulariz" in n.lower()
     or (t in ("Square", "Sum", "Mul") and ("/" not in n or L2_GRADIENT.fullmatch(n)))),
    ("optimiser update", lambda t, n, b: t.startswith("ResourceApply") or "/sgd" in n.lower()
     or n.lower().startswith(("sgd", "fused_sgd", "adam", "fused_adam"))),
    ("depthwise conv bwd-input", lambda t, n, b: "DepthwiseConv2dNativeBackpropInput" in t),
    ("depthwise conv bwd-filter", lambda t, n, b: "DepthwiseConv2dNativeBackpropFilter" in t),
    ("depthwise conv fwd", lambda t, n, b: "DepthwiseConv2dNative" in t),
    ("conv bwd-input", lambda t, n, b: "Conv2DBackpropInput" in t),
    ("conv bwd-filter", lambda t, n, b: "Conv2DBackpropFilter" in t),
    ("conv fwd", lambda t, n, b: "Conv2D" in t or t in ("_MklNativeFusedConv2D", "_FusedConv2D")),
    ("matmul", lambda t, n, b: "MatMul" in t),
    ("batch norm bwd", lambda t, n, b: "FusedBatchNormGrad" in t),
    ("batch norm fwd", lambda t, n, b: "FusedBatchNorm" in t),
    ("resize bilinear bwd", lambda t, n, b: t == "ResizeBilinearGrad"),
    ("resize bilinear fwd", lambda t, n, b: t.startswith("ResizeBilinear")),
    ("cast", lambda t, n, b: t in ("Cast", "_MklCast")),
    ("pad / slice / concat / transpose",
     lambda t, n, b: t in ("Pad", "PadV2", "MirrorPad", "Slice", "StridedSlice", "StridedSliceGrad",
                           "ConcatV2", "ConcatOffset", "Transpose", "_MklTranspose", "Reverse",
                           "ReverseV2", "Split", "SplitV", "Tile", "Pack", "Unpack")),
    ("pooling", lambda t, n, b: "Pool" in t),
    ("loss / metric", lambda t, n, b: "compile_loss" in n or "compile_metrics" in n
     or "confusion" in n.lower() or "Softmax" in t or "SparseSoftmax" in t),
    ("reduction", lambda t, n, b: t in ("Sum", "Mean", "Max", "Min", "Prod", "_MklMean")),
    ("element-wise bwd", lambda t, n, b: b),
    ("element-wise fwd", lambda t, n, b: True),
)
# Bookkeeping kernels: microseconds each, not where a step goes; still counted in the total.
BOOKKEEPING = {"ReadVariableOp", "AssignVariableOp", "AssignAddVariableOp", "AssignSubVariableOp",
               "VarHandleOp", "Identity", "NoOp", "Const", "_Retval", "_Arg", "Shape",
               "ShapeN", "Reshape", "Size", "Rank", "ExpandDims", "Squeeze", "StopGradient",
               "_EagerConst", "ZerosLike", "OnesLike", "Fill", "BroadcastGradientArgs"}
TRAILING_INDEX = re.compile(r"_\d+$")
L2_GRADIENT = re.compile(r"gradient_tape/Mul(_\d+)?")


def categorise(op_type, op_name):
    backward = op_name.startswith("gradient_tape/") or "/gradient_tape/" in op_name
    if op_type in BOOKKEEPING:
        return "bookkeeping (reads, reshapes, ...)"
    for category, match in CATEGORIES:
        if match(op_type, op_name, backward):
            return category
    return "other"


def layer_of(op_name, layer_names):
    """The deepest name-scope component of `op_name` that names a layer (Keras appends
    `_1`, `_2` to scopes it re-enters), or the op's top-level scope."""
    parts = op_name.split("/")[:-1]
    for part in reversed(parts):
        for candidate in (part, TRAILING_INDEX.sub("", part)):
            if candidate in layer_names:
                return candidate
    return parts[0] if parts else op_name


# --------------------------------------------------------------------------- the profile


def op_events(logdir):
    """(op name, op type, duration in seconds) of every TensorFlow op event of the
    profile in `logdir` (its host plane's "<name>:<type>" events)."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    paths = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
    if not paths:
        raise RuntimeError(f"the profiler wrote no .xplane.pb under {logdir}")
    events = []
    for path in paths:
        space = xplane_pb2.XSpace()
        with open(path, "rb") as f:
            space.ParseFromString(f.read())
        for plane in space.planes:
            if not plane.name.startswith("/host:"):
                continue
            names = {key: meta.name for key, meta in plane.event_metadata.items()}
            for line in plane.lines:
                if line.name == "python":  # Python / eager frames, not kernels
                    continue
                for event in line.events:
                    name = names.get(event.metadata_id, "")
                    if ":" not in name or name.startswith(("ThreadpoolListener", "ExecutorState")):
                        continue
                    op_name, _, op_type = name.rpartition(":")
                    if not op_name or not op_type or " " in op_type or "::" in name:
                        continue
                    events.append((op_name, op_type, event.duration_ps * 1e-12))
    return events


def summarise(events, layer_names, steps):
    """Seconds per step by op type, category and (layer, direction)."""
    by_type, by_category, by_layer = (collections.Counter() for _ in range(3))
    for op_name, op_type, seconds in events:
        per_step = seconds / steps
        category = categorise(op_type, op_name)
        by_type[op_type] += per_step
        by_category[category] += per_step
        backward = "gradient_tape/" in op_name
        by_layer[(layer_of(op_name, layer_names), "bwd" if backward else "fwd")] += per_step
    return {"type": by_type, "category": by_category, "layer": by_layer,
            "total": sum(by_category.values())}


# --------------------------------------------------------------------------- the model


def parse_value(text):
    import json
    try:
        return json.loads(text)
    except ValueError:
        return text


def build_task(args, precision, baseline=None):
    """(task, network, policy) of the preset's training run under `precision`;
    `baseline` (a key of BASELINES): that DeepLab speed fix switched off."""
    model = {}
    if args.backbone:
        model["backbone"] = args.backbone
    for item in args.set:
        key, _, value = item.partition("=")
        model[key] = parse_value(value)
    adjust = BASELINES[baseline] if baseline else None
    return common.build_preset_task(args.family, args.preset or DEFAULT_PRESETS[args.family],
                                    precision, args.num_classes, args.batch_size, args.size,
                                    model, adjust)


def synthetic_batch(task, args):
    return common.synthetic_batch(task, args.batch_size, args.size, args.num_classes)


def set_fused_batch_norm(network, fused):
    """Switch every `deeplab_tf.aspp.FusedBatchNormalization` of `network`; returns their number."""
    from deeplab_tf.aspp import FusedBatchNormalization
    from segcore.layers import all_layers
    layers = [layer for layer in all_layers(network) if isinstance(layer, FusedBatchNormalization)]
    for layer in layers:
        layer.fused = fused
    return len(layers)


def set_native_atrous(network, native):
    """Switch every `deeplab_tf.atrous.AtrousConv2D` of `network`; returns their number."""
    from deeplab_tf.atrous import AtrousConv2D
    from segcore.layers import all_layers
    layers = [layer for layer in all_layers(network) if isinstance(layer, AtrousConv2D)]
    for layer in layers:
        layer.native = native
    return len(layers)


# Row label suffix -> how the network of that "before" row is changed (DeepLab's speed paths off).
BASELINES = {
    "keras-BN": lambda network: set_fused_batch_norm(network, False),
    "keras-atrous": lambda network: set_native_atrous(network, False),
}


def nested_layer_names(network):
    from segcore.layers import all_layers
    return {layer.name for layer in all_layers(network)}


def profile_precision(args, precision, logdir, baseline=None):
    import tensorflow as tf

    task, network, policy = build_task(args, precision, baseline)
    images, labels = synthetic_batch(task, args)

    def step():
        return task.train_on_batch(images, labels)

    for _ in range(args.warmup):
        step()
    tf.profiler.experimental.start(logdir, options=tf.profiler.experimental.ProfilerOptions(
        host_tracer_level=2, python_tracer_level=0, device_tracer_level=0))
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    profiled_seconds = (time.perf_counter() - start) / args.steps
    tf.profiler.experimental.stop()
    summary = summarise(op_events(logdir), nested_layer_names(network), args.steps)
    summary.update(policy=policy, profiled_step_s=profiled_seconds, step=step,
                   params=int(network.count_params()))
    return summary


# --------------------------------------------------------------------------- report


def percent(value, total):
    return f"{100.0 * value / total:.1f}" if total else "n/a"


def side_by_side(title, key_name, results, key, top):
    """Rows of `key` (type/category/layer) for every precision: ms/step and % of op time."""
    order = collections.Counter()
    for r in results.values():
        for k, v in r[key].items():
            order[k] += v / r["total"]
    keys = [k for k, _ in order.most_common(top)]
    headers = [key_name]
    for precision, r in results.items():
        headers += [f"{precision} ms/step", f"{precision} %"]
    rows = []
    for k in keys:
        label = f"{k[0]} ({k[1]})" if isinstance(k, tuple) else k
        row = [label]
        for r in results.values():
            row += [common.number(1e3 * r[key].get(k, 0.0)),
                    percent(r[key].get(k, 0.0), r["total"])]
        rows.append(row)
    rest = ["(all others)"]
    total = ["total op time"]
    for r in results.values():
        shown = sum(r[key].get(k, 0.0) for k in keys)
        rest += [common.number(1e3 * (r["total"] - shown)), percent(r["total"] - shown, r["total"])]
        total += [common.number(1e3 * r["total"]), "100.0"]
    rows += [rest, total]
    return f"\n### {title}\n\n" + common.markdown_table(headers, rows)


def interleaved_rates(results, args):
    """({label: train img/s}, {label: CPU s/step}) of each configuration, `--timed`
    steps each, interleaved. CPU seconds (this process's user + system time, all
    threads) are the step's work: on an oversubscribed machine the wall time also
    depends on how many runnable threads the step keeps (the scheduler's share)."""
    import statistics
    seconds = {p: [] for p in results}
    cpu = {p: [] for p in results}
    for _ in range(args.timed):
        for label, r in results.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            r["step"]()
            seconds[label].append(time.perf_counter() - start)
            cpu[label].append(time.process_time() - start_cpu)
    return ({p: args.batch_size / statistics.median(s) for p, s in seconds.items()},
            {p: statistics.median(c) for p, c in cpu.items()})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__[__doc__.index("Builds"):])
    parser.add_argument("--family", choices=sorted(DEFAULT_PRESETS), default="deeplab")
    parser.add_argument("--preset", help="the family's preset (default: see above)")
    parser.add_argument("--backbone", help="deeplab: xception65, resnet50, resnet101, mobilenetv2")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a model option (JSON value), e.g. --set output_stride=8")
    parser.add_argument("--size", type=int, nargs=2, default=(257, 257), metavar=("H", "W"))
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--num-classes", type=int, default=21)
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps before profiling")
    parser.add_argument("--steps", type=int, default=3, help="profiled steps")
    parser.add_argument("--timed", type=int, default=3,
                        help="unprofiled steps per precision, interleaved, for img/s (0: none)")
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS))
    parser.add_argument("--top", type=int, default=15, help="rows per table")
    parser.add_argument("--keras-batch-norm", action="store_true",
                        help="deeplab: also profile each precision with Keras's unfused batch "
                             "norm (the plain Keras path), in the same process")
    parser.add_argument("--keras-atrous", action="store_true",
                        help="deeplab: also profile each precision with Keras's space-to-batch "
                             "dilated Conv2D (Keras's space-to-batch path)")
    parser.add_argument("--keep-profile", metavar="DIR",
                        help="write the profiles here (TensorBoard's profile tab reads them)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 0 or args.timed < 0:
        parser.error("--steps must be >= 1, --warmup and --timed >= 0")

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    keras.utils.set_random_seed(0)

    print(__doc__.splitlines()[0])
    print(common.machine_summary())
    from segcore import onednn
    flags = common.cpu_flags()
    shown = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16",
                         "amx_int8") if f in flags]
    print(f"CPU flags (vector / matrix): {' '.join(shown) or 'none of avx2 avx512 amx'}")
    print(f"oneDNN ISA cap (ONEDNN_MAX_CPU_ISA): {os.environ.get(onednn.VARIABLE, 'none')}"
          + (" (segcore.onednn: AMX bf16 kernels of TF 2.21 corrupt the heap; bf16 runs on "
             "AVX-512 BF16)" if os.environ.get(onednn.VARIABLE) == onednn.CAP else ""))
    options = " ".join(args.set)
    print(f"{args.family} {args.preset or DEFAULT_PRESETS[args.family]}"
          f"{' ' + args.backbone if args.backbone else ''}{' ' + options if options else ''}, "
          f"{args.size[0]}x{args.size[1]}, batch {args.batch_size}, {args.num_classes} classes, "
          f"{args.warmup} warm-up + {args.steps} profiled steps, random weights, synthetic batch")

    root = args.keep_profile or tempfile.mkdtemp(prefix="profile_step_")
    results = {}
    try:
        # The baseline (before) first, then the code as it is (after).
        baselines = [b for b, asked in (("keras-BN", args.keras_batch_norm),
                                        ("keras-atrous", args.keras_atrous)) if asked]
        for precision in args.precisions:
            for baseline in baselines + [None]:
                label = precision + (f" {baseline}" if baseline else "")
                print(f"profiling {label} ...", file=sys.stderr, flush=True)
                results[label] = profile_precision(
                    args, precision, os.path.join(root, label.replace(" ", "_")), baseline)
        rates, cpu = interleaved_rates(results, args) if args.timed else ({}, {})
    finally:
        if not args.keep_profile:
            shutil.rmtree(root, ignore_errors=True)

    print(f"load average after the run: {' '.join(f'{v:.2f}' for v in os.getloadavg())}\n")
    headers = ["precision", "policy", "params M", "profiled s/step", "op time s/step",
               "train img/s (unprofiled)", "img/s vs first", "CPU s/step", "CPU work vs first"]
    label0 = next(iter(results))
    rows = [[p, r["policy"], common.number(r["params"] / 1e6), common.number(r["profiled_step_s"]),
             common.number(r["total"]), common.number(rates.get(p)),
             common.ratio(rates.get(p), rates.get(label0)), common.number(cpu.get(p)),
             common.ratio(cpu.get(label0), cpu.get(p))]
            for p, r in results.items()]
    print(common.markdown_table(headers, rows))
    print(side_by_side("Op time by category", "category", results, "category", 30))
    print(side_by_side("Op time by op type", "op type", results, "type", args.top))
    print(side_by_side("Op time by layer (forward / backward)", "layer", results, "layer",
                       args.top))
    if args.keep_profile:
        print(f"\nprofiles: {args.keep_profile} (tensorboard --logdir {args.keep_profile})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
