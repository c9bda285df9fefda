"""segcore.notebook: which data each notebook scale reads, and the one-line stop of the
paper scale when the complete dataset is absent."""

import json
import logging
import os

import pytest

from segcore import notebook
from segcore.errors import ConfigError


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    """A repository root with an empty data/ folder, and a samples folder holding isbi2012."""
    root, samples = tmp_path / "repo", tmp_path / "shared" / "datasets"
    (root / "data").mkdir(parents=True)
    (samples / "isbi2012").mkdir(parents=True)
    monkeypatch.setattr(notebook, "repo_root", lambda: str(root))
    monkeypatch.setenv("SEGCORE_DATASETS", str(samples))
    return root, samples


def test_sample_and_ci_read_the_samples_and_say_so(checkout):
    root, samples = checkout
    for scale in ("sample", "ci"):
        said = []
        assert notebook.find_data("isbi2012", scale, echo=said.append) == (
            str(samples / "isbi2012"), "samples")
        assert said == [
            f"isbi2012: the real samples in ../shared/datasets/isbi2012 ({scale} scale)"]


def test_paper_stops_with_the_download_command_and_never_falls_back(checkout):
    root, _ = checkout
    with pytest.raises(notebook.NotebookStop) as stop:
        notebook.find_data("isbi2012", "paper", echo=pytest.fail)
    assert str(stop.value) == (
        "the paper scale needs the complete isbi2012 dataset in data/isbi2012, which is absent; "
        "fetch it with `python -m segcore.data download isbi2012 --data-dir data/isbi2012` "
        "(or run at SCALE = \"sample\")")
    assert stop.value._render_traceback_() == [f"NotebookStop: {stop.value}"]


def test_paper_reads_the_complete_dataset_under_data(checkout):
    root, _ = checkout
    (root / "data" / "CamVid").mkdir()
    said = []
    assert notebook.find_data("camvid", "paper", echo=said.append) == (
        str(root / "data" / "CamVid"), "full")
    assert said == ["camvid: the full dataset in data/CamVid"]


def test_unknown_scale_and_dataset_are_named(checkout):
    with pytest.raises(ConfigError, match="one of ci, sample, paper, full, got 'big'"):
        notebook.find_data("isbi2012", "big")
    with pytest.raises(ConfigError, match="'mnist'"):
        notebook.find_data("mnist", "sample")


def test_relative_writes_no_folder_of_the_machine(checkout):
    root, _ = checkout
    text = notebook.relative(f"run in {os.path.join(root, 'runs', 'x')}, data in "
                             f"{os.path.join(os.path.dirname(root), 'shared', 'datasets')}")
    assert text == "run in runs/x, data in ../shared/datasets"


@pytest.fixture
def restored_logging():
    """Leaves the root handlers and the library loggers' filters as they were."""
    loggers = [logging.getLogger()] + [logging.getLogger(n) for n in notebook.LIBRARY_LOGGERS]
    before = [(list(logger.handlers), list(logger.filters)) for logger in loggers]
    yield
    for logger, (handlers, filters) in zip(loggers, before):
        logger.handlers[:], logger.filters[:] = handlers, filters


def test_log_relative_rewrites_library_records_too(checkout, restored_logging):
    root, _ = checkout
    notebook.log_relative()
    notebook.log_relative()   # twice: one filter per logger
    path = os.path.join(root, "runs", "r", "saved_model", "1", "assets")
    for name in notebook.LIBRARY_LOGGERS:   # what the logger's own handlers then print
        logger = logging.getLogger(name)
        record = logger.makeRecord(name, logging.INFO, __file__, 1, "Assets written to: %s",
                                   (path,), None)
        assert logger.filter(record)
        assert record.getMessage() == "Assets written to: runs/r/saved_model/1/assets"
        assert sum(isinstance(f, notebook._RelativePaths) for f in logger.filters) == 1


def test_a_finished_run_of_the_same_experiment_is_read_not_trained(checkout, monkeypatch):
    from segcore import training
    from unet_tf.presets import PRESETS

    root, _ = checkout
    config = PRESETS["smoke"].replace(runs_dir=str(root / "runs"), name="04_smoke")
    run = root / "runs" / "04_smoke"
    run.mkdir(parents=True)
    document = {**json.loads(config.to_json()), "resolved": {"dtype_policy": "float32"}}
    (run / "config.json").write_text(json.dumps(document))
    (run / "metrics.json").write_text(json.dumps({"fit_seconds": 90.0, "pixel_accuracy": 0.9}))
    trained = []
    monkeypatch.setattr(training, "train_and_evaluate",
                        lambda config, family: trained.append(config.epochs) or {"trained": True})
    said = []
    assert notebook.train_or_load(config, None, echo=said.append) == {
        "fit_seconds": 90.0, "pixel_accuracy": 0.9}
    assert said == ["runs/04_smoke: finished run of this experiment, read (trained in 1.5 min; "
                    "delete the folder to train it again)"] and trained == []
    # another experiment in that folder (or no metrics.json yet) is trained
    assert notebook.train_or_load(config.replace(epochs=config.epochs + 1), None) == {
        "trained": True}
    (run / "metrics.json").unlink()
    assert notebook.train_or_load(config, None) == {"trained": True}
    assert trained == [config.epochs + 1, config.epochs]
