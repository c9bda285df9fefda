"""Command-line plumbing shared by `python -m fcn_tf.train`, `unet_tf.train`, `deeplab_tf.train`.

A trainer module only declares its presets and its `ModelFamily`; this module
turns the command line into a `TrainConfig`, runs `train_and_evaluate`, and
turns every bad input into a one-line message and exit status 2.

The configuration is built in layers, each on top of the one before:

1. the preset (`--preset NAME`, else the trainer's default);
2. a configuration file (`--config FILE.json|.yaml`) with any of `TrainConfig`'s
   fields, `model` / `augment` / `weight_map` merged key by key into the preset's
   (`dataset_options` replaces the preset's: they belong to one dataset). A run's own
   `config.json` (it has a "resolved" record) replaces the preset entirely, so
   `--config runs/<name>/config.json` re-runs that experiment exactly, into a new run
   directory `<name>-2`, `-3`, ... unless `--name`;
3. the flags: `TrainConfig`'s (`COMMON_FLAGS`) and the family's model options,
   derived from the builder's signature (`segcore.options.ModelOptions`);
4. `--set KEY=VALUE` (repeatable) for any field: `epochs=3`,
   `model.batch_norm_momentum=0.9`, `augment.flip=true`.

Every key is checked: an unknown one is an error naming it and listing the valid
ones, a value of the wrong type an error naming the key and the expected type.
"""

import argparse
import json
import logging
import os

from segcore.augment import AugmentConfig
from segcore.errors import ConfigError
from segcore.exit_status import exit_status
from segcore.families import FAMILY_MODULES
from segcore.options import Option, boolean, dataclass_options
from segcore.training import TrainConfig, train_and_evaluate

# flag -> (TrainConfig field, nargs, help); the type is the field's (TRAIN_OPTIONS)
COMMON_FLAGS = {
    "--dataset": ("dataset", None, "dataset name (segcore.data.READERS)"),
    "--data-dir": ("data_dir", None, "where the dataset's files are"),
    "--train-split": ("train_split", None, "split to train on"),
    "--val-split": ("val_split", None, "split to validate and evaluate on"),
    "--image-size": ("image_size", 2, "H W of training batches"),
    "--epochs": ("epochs", None, "number of epochs"),
    "--batch-size": ("batch_size", None, "global batch size (split over replicas)"),
    "--steps-per-epoch": ("steps_per_epoch", None, "limit the steps of each epoch"),
    "--optimizer": ("optimizer", None,
                    "adam (the KITTI blog posts, SOURCES.md) or sgd (the papers)"),
    "--learning-rate": ("learning_rate", None, "initial learning rate"),
    "--momentum": ("momentum", None, "SGD momentum"),
    "--weight-decay": ("weight_decay", None, "decoupled weight decay on kernels"),
    "--schedule": ("schedule", None, "learning-rate schedule: fixed or poly"),
    "--loss-normalization": ("loss_normalization", None,
                             "valid (mean over labelled pixels) or none (sum, Caffe normalize: "
                             "false)"),
    "--weights": ("weights", None, "auto, imagenet, none, or a weights file"),
    "--init-from": ("init_from", None, "run directory whose layers initialise this network"),
    "--recalibrate-batch-norm": ("recalibrate_batch_norm", None,
                                 "before training, re-estimate the batch-norm statistics on this "
                                 "many training images, keeping the network's function (to train "
                                 "batch norm of an --init-from network whose statistics were "
                                 "folded away or come from another dataset); 0: off"),
    "--precision": ("precision", None, "training precision: auto, fp32 or mixed (bf16 on CPU, "
                    "fp16 on GPU)"),
    "--export-precision": ("export_precision", None,
                           "precision of the SavedModel and of the evaluation in metrics.json: "
                           "fp32 (default) or mixed"),
    "--devices": ("devices", "+", "devices for MirroredStrategy, e.g. /gpu:0 /gpu:1"),
    "--seed": ("seed", None, "random seed"),
    "--runs-dir": ("runs_dir", None, "parent of the run directory"),
    "--name": ("name", None, "run name (runs/<name>/); default: the preset's"),
    "--overlays": ("overlays", None, "number of validation overlay PNGs"),
    "--eval-max-images": ("eval_max_images", None, "evaluate on at most this many images"),
    "--backup-every": ("backup_every", None,
                       "back up the training state every N steps, 0: at epoch ends only "
                       "(default: after each 10 min of training and at epoch ends; a backup "
                       "writes the weights and the optimizer slots, so its cost grows with the "
                       "network's size); a rerun of the command resumes exactly"),
}

TRAIN_OPTIONS = dataclass_options(TrainConfig)
AUGMENT_OPTIONS = dataclass_options(AugmentConfig)
# Dictionary fields whose keys are checked by their own consumers (the dataset reader,
# the family's weight map) rather than here.
FREE_MAPPINGS = ("dataset_options", "weight_map")
_NESTED = ("model", "augment") + FREE_MAPPINGS
_NOT_FROM_FILES = ("resolved",)


