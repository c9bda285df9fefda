"""Results as data: each preset's published figure and the figure measured here, in results.yaml.

    python benchmarks/results.py record runs/synthetic_fcn8s --preset fcn/synthetic_fcn8s \\
        --command "python -m fcn_tf.train"
    python benchmarks/results.py table                  # print the Markdown results table
    python benchmarks/results.py table --write-readme   # put it in README.md between the markers

`results.yaml` (repository root) has one entry per preset of every family
(`fcn_tf.presets.PRESETS`, `unet_tf.presets.PRESETS`, `deeplab_tf.presets.PRESETS`),
keyed `family/preset`, in family then preset order:

* `paper`: the published figures the preset aims at, a list of
  `{metric, value, split, source}` (optional `note`: the setting, e.g. "OS8, scales
  0.5-1.75 + flip"), with metrics named and scaled as in metrics.json (fractions:
  62.7 % mean IU is 0.627); or null, with `paper_reason` saying why there is none.
* `measured`: null until a run is recorded, with `reason` saying why it has not been
  run here; once recorded, written by `record` from the run directory:
  `figures` (mean_iou, pixel_accuracy; pixel_error, rand_error_best, warping_error of
  the `isbi` block; max_f of the `road` block), `baseline` (the same figures of
  metrics.json's `baseline` block, the majority-class predictor on the same split;
  null when the run has none), `split` (dataset, split, num_images), `budget`
  (train_minutes from `fit_seconds`, the time of model.fit, run_minutes from
  `train_seconds`, the machine's CPU, cores and speed-relevant flags, the training
  precision `resolved.dtype_policy`, replicas), `overrides` (every
  field of config.json that differs from the preset, as dotted keys like `--set`),
  `command` and `date` (of metrics.json).

`paper`, `paper_reason` and `reason` are written by hand; `record` replaces one
entry's `measured` and keeps every other entry as it is. The file is always written
by this script (same header, same layout), so a recorded run changes only its entry.

`record` checks that config.json is a run of the preset: another family, or a run
named after another preset, is refused; a run under another name (`--name`) is
accepted when its `target` is the preset's. The machine is read from /proc/cpuinfo
when recording: record on the machine that trained the run, or pass `--cpuinfo` with
a copy of that machine's file. Fields that change where a run writes and what it
logs, not what it trains or measures (`IGNORED_FIELDS`), are not overrides.

The script lives in benchmarks/ beside the other scripts that turn measurements into
README tables: it reads and writes checkout files (results.yaml, README.md) that the
installed package does not carry, and imports every family's presets, which segcore,
the engine beneath the families, does not import.

Exit status: 0 success, 2 bad input (one line naming the file or argument).
"""

import argparse
import datetime
import importlib
import json
import os
import sys
import tempfile

import yaml

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:  # the checkout, also from a venv without the package
    sys.path.insert(0, REPO_ROOT)

from segcore.errors import ConfigError  # noqa: E402
from segcore.exit_status import exit_status  # noqa: E402
from segcore.families import FAMILY_MODULES  # noqa: E402

RESULTS = os.path.join(REPO_ROOT, "results.yaml")
README = os.path.join(REPO_ROOT, "README.md")
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"

HEADER = """\
# Each preset's published figure and the figure measured here, keyed family/preset.
# Written by benchmarks/results.py: `record RUN_DIR --preset FAMILY/NAME --command "..."`
# fills `measured` from the run's metrics.json and config.json; `table --write-readme`
# makes the README's results table from this file. `paper`, `paper_reason` and `reason`
# are edited by hand; figures are as in metrics.json (fractions, 62.7 % = 0.627).
# Only this header is kept when the script writes the file.
"""

# (block of metrics.json or None for its top level, figure): the figures recorded.
FIGURES = (
    (None, "mean_iou"), (None, "pixel_accuracy"),
    ("isbi", "pixel_error"), ("isbi", "rand_error_best"), ("isbi", "warping_error"),
    ("road", "max_f"),
)
METRIC_NAMES = {
    "mean_iou": "mean IoU", "pixel_accuracy": "pixel acc.", "pixel_error": "pixel error",
    "rand_error": "Rand error", "rand_error_best": "Rand error (best threshold)",
    "warping_error": "warping error", "max_f": "MaxF",
}
# CPU flags that decide training speed (vector width, native bfloat16/fp16, AMX tiles).
SPEED_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16",
               "amx_tile", "amx_bf16")
