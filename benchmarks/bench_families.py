"""Every family's default network: train and inference img/s, fp32 and mixed, as % of
this CPU's ceiling.

    python benchmarks/bench_families.py          # 3 warm-up + 10 timed steps per figure
    python benchmarks/bench_families.py --quick  # 1 + 2 steps, smaller inputs: proves it runs
    python benchmarks/bench_families.py --networks fcn8s unet --precisions fp32

Networks, each as `python -m <family>_tf.train --preset <preset>` builds it
(`common.build_preset_task`: random weights, the preset's optimiser,
`SegmentationCrossEntropy`, the confusion-matrix metric, one-device strategy),
fed one synthetic uint8 batch held in memory:

    fcn8s                FCN-8s (kitti_fcn8s)            160x576, batch 2, 2 classes
    unet                 U-Net, the paper's (isbi_unet)  388x388 image = one 572x572 tile,
                                                         batch 1, 2 classes
    deeplab-mobilenetv2  DeepLabv3+ OS16 (voc_xception65_os16, backbone swapped)
    deeplab-resnet50       "                             513x513, batch 2, 21 classes
    deeplab-xception65     "

(U-Net: the valid network on a 388x388 image mirrors it by 92 px, one 572x572
tile in, 388x388 logits out, as its training does with `train_tile` None.
--quick: FCN-8s 64x192, U-Net 196x196 (380 tile), DeepLab 129x129.)

Each (network, precision) runs in a fresh process (`common.run_isolated`), fp32
then mixed (`segcore.precision.resolve_policy("mixed")`: mixed_bfloat16 on a
CPU). Train img/s = batch / median `train_on_batch` time after the warm-up
steps; infer img/s the same for `predict_on_batch`.

`--before` adds, for each DeepLab network, the same rows with DeepLab speed
fixes off (`common.deeplab_speed_fixes(False)`: Keras's unfused batch norm and
Keras's space-to-batch dilated Conv2D) and a table of after / before ratios.

GFLOP per image: `flops.forward_flops` of the task (preprocessing + network,
batch 1, the run's input size): 2 x the multiply-adds of its convolutions,
depthwise and transposed convolutions and matmuls, counted by TensorFlow's
profiler from the graph; training = 3 x forward (`flops.TRAIN_FACTOR`, the usual
convention). Achieved GFLOP/s = img/s x GFLOP per image; % of ceiling = that /
the ceiling `ceiling.measure` finds in a fresh process at the start of the same
run (best of a 2048^3 matmul and a 3x3 convolution, `tf.linalg.matmul` /
`tf.nn.conv2d`, under the same oneDNN cap as training): fp32 rows against the
float32 ceiling, mixed rows against the bfloat16 one.
"""

import argparse
import dataclasses
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ceiling
import common

sys.path.insert(0, common.REPO_ROOT)

# The docstring's first paragraph on one line: the title printed and the --help description.
SUMMARY = " ".join(__doc__.split("\n\n")[0].split())
PRECISIONS = ("fp32", "mixed")
CEILING_DTYPE = {"fp32": "float32", "mixed": "bfloat16"}


@dataclasses.dataclass(frozen=True)
class Network:
    label: str
    family: str
    preset: str
    model: dict
    size: tuple
    quick_size: tuple
    batch_size: int
    num_classes: int


_DEEPLAB = dict(family="deeplab", preset="voc_xception65_os16", size=(513, 513),
                quick_size=(129, 129), batch_size=2, num_classes=21)
NETWORKS = {n.label: n for n in (
    Network("fcn8s", "fcn", "kitti_fcn8s", {}, (160, 576), (64, 192), 2, 2),
    Network("unet", "unet", "isbi_unet", {}, (388, 388), (196, 196), 1, 2),
    Network("deeplab-mobilenetv2", model={"backbone": "mobilenetv2"}, **_DEEPLAB),
    Network("deeplab-resnet50", model={"backbone": "resnet50"}, **_DEEPLAB),
    Network("deeplab-xception65", model={"backbone": "xception65"}, **_DEEPLAB),
)}