def build_parser(prog, description, presets, family):
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default=None,
                        help=_escaped("named experiment: " + "; ".join(
                            f"{name}: {preset.target}" for name, preset in presets.items())))
    parser.add_argument("--list-presets", action="store_true", help="print the presets and exit")
    parser.add_argument("--config", default=None, metavar="FILE",
                        help="JSON or YAML file of TrainConfig fields on top of the preset; a "
                             "run's config.json re-runs that experiment (new run directory)")
    parser.add_argument("--set", dest="set_values", action="append", type=assignment, default=[],
                        metavar="KEY=VALUE",
                        help="set any field, last: epochs=3, model.batch_norm_momentum=0.9, "
                             "augment.flip=true (repeatable)")
    for flag, (field, nargs, text) in COMMON_FLAGS.items():
        option = TRAIN_OPTIONS[field]
        parser.add_argument(flag, dest=field, type=_flag_type(option, f"{flag} "), nargs=nargs,
                            default=None, help=text)
    parser.add_argument("--num-classes", dest="model.num_classes", type=int, default=None,
                        help="must match the dataset (checked)")
    parser.add_argument("--xla", dest="jit_compile", action="store_true", default=None,
                        help="compile the train step with XLA (off by default: slower on CPU)")
    parser.add_argument("--overwrite", action="store_true", default=None,
                        help="start over a run directory that holds another experiment (its "
                        "config.json differs)")
    parser.add_argument("--no-export", dest="export", action="store_false", default=None,
                        help="do not write the SavedModel")
    parser.add_argument("--no-cache", dest="cache", action="store_false", default=None,
                        help="do not cache decoded images in memory")
    parser.add_argument("--crop-size", dest="augment.crop_size", type=int, nargs=2, default=None,
                        help="H W: random training crops of this size (after the random scale)")
    taken = {action.dest for action in parser._actions} | set(COMMON_FLAGS)
    for option in family.options:
        if option.flag in taken:
            raise ConfigError(f"the {family.name} model option {option.name} would shadow the flag "
                              f"{option.flag}")
        parser.add_argument(option.flag, dest=f"model.{option.name}",
                            type=_flag_type(option, f"{option.flag} "),
                            nargs="+" if option.multiple else None, default=None,
                            metavar=option.name.upper(), help=_escaped(_model_help(option)))
    return parser


def assignment(text):
    """argparse type of `--set KEY=VALUE`: (dotted key, the value's text)."""
    key, sep, value = text.partition("=")
    if not sep or not all(part.isidentifier() for part in key.split(".")):
        raise argparse.ArgumentTypeError(
            f"expected KEY=VALUE (e.g. model.dropout=0.5), got {text!r}")
    return key, value


def _flag_type(option, where):
    """argparse type of one flag value (one item of a multi-value option)."""
    if option.multiple:
        item = Option(option.name, option.element, nullable=False) if option.element else None
        return (lambda text: item.parse(text, where)) if item else str
    if option.kind is bool:
        return boolean
    if option.kind in (int, float):
        return option.kind
    return str


def _model_help(option):
    default = option.default if not isinstance(option.default, tuple) else \
        " ".join(str(v) for v in option.default)
    return f"{option.help or option.name} (default: {default})"


def _escaped(text):
    """Help text with argparse's %-formatting disarmed ("78.79 %" in a preset's target)."""
    return text.replace("%", "%%")


def read_config_file(path):
    """The mapping of a JSON or YAML configuration file (ConfigError naming the file)."""
    if not os.path.isfile(path):
        raise ConfigError(f"--config {path}: no such file")
    with open(path) as f:
        text = f.read()
    if path.endswith((".yaml", ".yml")):
        import yaml

        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ConfigError(f"--config {path}: not valid YAML ({_one_line(error)})") from None
    else:
        try:
            document = json.loads(text)
        except ValueError as error:
            raise ConfigError(f"--config {path}: not valid JSON ({error})") from None
    if not isinstance(document, dict):
        raise ConfigError(f"--config {path}: expected a mapping of TrainConfig fields, "
                          f"got {type(document).__name__}")
    return document


def _one_line(error):
    return " ".join(str(error).split())


def check_document(document, family, source):
    """A TrainConfig-shaped mapping with every key known and every value of its type."""
    where = f"{source}: " if source else ""
    unknown = sorted(set(document) - set(TRAIN_OPTIONS) - set(_NOT_FROM_FILES))
    if unknown:
        raise ConfigError(f"{where}unknown field(s) {', '.join(unknown)}; expected "
                          f"{', '.join(TRAIN_OPTIONS)}")
    if document.get("family", family.name) != family.name:
        other = document["family"]
        runner = f"python -m {FAMILY_MODULES[other]}" if other in FAMILY_MODULES else "its trainer"
        raise ConfigError(f"{where}a configuration of the {other!r} family, not "
                          f"{family.name!r}; run it with {runner}")
    checked = {}
    for key, value in document.items():
        if key in _NOT_FROM_FILES:
            continue
        if key == "model":
            checked[key] = family.options.check(_mapping(value, f"{where}model"), where)
        elif key == "augment":
            checked[key] = _check_augment(_mapping(value, f"{where}augment"), where)
        elif key in FREE_MAPPINGS:
            checked[key] = dict(_mapping(value, f"{where}{key}"))
        else:
            checked[key] = TRAIN_OPTIONS[key].coerce(value, where)
    return checked


