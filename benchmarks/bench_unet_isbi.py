"""U-Net on ISBI 2012 on this CPU: ISBI metrics against training time, next to the paper.

    python benchmarks/bench_unet_isbi.py                 # isbi_unet_small, its 40 epochs
    python benchmarks/bench_unet_isbi.py --quick         # 2 steps: proves it runs
    python benchmarks/bench_unet_isbi.py --epochs 10 --preset isbi_unet_small

Trains `python -m unet_tf.train --preset isbi_unet_small` (width-reduced U-Net,
base_filters 16, 1/16 of the paper's multiply-adds; otherwise the paper's
recipe: batch 1, SGD momentum 0.99, border weight map w0=10 sigma=5, elastic
deformation sigma 10 on a 3x3 grid, flips) on ISBI slices 0-19 (`--data-dir`,
else $SEGCORE_DATASETS/isbi2012, else ../shared/datasets/isbi2012) and
evaluates on slices 20-23 with overlap tiles of 572 (`unet_tf.train`): pixel
error, foreground (cell interior) IoU, Rand error (threshold 0.5 and the best of
0, 0.1, ..., 1 as the challenge reports), warping error.

The paper's figures (Ronneberger et al. 2015, Table 1: ISBI 2012 leaderboard,
full-width U-Net, 10 h on a Titan GPU) are on the 30 *test* slices, whose labels
are hidden: warping error 0.000353, Rand error 0.0382, pixel error 0.0611. The
figures here are on 4 labelled slices of the training volume, from a 16x
smaller network trained for minutes to hours on 2 CPU cores: a proxy, not a
reproduction. Ratios are this run / paper (lower is better for every error).

Training time is wall-clock of the whole run (weight maps, tracing, epochs,
evaluation and export included) and of the timed training steps alone (median
step after the first, which traces); the load average is printed because other
processes slow every figure.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common

sys.path.insert(0, common.REPO_ROOT)

PAPER = {"warping_error": 0.000353, "rand_error": 0.0382, "pixel_error": 0.0611}


def find_data_dir(given):
    candidates = [given] if given else [
        os.path.join(os.environ.get("SEGCORE_DATASETS", ""), "isbi2012"),
        os.path.join(common.REPO_ROOT, "..", "shared", "datasets", "isbi2012"),
    ]
    for path in candidates:
        if path and os.path.isdir(path):
            return os.path.abspath(path)
    raise SystemExit(f"ISBI 2012 data not found (tried {', '.join(p for p in candidates if p)}); "
                     "pass --data-dir")


def run(args, runs_dir):
    import keras

    from unet_tf import train as unet_train

    class StepTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds = []

        def on_train_batch_begin(self, batch, logs=None):
            self._start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.seconds.append(time.perf_counter() - self._start)

    preset = unet_train.PRESETS[args.preset]
    changes = {"data_dir": args.data_dir, "runs_dir": runs_dir, "overlays": 0, "export": False,
               "verbose": 2}
    if args.quick:
        changes.update(epochs=1, steps_per_epoch=2, validation_steps=1)
    if args.epochs:
        changes["epochs"] = args.epochs
    config = preset.replace(**changes)
    timer = StepTimer()
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    metrics = unet_train.train_and_evaluate(config, unet_train.FAMILY, callbacks=[timer])
    isbi = metrics["isbi"]
    wall = time.perf_counter() - started
    steps = len(timer.seconds)
    return {
        "config": config, "metrics": metrics, "isbi": isbi, "wall_s": wall, "steps": steps,
        "step_s": statistics.median(timer.seconds[1:]) if steps > 1 else timer.seconds[0],
        "train_steps_s": sum(timer.seconds),
        "load_average": (load_before + os.getloadavg()[0]) / 2,
    }


def report(result, args):
    config, isbi, metrics = result["config"], result["isbi"], result["metrics"]
    print(f"{args.preset}: base_filters {config.model['base_filters']}, {result['steps']} steps "
          f"(epochs {config.epochs}, batch {config.batch_size}), train split "
          f"{config.train_split}, val split {config.val_split} ({isbi['slices']} slices)")
    print(f"time: {result['wall_s']:.0f} s wall for the whole run, {result['train_steps_s']:.0f} s "
          f"in training steps, median step {result['step_s']:.2f} s, load average "
          f"{result['load_average']:.1f}\n")
    rows = [
        ["pixel error", common.number(isbi["pixel_error"], 4),
         common.number(PAPER["pixel_error"], 4),
         common.ratio(isbi["pixel_error"], PAPER["pixel_error"])],
        ["Rand error (t=0.5)", common.number(isbi["rand_error"], 4),
         common.number(PAPER["rand_error"], 4),
         common.ratio(isbi["rand_error"], PAPER["rand_error"])],
        [f"Rand error (best t={isbi['rand_error_best_threshold']:.1f})",
         common.number(isbi["rand_error_best"], 4), common.number(PAPER["rand_error"], 4),
         common.ratio(isbi["rand_error_best"], PAPER["rand_error"])],
        ["warping error", common.number(isbi["warping_error"], 6),
         common.number(PAPER["warping_error"], 6),
         common.ratio(isbi["warping_error"], PAPER["warping_error"])],
        ["foreground IoU (cell interior)", common.number(isbi["foreground_iou"], 4), "n/a", "n/a"],
        ["membrane IoU (engine)", common.number(metrics["per_class_iou"][1], 4), "n/a", "n/a"],
        ["training wall time (s)", common.number(result["wall_s"], 0), "36000 (GPU)",
         common.ratio(result["wall_s"], 36000)],
    ]
    print(common.markdown_table(["figure", "this run (val 20-23)", "paper (test, hidden)",
                                 "ratio"], rows))
    if args.quick:
        print("\n(--quick: 2 training steps; the errors are those of an untrained network)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 training steps (proves it runs)")
    parser.add_argument("--preset", default="isbi_unet_small")
    parser.add_argument("--epochs", type=int, default=None, help="override the preset's epochs")
    parser.add_argument("--data-dir", default=None, help="ISBI 2012 folder (slices or TIFF stacks)")
    parser.add_argument("--runs-dir", default=None, help="keep the run here (default: a temp dir)")
    args = parser.parse_args(argv)
    args.data_dir = find_data_dir(args.data_dir)
    print(__doc__.splitlines()[0])
    print(common.machine_summary())
    print(f"data: {args.data_dir}\n")
    if args.runs_dir:
        result = run(args, args.runs_dir)
    else:
        with tempfile.TemporaryDirectory(prefix="bench_unet_isbi_") as runs_dir:
            result = run(args, runs_dir)
    report(result, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
