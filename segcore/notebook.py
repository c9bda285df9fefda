"""Where the reproduction notebooks (`notebooks/`) find data and write runs.

Scale (`SEGCORE_NOTEBOOK_SCALE`, the notebooks' `parameters` cell):

* "ci": seconds to a minute on 2 CPU cores (tests/test_notebooks.py), the real
  samples, a handful of steps;
* "sample" (the default, and what the committed outputs show): the real samples
  under `SEGCORE_DATASETS` (default ``../shared/datasets`` from the repository
  root) with a stated CPU budget;
* "paper": the preset's whole recipe on the complete dataset under the
  repository's `data/` folder (its documented layout, data/README.md). When that
  dataset is absent the notebook stops at once (`find_data` raises `NotebookStop`,
  shown as one line naming the folder and the command that fetches it); it never
  falls back to the samples.
* "full": the older name of the notebooks not yet moved to the three scales: the
  complete dataset when present, else the samples.

Which data was used is printed.
Runs go to `SEGCORE_NOTEBOOK_RUNS` (default ``runs/notebooks`` of the repository).
`train_or_load` reads a finished run of the same experiment instead of training it
again (an hour-long budget run is trained once; delete its folder to train it anew).
Committed outputs name no folder of the machine that ran them: `relative` writes
paths relative to the repository, and `log_relative` prints the engine's log
records that way.
"""

import json
import logging
import os

from segcore.errors import ConfigError, DataError

SCALES = ("ci", "sample", "paper", "full")

# dataset -> (path under data/, path under the samples folder)
LOCATIONS = {
    "kitti_road": ("data_road", os.path.join("kitti_road", "data_road")),
    "isbi2012": ("isbi2012", "isbi2012"),
    "camvid": ("CamVid", "camvid"),
    "voc2012": (os.path.join("VOCdevkit", "VOC2012"), "voc2012"),
    "cityscapes": ("cityscapes", "cityscapes"),
}


def repo_root():
    """The repository this module belongs to."""
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class NotebookStop(Exception):
    """A notebook cannot run at its scale here (a missing dataset or weights file).

    IPython shows it as its one-line message, without a traceback."""

    def _render_traceback_(self):
        return [f"NotebookStop: {self}"]


def check_scale(scale):
    if scale not in SCALES:
        raise ConfigError(
            f"SEGCORE_NOTEBOOK_SCALE must be one of {', '.join(SCALES)}, got {scale!r}")
    return scale


def samples_root():
    """SEGCORE_DATASETS, or ../shared/datasets from the repository root."""
    return os.path.abspath(os.environ.get("SEGCORE_DATASETS")
                           or os.path.join(repo_root(), os.pardir, "shared", "datasets"))


def weights_root():
    """SEGCORE_WEIGHTS, or the `weights` folder beside the samples folder."""
    return os.path.abspath(os.environ.get("SEGCORE_WEIGHTS")
                           or os.path.join(samples_root(), os.pardir, "weights"))


def runs_dir():
    path = os.path.abspath(os.environ.get("SEGCORE_NOTEBOOK_RUNS")
                           or os.path.join(repo_root(), "runs", "notebooks"))
    os.makedirs(path, exist_ok=True)
    return path


def find_data(name, scale, echo=print):
    """(data_dir, "full" or "samples") of dataset `name` at `scale`; says which in `echo`.

    "paper" needs the complete dataset under data/ (`NotebookStop` naming the folder and
    `python -m segcore.data download` otherwise); "ci" and "sample" read the samples."""
    check_scale(scale)
    if name not in LOCATIONS:
        raise ConfigError(f"no notebook location for dataset {name!r}; expected one of "
                          f"{', '.join(LOCATIONS)}")
    full = os.path.join(repo_root(), "data", LOCATIONS[name][0])
    samples = os.path.join(samples_root(), LOCATIONS[name][1])
    if scale in ("paper", "full") and os.path.isdir(full):
        echo(relative(f"{name}: the full dataset in {full}"))
        return full, "full"
    if scale == "paper":
        raise NotebookStop(relative(
            f"the paper scale needs the complete {name} dataset in {full}, which is absent; "
            f"fetch it with `python -m segcore.data download {name} --data-dir {full}` "
            "(or run at SCALE = \"sample\")"))
    if not os.path.isdir(samples):
        raise DataError(f"{name}: neither {full} nor the samples {samples} exist "
                        "(set SEGCORE_DATASETS)")
    why = f"{scale} scale" if scale != "full" else f"full scale, but {full} is absent"
    echo(relative(f"{name}: the real samples in {samples} ({why})"))
    return samples, "samples"


