"""Command-line plumbing shared by `python -m fcn_tf.train`, `unet_tf.train`, `deeplab_tf.train`.

A trainer module only declares its presets, its model flags and its
`ModelFamily`; this module turns flags into a `TrainConfig` (preset first,
flags on top), runs `train_and_evaluate`, and turns every bad input into a
one-line message and exit status 2.
"""

import argparse
import dataclasses
import logging
import sys

import tensorflow as tf

from segcore.data.images import data_error_from
from segcore.errors import ConfigError, SegmentationError
from segcore.training import TrainConfig, train_and_evaluate

# flag -> (TrainConfig field, type, nargs, help); a trainer's model flags are
# flag -> (config.model key, type, help[, nargs])
COMMON_FLAGS = {
    "--dataset": ("dataset", str, None, "dataset name (segcore.data.READERS)"),
    "--data-dir": ("data_dir", str, None, "where the dataset's files are"),
    "--train-split": ("train_split", str, None, "split to train on"),
    "--val-split": ("val_split", str, None, "split to validate and evaluate on"),
    "--image-size": ("image_size", int, 2, "H W of training batches"),
    "--epochs": ("epochs", int, None, "number of epochs"),
    "--batch-size": ("batch_size", int, None, "global batch size (split over replicas)"),
    "--steps-per-epoch": ("steps_per_epoch", int, None, "limit the steps of each epoch"),
    "--optimizer": ("optimizer", str, None, "adam (the seeds) or sgd (the papers)"),
    "--learning-rate": ("learning_rate", float, None, "initial learning rate"),
    "--momentum": ("momentum", float, None, "SGD momentum"),
    "--weight-decay": ("weight_decay", float, None, "decoupled weight decay on kernels"),
    "--schedule": ("schedule", str, None, "learning-rate schedule: fixed or poly"),
    "--loss-normalization": ("loss_normalization", str, None,
                             "valid (mean over labelled pixels) or none (sum, Caffe normalize: false)"),
    "--weights": ("weights", str, None, "auto, imagenet, none, or a weights file"),
    "--init-from": ("init_from", str, None, "run directory whose layers initialise this network"),
    "--precision": ("precision", str, None, "training precision: auto, fp32 or mixed (bf16 on CPU, "
                    "fp16 on GPU)"),
    "--export-precision": ("export_precision", str, None,
                           "precision of the SavedModel and of the evaluation in metrics.json: "
                           "fp32 (default) or mixed"),
    "--devices": ("devices", str, "+", "devices for MirroredStrategy, e.g. /gpu:0 /gpu:1"),
    "--seed": ("seed", int, None, "random seed"),
    "--runs-dir": ("runs_dir", str, None, "parent of the run directory"),
    "--name": ("name", str, None, "run name (runs/<name>/); default: the preset's"),
    "--overlays": ("overlays", int, None, "number of validation overlay PNGs"),
    "--eval-max-images": ("eval_max_images", int, None, "evaluate on at most this many images"),
    "--backup-every": ("backup_every", int, None, "back up the training state every N steps, 0: at epoch ends only (default: after each 10 min of training and at epoch ends; an FCN-8s backup, 1.1-1.6 GB, took 8-14 s on a 100 MB/s disk: ~2 %% of the time); a rerun of the command resumes exactly"),
}


def boolean(text):
    """argparse type for true/false flags (1/0, yes/no, on/off accepted)."""
    value = str(text).lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def build_parser(prog, description, presets, model_flags):
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default=None,
                        help=_escaped("named experiment: " + "; ".join(
                            f"{name}: {preset.target}" for name, preset in presets.items())))
    parser.add_argument("--list-presets", action="store_true", help="print the presets and exit")
    for flag, (field, kind, nargs, text) in COMMON_FLAGS.items():
        parser.add_argument(flag, dest=field, type=kind, nargs=nargs, default=None, help=text)
    parser.add_argument("--xla", dest="jit_compile", action="store_true", default=None,
                        help="compile the train step with XLA (off by default: slower on CPU)")
    parser.add_argument("--overwrite", action="store_true", default=None, help="start over a run directory that holds another experiment (its config.json differs)")
    parser.add_argument("--no-export", dest="export", action="store_false", default=None,
                        help="do not write the SavedModel")
    parser.add_argument("--no-cache", dest="cache", action="store_false", default=None,
                        help="do not cache decoded images in memory")
    parser.add_argument("--crop-size", dest="augment.crop_size", type=int, nargs=2, default=None,
                        help="H W: random training crops of this size (after the random scale)")
    for flag, (key, kind, text, *nargs) in model_flags.items():
        parser.add_argument(flag, dest=f"model.{key}", type=kind, nargs=nargs[0] if nargs else None,
                            default=None, help=_escaped(text))
    return parser


def _escaped(text):
    """Help text with argparse's %-formatting disarmed ("78.79 %" in a preset's target)."""
    return text.replace("%", "%%")


def parse_config(argv, presets, default_preset, parser):
    args = parser.parse_args(argv)
    if args.list_presets:
        for name, preset in presets.items():
            print(f"{name:24s} {preset.target}")
        raise SystemExit(0)
    name = args.preset or default_preset
    if name not in presets:
        raise ConfigError(f"unknown preset {name!r}; expected one of {', '.join(presets)}")
    config = presets[name]
    changes, model, augment = {}, dict(config.model), dict(config.augment)
    for key, value in vars(args).items():
        if value is None or key in ("preset", "list_presets"):
            continue
        if key.startswith("model."):
            model[key[len("model."):]] = tuple(value) if isinstance(value, list) else value
        elif key.startswith("augment."):
            augment[key[len("augment."):]] = tuple(value) if isinstance(value, list) else value
        else:
            changes[key] = tuple(value) if key == "image_size" else value
    if "dataset" in changes and changes["dataset"] != config.dataset:
        # The preset's data location and reader options belong to its own dataset.
        changes.setdefault("data_dir", None)
        changes["dataset_options"] = {}
    if changes.get("weights") == "none":
        changes["weights"] = None
    return dataclasses.replace(config, model=model, augment=augment, **changes)


def main(argv, *, prog, description, presets, default_preset, family, model_flags):
    """Entry point of a trainer: returns the process exit status."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = build_parser(prog, description, presets, model_flags)

    def run():
        train_and_evaluate(parse_config(argv, presets, default_preset, parser), family)
        return 0

    return exit_status(prog, run)


def exit_status(prog, action):
    """`action()`'s exit status; a bad input (SegmentationError, or an in-graph data
    check's OpError) becomes one line "PROG: error: ..." on stderr and status 2."""
    try:
        return action()
    except SegmentationError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    except tf.errors.OpError as error:
        print(f"{prog}: error: {data_error_from(error)}", file=sys.stderr)
        return 2


__all__ = ["COMMON_FLAGS", "TrainConfig", "build_parser", "main", "parse_config"]