def _mapping(value, label):
    if not isinstance(value, dict):
        raise ConfigError(f"{label}: expected a mapping, got {value!r}")
    return value


def _check_augment(augment, where):
    unknown = sorted(set(augment) - set(AUGMENT_OPTIONS))
    if unknown:
        raise ConfigError(f"{where}augment option(s) {', '.join(unknown)} unknown; expected "
                          f"{', '.join(AUGMENT_OPTIONS)}")
    return {k: AUGMENT_OPTIONS[k].coerce(v, f"{where}augment.") for k, v in augment.items()}


def _set_value(document, key, text, family):
    """`--set KEY=VALUE`: the value parsed as the key's type, put into `document`."""
    head, _, tail = key.partition(".")
    if not tail:
        if head not in TRAIN_OPTIONS or head in _NESTED:
            raise ConfigError(f"--set {key}: unknown field; expected one of "
                              f"{', '.join(k for k in TRAIN_OPTIONS if k not in _NESTED)} "
                              f"or {', '.join(n + '.KEY' for n in _NESTED)}")
        document[head] = TRAIN_OPTIONS[head].parse(text, "--set ")
        return
    if head == "model":
        if tail != "num_classes" and tail not in family.options:
            raise ConfigError(f"--set {key}: model option {tail!r} unknown to the {family.name} "
                              f"family; expected {', '.join(o.name for o in family.options)}")
        option = (Option("num_classes", int) if tail == "num_classes"
                  else family.options.options[tail])
    elif head == "augment":
        if tail not in AUGMENT_OPTIONS:
            raise ConfigError(f"--set {key}: augment option {tail!r} unknown; expected "
                              f"{', '.join(AUGMENT_OPTIONS)}")
        option = AUGMENT_OPTIONS[tail]
    elif head in FREE_MAPPINGS:
        option = Option(tail, None)
    else:
        raise ConfigError(f"--set {key}: {head!r} has no sub-fields; expected one of "
                          f"{', '.join(n + '.KEY' for n in _NESTED)}")
    document[head] = {**document.get(head, {}), tail: option.parse(text, f"--set {head}.")}


def parse_config(argv, presets, default_preset, parser, family):
    """The `TrainConfig` of a trainer's command line (the module docstring's layers)."""
    args = parser.parse_args(argv)
    if args.list_presets:
        for name, preset in presets.items():
            print(f"{name:24s} {preset.target}")
        raise SystemExit(0)
    name = args.preset or default_preset
    if name not in presets:
        raise ConfigError(f"unknown preset {name!r}; expected one of {', '.join(presets)}")
    document = json.loads(presets[name].to_json())
    rerun = False
    if args.config:
        raw = read_config_file(args.config)
        from_file = check_document(raw, family, f"--config {args.config}")
        rerun = "resolved" in raw
        if rerun:
            document = json.loads(TrainConfig().to_json())
            document.update(from_file)
        else:
            _merge(document, from_file)

    flags = {}
    for key, value in vars(args).items():
        if value is None or key in ("preset", "list_presets", "config", "set_values"):
            continue
        head, _, tail = key.partition(".")
        if tail:
            flags.setdefault(head, {})[tail] = value
        else:
            flags[key] = value
    if "dataset" in flags and flags["dataset"] != document["dataset"]:
        # The preset's data location and reader options belong to its own dataset.
        flags.setdefault("data_dir", None)
        flags["dataset_options"] = {}
    if flags.get("weights") == "none":
        flags["weights"] = None
    _merge(document, flags)
    for key, text in args.set_values:
        _set_value(document, key, text, family)
        if key == "name":
            flags["name"] = document["name"]
    if rerun and "name" not in flags:
        document["name"] = next_free_name(document["runs_dir"], document["name"])
    return TrainConfig(**check_document(document, family, ""))


def _merge(document, changes):
    for key, value in changes.items():
        if key in _NESTED and key != "dataset_options" and isinstance(value, dict):
            document[key] = {**document.get(key, {}), **value}
        else:
            document[key] = value


def next_free_name(runs_dir, name):
    """`name-2`, `name-3`, ...: the first that is not a directory in `runs_dir`."""
    base = name
    index = 2
    while os.path.exists(os.path.join(runs_dir, f"{base}-{index}")):
        index += 1
    return f"{base}-{index}"


def main(argv, *, prog, description, presets, default_preset, family):
    """Entry point of a trainer: returns the process exit status."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    def run():
        parser = build_parser(prog, description, presets, family)
        train_and_evaluate(parse_config(argv, presets, default_preset, parser, family), family)
        return 0

    return exit_status(prog, run)


__all__ = ["COMMON_FLAGS", "TrainConfig", "boolean", "build_parser", "exit_status", "main",
           "parse_config"]