# TrainConfig fields that change where a run writes and what it logs, not what it
# trains or measures: never overrides. (`name` is checked against the preset instead.)
IGNORED_FIELDS = ("name", "target", "runs_dir", "overlays", "export", "verbose",
                  "backup_every", "overwrite")
ENTRY_KEYS = ("paper", "paper_reason", "measured", "reason")
PAPER_KEYS = ("metric", "value", "split", "source", "note")
MEASURED_KEYS = ("figures", "baseline", "split", "budget", "overrides", "command", "date")


# --------------------------------------------------------------------------- presets


def all_presets():
    """{"family/name": TrainConfig} of every family's PRESETS, in family then preset order."""
    presets = {}
    for family, trainer in FAMILY_MODULES.items():
        module = importlib.import_module(trainer.rsplit(".", 1)[0] + ".presets")
        for name, preset in module.PRESETS.items():
            presets[f"{family}/{name}"] = preset
    return presets


def check_key(key, presets, where):
    """ConfigError naming `where` unless `key` is "family/name" of a preset."""
    family, sep, name = str(key).partition("/")
    if not sep or not family or not name:
        raise ConfigError(f"{where} {key!r}: expected FAMILY/NAME, e.g. fcn/voc_fcn8s")
    if family not in FAMILY_MODULES:
        raise ConfigError(f"{where} {key!r}: unknown family {family!r}; families: "
                          f"{', '.join(FAMILY_MODULES)}")
    if key not in presets:
        names = [k.partition("/")[2] for k in presets if k.startswith(family + "/")]
        raise ConfigError(f"{where} {key!r}: no such preset; {family} presets: {', '.join(names)}")


# --------------------------------------------------------------------------- results.yaml


def load_results(path, presets):
    """The entries of results.yaml at `path` ({key: entry}, file order), checked."""
    try:
        with open(path) as f:
            entries = yaml.safe_load(f)
    except OSError as error:
        raise ConfigError(f"{path}: cannot read ({error.strerror})") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(error).split())})") from None
    if not isinstance(entries, dict):
        raise ConfigError(f"{path}: expected a mapping of family/preset entries")
    for key, entry in entries.items():
        check_key(key, presets, f"{path}: entry")
        check_entry(entry, f"{path}: {key}")
    return entries


def check_entry(entry, where):
    """ConfigError naming `where` unless `entry` has the layout the module docstring gives."""
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a mapping with paper and measured")
    unknown = sorted(set(entry) - set(ENTRY_KEYS))
    if unknown or "paper" not in entry or "measured" not in entry:
        raise ConfigError(f"{where}: expected keys paper, measured (and paper_reason when paper "
                          f"is null, reason when measured is null); got {', '.join(entry)}")
    paper = entry["paper"]
    if paper is None:
        _check_text(entry.get("paper_reason"), f"{where}: paper is null, so paper_reason")
    elif not isinstance(paper, list) or not paper:
        raise ConfigError(f"{where}: paper must be a list of figures or null")
    else:
        for index, figure in enumerate(paper):
            here = f"{where}: paper[{index}]"
            if not isinstance(figure, dict) or set(figure) - set(PAPER_KEYS) \
                    or not {"metric", "value", "split", "source"} <= set(figure):
                raise ConfigError(f"{here}: expected metric, value, split, source (and note)")
            _check_number(figure["value"], f"{here}.value")
    measured = entry["measured"]
    if measured is None:
        _check_text(entry.get("reason"), f"{where}: measured is null, so reason")
    elif not isinstance(measured, dict) or sorted(measured) != sorted(MEASURED_KEYS):
        raise ConfigError(f"{where}: measured must be null or have {', '.join(MEASURED_KEYS)}")
    else:
        for block in ("figures", "baseline"):
            values = measured[block]
            if block == "baseline" and values is None:
                continue
            if not isinstance(values, dict) or not values:
                raise ConfigError(f"{where}: measured.{block} must map metric names to numbers")
            for metric, value in values.items():
                _check_number(value, f"{where}: measured.{block}.{metric}")


def _check_text(value, what):
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{what} must be a non-empty string")