def relative(text):
    """`text` with the paths of this repository, of its parent folder and of the home
    folder written relative to the repository ("runs/...", "../shared/...", "~/...")."""
    root = repo_root()
    for folder, shown in ((root, ""), (os.path.dirname(root), ".."),
                          (os.path.expanduser("~"), "~")):
        text = text.replace(folder + os.sep, shown + os.sep if shown else "")
    return text


class _RelativeFormatter(logging.Formatter):
    def format(self, record):
        return relative(super().format(record))


class _RelativePaths(logging.Filter):
    """Rewrites a record's message with `relative` paths, keeping its logger's format."""

    def filter(self, record):
        record.msg, record.args = relative(record.getMessage()), None
        return True


# Loggers of the libraries that print file paths with their own handlers (TensorFlow's
# "Assets written to: ..." when a SavedModel is written).
LIBRARY_LOGGERS = ("tensorflow", "absl")


def log_relative():
    """Print log records to the notebook with `relative` paths (the engine adds no
    console handler of its own when the root logger has one); the records of
    LIBRARY_LOGGERS are rewritten the same way."""
    root = logging.getLogger()
    if not any(isinstance(h.formatter, _RelativeFormatter) for h in root.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(_RelativeFormatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _RelativePaths) for f in logger.filters):
            logger.addFilter(_RelativePaths())


def show(fig=None):
    """Display a matplotlib figure in the notebook and close it.

    `plt.show()` draws nothing once the engine has switched matplotlib to its
    Agg backend (`segcore.visualize` does, to write PNGs without a display);
    IPython's `display` shows the figure whatever the backend.
    """
    import matplotlib.pyplot as plt
    from IPython.display import display

    fig = fig or plt.gcf()
    display(fig)
    plt.close(fig)


def release_memory():
    """Free the previous networks of this kernel (Keras' global state, then Python's garbage):
    several 134M-parameter FCNs one after another otherwise accumulate (GBs)."""
    import gc

    import keras

    keras.backend.clear_session()
    gc.collect()


def train_or_load(config, family, echo=print):
    """The final metrics of `config`'s run.

    A finished run directory of the same experiment (its metrics.json written, its
    config.json equal to `config` in every field that defines the experiment,
    `segcore.resume.config_differences`) is read, and a line says so; otherwise the run
    is trained (`segcore.training.train_and_evaluate`, which resumes an interrupted run
    of the same experiment and refuses a folder holding another one).
    """
    from segcore.resume import config_differences
    from segcore.training import train_and_evaluate

    run_dir = os.path.join(config.runs_dir, config.name)
    metrics_path = os.path.join(run_dir, "metrics.json")
    config_path = os.path.join(run_dir, "config.json")
    if os.path.isfile(metrics_path) and os.path.isfile(config_path):
        with open(config_path) as f:
            document = json.load(f)
        if not config_differences(document, config):
            with open(metrics_path) as f:
                metrics = json.load(f)
            trained = (f"trained in {metrics['fit_seconds'] / 60:.1f} min; "
                       if "fit_seconds" in metrics else "")
            echo(f"{relative(run_dir)}: finished run of this experiment, read ({trained}"
                 "delete the folder to train it again)")
            return metrics
    return train_and_evaluate(config, family)