# --------------------------------------------------------------------------- one configuration


def network_input(family, size):
    """What the network sees for an image of `size` ('572x572 tile' for the valid U-Net)."""
    if family != "unet":
        return "x".join(map(str, size))
    from unet_tf.train import covering_input_size
    return f"{size[0]}x{size[1]} ({int(covering_input_size(size[0]))} tile)"


def measure(config):
    """Figures of one (network, precision) configuration, in this process."""
    import flops
    import keras

    keras.utils.set_random_seed(0)
    size, batch = tuple(config["size"]), config["batch_size"]
    task, network, policy = common.build_preset_task(
        config["family"], config["preset"], config["precision"], config["num_classes"], batch,
        size, config["model"])
    images, labels = common.synthetic_batch(task, batch, size, config["num_classes"])
    # Counted with the fixes on, for "before" rows too: Keras's space-to-batch pads a dilated
    # convolution's input to a multiple of its rate, and the profiler would count the padding
    # (ResNet-50 at 513x513: 81.2 GFLOP instead of the layers' 77.5). The switches act when a
    # step is traced, so switching them off after this count gives the "before" steps.
    forward = flops.forward_flops(task, (1, *size, 3), dtype="uint8")
    if config.get("before"):
        common.deeplab_speed_fixes(False)
    load_before = os.getloadavg()[0]
    train = common.time_calls(lambda: task.train_on_batch(images, labels),
                              config["steps"], config["warmup"], batch)
    infer = common.time_calls(lambda: task.predict_on_batch(images),
                              config["steps"], config["warmup"], batch)
    return {"policy": policy, "params": int(network.count_params()),
            "input": network_input(config["family"], size),
            "forward_gflop": forward / 1e9, "train_gflop": flops.TRAIN_FACTOR * forward / 1e9,
            "train_rate": train.median_rate, "infer_rate": infer.median_rate,
            "train": train.summary(), "infer": infer.summary(),
            "load_average": (load_before + os.getloadavg()[0]) / 2}


BEFORE = " before"   # suffix of a network's row with DeepLab's speed paths off


def configurations(args):
    rows = []
    for label in args.networks:
        net = NETWORKS[label]
        variants = [True, False] if args.before and net.family == "deeplab" else [False]
        for before in variants:
            for precision in args.precisions:
                rows.append({"network": label + (BEFORE if before else ""), "family": net.family,
                             "preset": net.preset, "model": net.model, "precision": precision,
                             "size": list(net.quick_size if args.quick else net.size),
                             "batch_size": net.batch_size, "num_classes": net.num_classes,
                             "steps": args.steps, "warmup": args.warmup, "before": before})
    return rows


# --------------------------------------------------------------------------- report


def step_table(results, figures, step):
    """One row per network: `step` ("train" / "infer") img/s, GFLOP/s and % of the ceiling,
    fp32 and mixed side by side, and mixed / fp32."""
    gflop_key = "train_gflop" if step == "train" else "forward_gflop"
    headers = ["network", "input", "batch", f"{step} GFLOP/img"]
    precisions = [p for p in PRECISIONS if any(r["precision"] == p for r in results)]
    for p in precisions:
        headers += [f"{p} img/s", f"{p} GFLOP/s", f"{p} % of ceiling"]
    if len(precisions) == 2:
        headers.append("mixed / fp32")
    rows = []
    for label in dict.fromkeys(r["network"] for r in results):
        mine = {r["precision"]: r for r in results if r["network"] == label and "error" not in r}
        any_ok = next(iter(mine.values()), None)
        row = [label, any_ok["input"] if any_ok else "n/a",
               next(r["batch_size"] for r in results if r["network"] == label),
               common.number(any_ok and any_ok[gflop_key])]
        for p in precisions:
            r = mine.get(p)
            rate = r and r[f"{step}_rate"]
            achieved = rate and rate * r[gflop_key]
            peak = figures and ceiling.ceiling(figures, CEILING_DTYPE[p])
            row += [common.number(rate), common.number(achieved),
                    common.number(achieved and peak and 100.0 * achieved / peak, 1)]
        if len(precisions) == 2:
            row.append(common.ratio(mine.get("mixed") and mine["mixed"][f"{step}_rate"],
                                    mine.get("fp32") and mine["fp32"][f"{step}_rate"]))
        rows.append(row)
    return common.markdown_table(headers, rows)