def _check_number(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{what} must be a number, got {value!r}")


def dump_results(entries):
    """The text of results.yaml for `entries`: the header, then the entries in their order."""
    body = yaml.safe_dump(entries, sort_keys=False, default_flow_style=False,
                          allow_unicode=True, width=100)
    return HEADER + body


def save_results(path, entries):
    """Write `entries` to `path` atomically (a partial file never replaces the old one)."""
    directory = os.path.dirname(os.path.abspath(path))
    with tempfile.NamedTemporaryFile("w", dir=directory, prefix=".results-", suffix=".yaml",
                                     delete=False) as f:
        f.write(dump_results(entries))
    os.replace(f.name, path)


def with_entry(entries, key, entry, order):
    """`entries` with `key` set to `entry`: in place if present, else after the nearest
    key that comes before it in `order` (the presets' order), so the others keep theirs."""
    if key in entries:
        return {k: (entry if k == key else v) for k, v in entries.items()}
    before = [k for k in order[:order.index(key)] if k in entries]
    result = {} if before else {key: entry}
    for k, v in entries.items():
        result[k] = v
        if before and k == before[-1]:
            result[key] = entry
    return result


# --------------------------------------------------------------------------- a run directory


def read_json(path):
    try:
        with open(path) as f:
            document = json.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: missing (not a finished run directory)") from None
    except (OSError, ValueError) as error:
        raise ConfigError(f"{path}: not a readable JSON file ({error})") from None
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    return document


def check_run_is_preset(document, key, presets, where):
    """ConfigError naming `where` (config.json) unless the run is of preset `key`.

    The family must match; the name must be the preset's, or (a run renamed with
    --name) name no other preset of the family while the run's target is the preset's.
    """
    family, _, name = key.partition("/")
    run_family, run_name = document.get("family"), document.get("name")
    if run_family != family:
        raise ConfigError(f"{where}: a run of family {run_family!r} (name {run_name!r}), not of "
                          f"preset {key}")
    if run_name == name:
        return
    if f"{family}/{run_name}" in presets:
        raise ConfigError(f"{where}: run {run_name!r} is preset {family}/{run_name}, not {key}")
    if document.get("target") != presets[key].target:
        raise ConfigError(f"{where}: run {run_name!r} is not preset {key}: its name and its "
                          f"target differ from the preset's")


def overrides(document, preset):
    """{dotted field: the run's value} for every field of config.json `document` that
    differs from TrainConfig `preset` (dict fields key by key), IGNORED_FIELDS left out.

    Fields the run's config.json lacks are not compared. Absolute paths (a run's data_dir,
    init_from) are compared and written relative to the repository (`repo_relative`)."""
    expected = json.loads(preset.to_json())
    found = {}
    for field, want in expected.items():
        if field in IGNORED_FIELDS or field not in document:
            continue
        have = repo_relative(document[field])
        if isinstance(want, dict) and isinstance(have, dict):
            for sub in list(want) + [k for k in have if k not in want]:
                if have.get(sub) != want.get(sub):
                    found[f"{field}.{sub}"] = have.get(sub)
        elif have != want:
            found[field] = have
    return found


def repo_relative(value, root=REPO_ROOT):
    """`value` with every absolute path in it (a string, or one inside a dict or list)
    made relative to the repository root `root`, so results.yaml names no folder of the
    machine that ran it."""
    if isinstance(value, str) and os.path.isabs(value):
        return os.path.relpath(value, root)
    if isinstance(value, dict):
        return {k: repo_relative(v, root) for k, v in value.items()}
    if isinstance(value, list):
        return [repo_relative(v, root) for v in value]
    return value


def figures(block):
    """{metric: value} of FIGURES found in a metrics.json block (NaN, stored as null, left out)."""
    found = {}
    for group, metric in FIGURES:
        source = block if group is None else block.get(group)
        value = source.get(metric) if isinstance(source, dict) else None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            found[metric] = float(value)
    return found


def machine(cpuinfo="/proc/cpuinfo"):
    """{cpu, cores, flags} of a /proc/cpuinfo file: the model name, the logical cores and
    the SPEED_FLAGS it has."""
    model, cores, flags = None, 0, set()
    try:
        with open(cpuinfo) as f:
            for line in f:
                field, _, value = line.partition(":")
                field = field.strip()
                if field == "processor":
                    cores += 1
                elif field == "model name" and model is None:
                    model = value.strip()
                elif field == "flags" and not flags:
                    flags = set(value.split())
    except OSError as error:
        raise ConfigError(f"--cpuinfo {cpuinfo}: cannot read ({error.strerror})") from None
    return {"cpu": model or "unknown", "cores": cores or os.cpu_count(),
            "flags": [flag for flag in SPEED_FLAGS if flag in flags]}


def measurement(run_dir, key, presets, command, date=None, cpuinfo="/proc/cpuinfo"):
    """The `measured` record of the finished run in `run_dir`, a run of preset `key`."""
    config_path = os.path.join(run_dir, "config.json")
    metrics_path = os.path.join(run_dir, "metrics.json")
    document, metrics = read_json(config_path), read_json(metrics_path)
    check_run_is_preset(document, key, presets, config_path)
    found = figures(metrics)
    if "mean_iou" not in found:
        raise ConfigError(f"{metrics_path}: no mean_iou (not the metrics of a training run)")
    for field in ("num_images", "train_seconds"):
        if not isinstance(metrics.get(field), (int, float)):
            raise ConfigError(f"{metrics_path}: no {field}")
    resolved = document.get("resolved") or {}
    if "dtype_policy" not in resolved:
        raise ConfigError(f"{config_path}: no resolved.dtype_policy (not written by a "
                          "training run)")
    baseline = figures(metrics["baseline"]) if isinstance(metrics.get("baseline"), dict) else {}
    # The training itself (model.fit) when the run recorded it, else the whole run.
    seconds = metrics.get("fit_seconds", metrics["train_seconds"])
    budget = {"train_minutes": round(seconds / 60.0, 1),
              "run_minutes": round(metrics["train_seconds"] / 60.0, 1),
              "machine": machine(cpuinfo),
              "precision": resolved["dtype_policy"],
              "replicas": resolved.get("replicas", 1)}
    if resolved.get("workers", 1) > 1:
        budget["workers"] = resolved["workers"]
    if date is None:
        date = datetime.date.fromtimestamp(os.path.getmtime(metrics_path)).isoformat()
    return {
        "figures": found,
        "baseline": baseline or None,
        "split": {"dataset": document.get("dataset"), "split": document.get("val_split"),
                  "num_images": int(metrics["num_images"])},
        "budget": budget,
        "overrides": overrides(document, presets[key]),
        "command": command,
        "date": date,
    }


def record(run_dir, key, command, results=RESULTS, date=None, cpuinfo="/proc/cpuinfo"):
    """Write the measurement of `run_dir` into the entry `key` of `results`; return the entry.

    An entry missing for a new preset is created with paper null and its target quoted
    as paper_reason, after the preset's predecessors."""
    presets = all_presets()
    check_key(key, presets, "--preset")
    if not command.strip():
        raise ConfigError("--command must not be empty")
    if date is not None:
        try:
            date = datetime.date.fromisoformat(date).isoformat()
        except ValueError:
            raise ConfigError(f"--date {date!r}: expected YYYY-MM-DD") from None
    entries = load_results(results, presets)
    measured = measurement(run_dir, key, presets, command, date, cpuinfo)
    entry = dict(entries.get(key) or {
        "paper": None,
        "paper_reason": f"not transcribed yet; the preset's target: {presets[key].target}"})
    entry.pop("reason", None)
    entry["measured"] = measured
    save_results(results, with_entry(entries, key, entry, list(presets)))
    return entry


# --------------------------------------------------------------------------- the table


def render_table(entries, presets):
    """The README's Markdown results table of `entries`, one row per preset in `presets`
    order (ConfigError naming the presets results.yaml has no entry for)."""
    missing = [key for key in presets if key not in entries]
    if missing:
        raise ConfigError(f"results.yaml: no entry for {', '.join(missing)} (add its paper "
                          "figure, or paper null with paper_reason, and measured null with "
                          "reason)")
    lines = ["| preset | paper figure | measured here (baseline) | split | budget | command |",
             "|---|---|---|---|---|---|"]
    for key in presets:
        entry = entries[key]
        measured = entry["measured"]
        cells = [f"`{key}`", _paper_cell(entry)]
        if measured is None:
            family, _, name = key.partition("/")
            cells += [f"not measured: {entry['reason']}", "-", "-",
                      f"`python -m {FAMILY_MODULES[family]} --preset {name}`"]
        else:
            cells += [_measured_cell(measured), _split_cell(measured["split"]),
                      _budget_cell(measured), f"`{measured['command']}`"]
        lines.append("| " + " | ".join(_escape(cell) for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def _paper_cell(entry):
    if entry["paper"] is None:
        return f"none: {entry['paper_reason']}"
    groups = []  # consecutive figures of the same split, note and source share one phrase
    for figure in entry["paper"]:
        where = (figure["split"], figure.get("note"), figure["source"])
        text = f"{_metric(figure['metric'])} {figure['value']:g}"
        if groups and groups[-1][0] == where:
            groups[-1][1].append(text)
        else:
            groups.append((where, [text]))
    phrases = []
    for (split, note, source), texts in groups:
        phrases.append(f"{', '.join(texts)} on {split}" + (f", {note}" if note else "")
                       + f" [{source}]")
    return "; ".join(phrases)


def _measured_cell(measured):
    baseline = measured["baseline"] or {}
    texts = []
    for index, (metric, value) in enumerate(measured["figures"].items()):
        shown = f"**{value:.3g}**" if index == 0 else f"{value:.3g}"
        text = f"{_metric(metric)} {shown}"
        if metric in baseline:
            text += f" ({baseline[metric]:.3g})"
        texts.append(text)
    cell = ", ".join(texts)
    if not baseline:
        cell += " (no baseline recorded)"
    if measured["overrides"]:
        cell += "; overrides: " + ", ".join(
            f"{field}={json.dumps(value)}" for field, value in measured["overrides"].items())
    return cell


def _split_cell(split):
    return f"{split['dataset']} {split['split']}, {split['num_images']} images"


def _budget_cell(measured):
    budget = measured["budget"]
    host = budget["machine"]
    flags = f" ({', '.join(host['flags'])})" if host["flags"] else ""
    text = (f"{budget['train_minutes']:g} min, {budget['precision']}, {host['cpu']}, "
            f"{host['cores']} cores{flags}")
    if budget.get("replicas", 1) > 1:
        text += f", {budget['replicas']} replicas"
    if budget.get("workers", 1) > 1:
        text += f", {budget['workers']} workers"
    return f"{text}; {measured['date']}"


def _metric(name):
    return METRIC_NAMES.get(name, name)


def _escape(cell):
    return " ".join(str(cell).split()).replace("|", "\\|")


def write_readme(readme, table):
    """Replace the text between README's BEGIN and END markers with `table`."""
    try:
        with open(readme) as f:
            text = f.read()
    except OSError as error:
        raise ConfigError(f"{readme}: cannot read ({error.strerror})") from None
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise ConfigError(f"{readme}: expected one {BEGIN} line, then one {END} line")
    head, rest = text.split(BEGIN)
    _, tail = rest.split(END)
    with open(readme, "w") as f:
        f.write(f"{head}{BEGIN}\n{table}{END}{tail}")


def readme_table(readme):
    """The text between README's markers (without the newline after BEGIN)."""
    with open(readme) as f:
        text = f.read()
    return text.split(BEGIN, 1)[1].split(END, 1)[0].removeprefix("\n")


# --------------------------------------------------------------------------- command line


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="results.py", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default=RESULTS, metavar="FILE",
                        help="the results file (default: results.yaml at the repository root)")
    commands = parser.add_subparsers(dest="command_name", required=True)
    rec = commands.add_parser("record", help="record a finished run's figures in results.yaml")
    rec.add_argument("run_dir", metavar="RUN_DIR",
                     help="a finished run directory (metrics.json, config.json)")
    rec.add_argument("--preset", required=True, metavar="FAMILY/NAME",
                     help="the preset the run is of, e.g. fcn/synthetic_fcn8s")
    rec.add_argument("--command", required=True, help="the command line that made the run")
    rec.add_argument("--date", default=None, metavar="YYYY-MM-DD",
                     help="date of the run (default: metrics.json's modification date)")
    rec.add_argument("--cpuinfo", default="/proc/cpuinfo", metavar="FILE",
                     help="/proc/cpuinfo of the machine that trained the run (default: this one's)")
    tab = commands.add_parser("table", help="print the README's results table")
    tab.add_argument("--write-readme", action="store_true",
                     help=f"replace the table between {BEGIN} and {END} in README.md")
    tab.add_argument("--readme", default=README, metavar="FILE", help="default: README.md")
    return parser.parse_args(argv)


def run(args):
    if args.command_name == "record":
        entry = record(args.run_dir, args.preset, args.command, args.results, args.date,
                       args.cpuinfo)
        print(f"{args.results}: {args.preset}: {json.dumps(entry['measured']['figures'])}")
        return 0
    presets = all_presets()
    table = render_table(load_results(args.results, presets), presets)
    if args.write_readme:
        write_readme(args.readme, table)
        print(f"{args.readme}: results table written ({len(presets)} presets)")
    else:
        sys.stdout.write(table)
    return 0


def main(argv=None):
    args = parse_args(argv)
    return exit_status("results.py", lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