def fixes_table(results):
    """With / without DeepLab's speed paths: train and inference img/s ratios."""
    rate = {(r["network"], r["precision"]): r for r in results if "error" not in r}
    headers = ["network", "precision", "train img/s before", "train img/s after",
               "train after / before", "infer img/s before", "infer img/s after",
               "infer after / before"]
    rows = []
    for (label, precision), before in rate.items():
        if not label.endswith(BEFORE):
            continue
        after = rate.get((label[:-len(BEFORE)], precision))
        row = [label[:-len(BEFORE)], precision]
        for step in ("train", "infer"):
            key = f"{step}_rate"
            row += [common.number(before[key]), common.number(after and after[key]),
                    common.ratio(after and after[key], before[key])]
        rows.append(row)
    return common.markdown_table(headers, rows)


def report(results, figures, ceiling_options, args):
    if figures:
        print(f"Ceiling, measured at the start of this run: {ceiling.cap_note()}\n")
        print(ceiling.table(figures, **ceiling_options) + "\n")
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "none")
    print(f"### Training (GFLOP/img = 3 x forward; % of the ceiling above, oneDNN cap {cap})\n")
    print(step_table(results, figures, "train") + "\n")
    print(f"### Inference (% of the ceiling above, oneDNN cap {cap})\n")
    print(step_table(results, figures, "infer"))
    if args.before:
        print("\n### DeepLab without / with its speed paths (rows 'before': Keras's batch norm "
              "and Keras's space-to-batch dilated Conv2D)\n")
        print(fixes_table(results))
    loads = ", ".join(f"{r['network']} {r['precision']} {r['load_average']:.1f}"
                      for r in results if "error" not in r)
    print(f"\nload average during each row: {loads}")
    for r in results:
        if "error" in r:
            print(f"FAILED {r['network']} {r['precision']}: {r['error']}")
    if args.quick:
        print("(--quick: smaller inputs, 1 warm-up + 2 steps; provisional figures)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=SUMMARY,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__[__doc__.index("Networks"):])
    parser.add_argument("--quick", action="store_true",
                        help="1 warm-up + 2 timed steps, smaller inputs, quick ceiling")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 10)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps (default 3)")
    parser.add_argument("--networks", nargs="+", default=list(NETWORKS), choices=list(NETWORKS))
    parser.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=PRECISIONS)
    parser.add_argument("--before", action="store_true",
                        help="also measure each DeepLab network with the speed paths off "
                             "(common.deeplab_speed_fixes), in the same run")
    common.add_isolation_arguments(parser)
    args = parser.parse_args(argv)

    if common.run_child(args, measure):
        return 0
    common.default_steps(args, quick=(2, 1), full=(10, 3))
    print(SUMMARY)
    print(common.machine_summary())
    print(f"{args.warmup} warm-up + {args.steps} timed steps per figure, random weights, "
          "synthetic batch, each row in a fresh process\n")

    print("measuring the ceiling ...", file=sys.stderr, flush=True)
    measured = common.run_isolated(
        [ceiling.__file__, "--emit"] + (["--quick"] if args.quick else []), timeout=args.timeout)
    figures = ceiling.from_json(measured["ceiling"]) if "ceiling" in measured else None
    if figures is None:
        print(f"FAILED ceiling: {measured.get('error')}")
    results = []
    for config in configurations(args):
        print(f"measuring {config['network']} {config['precision']} ...", file=sys.stderr,
              flush=True)
        result = common.run_isolated(common.child_argv(__file__, config),
                                     timeout=args.timeout)
        results.append(dict(config, **result))
    report(results, figures, measured.get("options", {}), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
