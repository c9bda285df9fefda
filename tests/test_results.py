"""results.yaml and benchmarks/results.py: an entry for every preset of every family, `record`
writing a run's exact figures, and the README's results table made from the committed file."""

import datetime
import importlib.util
import json
import os
import shutil

import pytest

from deeplab_tf.presets import PRESETS as DEEPLAB_PRESETS
from fcn_tf.presets import PRESETS as FCN_PRESETS
from unet_tf.presets import PRESETS as UNET_PRESETS

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_results_module():
    path = os.path.join(REPO_ROOT, "benchmarks", "results.py")
    spec = importlib.util.spec_from_file_location("bench_results", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


results = load_results_module()
PRESETS = results.all_presets()

CPUINFO = """\
processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse sse2 avx avx2 fma avx512f avx512_vnni avx512_bf16 avx512_fp16 amx_tile amx_bf16

processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse sse2 avx avx2 fma avx512f avx512_vnni avx512_bf16 avx512_fp16 amx_tile amx_bf16
"""

ISBI_METRICS = {
    "pixel_accuracy": 0.8312, "mean_accuracy": 0.71, "mean_iou": 0.6123,
    "frequency_weighted_iou": 0.70, "num_images": 4, "train_seconds": 312.0, "fit_seconds": 291.0,
    "class_names": ["cell", "membrane"], "history": {"loss": [0.7, 0.6]},
    "isbi": {"slices": 4, "threshold": 0.5, "pixel_error": 0.1688, "foreground_iou": 0.733,
             "rand_error": 0.52, "warping_error": 0.0359, "rand_error_best": 0.407,
             "rand_error_best_threshold": 0.7},
    "baseline": {"predictor": "majority class 'cell' everywhere", "class": 0,
                 "pixel_accuracy": 0.78, "mean_accuracy": 0.5, "mean_iou": 0.39,
                 "frequency_weighted_iou": 0.61,
                 "isbi": {"pixel_error": 0.22, "rand_error_best": 0.61, "warping_error": 0.0512}},
}


def write_run(run_dir, key, changes=None, model=None, augment=None, metrics=None,
              date=(2025, 3, 4)):
    """A finished run directory of preset `key`: config.json as the trainer writes it
    (with `changes` applied), metrics.json, and metrics.json's date."""
    document = json.loads(PRESETS[key].to_json())
    document.update(changes or {})
    document["model"].update(model or {})
    document["augment"].update(augment or {})
    document["resolved"] = {"dtype_policy": "float32", "export_dtype_policy": "float32",
                            "replicas": 1, "num_classes": 2, "workers": 1}
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, "config.json"), "w") as f:
        json.dump(document, f)
    metrics_path = os.path.join(run_dir, "metrics.json")
    with open(metrics_path, "w") as f:
        json.dump(ISBI_METRICS if metrics is None else metrics, f)
    stamp = datetime.datetime(*date, 12, 0).timestamp()
    os.utime(metrics_path, (stamp, stamp))
    return str(run_dir)


@pytest.fixture
def results_copy(tmp_path):
    path = tmp_path / "results.yaml"
    shutil.copy(results.RESULTS, path)
    return str(path)


@pytest.fixture
def cpuinfo(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO)
    return str(path)


def one_error_line(capsys):
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("results.py: error: ")
    return lines[0]


# --------------------------------------------------------------------------- the committed file


def test_every_preset_of_every_family_has_an_entry():
    entries = results.load_results(results.RESULTS, PRESETS)  # checks every entry's layout
    expected = ([f"fcn/{name}" for name in FCN_PRESETS] + [f"unet/{name}" for name in UNET_PRESETS]
                + [f"deeplab/{name}" for name in DEEPLAB_PRESETS])
    assert list(PRESETS) == expected
    missing = [key for key in expected if key not in entries]
    assert not missing, (f"results.yaml has no entry for {', '.join(missing)}: add its paper "
                         "figure (or paper: null with paper_reason) and measured: null with reason")
    assert sorted(entries) == sorted(expected)
    # Figures as the papers and the preset targets state them.
    assert entries["fcn/voc_fcn8s"]["paper"][0] == {
        "metric": "mean_iou", "value": 0.627,
        "split": "VOC2011 val subset (seg11valid, 736 images)",
        "source": "Long et al., CVPR 2015, Table 2"}
    assert [f["value"] for f in entries["unet/isbi_unet"]["paper"]] == [0.0611, 0.0382, 0.000353]
    assert entries["deeplab/voc_xception65_os16"]["paper"][0]["value"] == 0.822
    assert entries["fcn/synthetic_fcn8s"]["paper"] is None
    assert "val mean IoU >= 0.8" in entries["fcn/synthetic_fcn8s"]["paper_reason"]


def test_results_yaml_is_as_the_script_writes_it():
    """So `record` changes nothing but the entry it records."""
    with open(results.RESULTS) as f:
        text = f.read()
    assert text == results.dump_results(results.load_results(results.RESULTS, PRESETS))


def test_readme_table_is_the_one_made_from_results_yaml(capsys):
    entries = results.load_results(results.RESULTS, PRESETS)
    table = results.render_table(entries, PRESETS)
    assert results.readme_table(results.README) == table, \
        "README's results table differs: run python benchmarks/results.py table --write-readme"
    assert results.main(["table"]) == 0
    assert capsys.readouterr().out == table
    lines = table.splitlines()
    assert len(lines) == 2 + len(PRESETS)
    first = entries["fcn/synthetic_fcn8s"]
    assert lines[2] == (f"| `fcn/synthetic_fcn8s` | none: {first['paper_reason']} | not measured: "
                        f"{first['reason']} | - | - | `python -m fcn_tf.train --preset "
                        "synthetic_fcn8s` |")
    assert "| mean IoU 0.594 on VOC2011 val subset (seg11valid, 736 images) [Long et al., CVPR " \
           "2015, Table 2]; mean IoU 0.636 on" in lines[5]


# --------------------------------------------------------------------------- record


def test_record_writes_exact_figures_baseline_overrides_and_budget(tmp_path, results_copy,
                                                                   cpuinfo):
    before = results.load_results(results_copy, PRESETS)
    run_dir = write_run(tmp_path / "run", "unet/isbi_unet_small",
                        changes={"epochs": 2, "data_dir": "../shared/datasets/isbi2012",
                                 "precision": "fp32", "runs_dir": "/elsewhere", "overlays": 0},
                        model={"base_filters": 8}, augment={"brightness": 10.0})
    command = "python -m unet_tf.train --preset isbi_unet_small --epochs 2 --base-filters 8"
    assert results.main(["--results", results_copy, "record", run_dir, "--preset",
                         "unet/isbi_unet_small", "--command", command, "--cpuinfo", cpuinfo]) == 0
    after = results.load_results(results_copy, PRESETS)
    assert after["unet/isbi_unet_small"] == {
        "paper": before["unet/isbi_unet_small"]["paper"],
        "measured": {
            "figures": {"mean_iou": 0.6123, "pixel_accuracy": 0.8312, "pixel_error": 0.1688,
                        "rand_error_best": 0.407, "warping_error": 0.0359},
            "baseline": {"mean_iou": 0.39, "pixel_accuracy": 0.78, "pixel_error": 0.22,
                         "rand_error_best": 0.61, "warping_error": 0.0512},
            "split": {"dataset": "isbi2012", "split": "val", "num_images": 4},
            "budget": {"train_minutes": 4.8, "run_minutes": 5.2,
                       "machine": {"cpu": "Intel(R) Xeon(R) Platinum 8480+", "cores": 2,
                                   "flags": ["avx2", "fma", "avx512f", "avx512_vnni",
                                             "avx512_bf16", "avx512_fp16", "amx_tile",
                                             "amx_bf16"]},
                       "precision": "float32", "replicas": 1},
            # runs_dir and overlays change where the run writes, not what it measures.
            "overrides": {"model.base_filters": 8, "data_dir": "../shared/datasets/isbi2012",
                          "epochs": 2, "augment.brightness": 10.0, "precision": "fp32"},
            "command": command,
            "date": "2025-03-04",
        },
    }
    assert list(after) == list(before)  # the other entries keep their place and content
    assert {k: v for k, v in after.items() if k != "unet/isbi_unet_small"} == \
        {k: v for k, v in before.items() if k != "unet/isbi_unet_small"}

    row = next(line for line in results.render_table(after, PRESETS).splitlines()
               if line.startswith("| `unet/isbi_unet_small` |"))
    cells = [cell.strip() for cell in row.strip("|").split(" | ")]
    assert cells[2:] == [
        "mean IoU **0.612** (0.39), pixel acc. 0.831 (0.78), pixel error 0.169 (0.22), "
        "Rand error (best threshold) 0.407 (0.61), warping error 0.0359 (0.0512); overrides: "
        'model.base_filters=8, data_dir="../shared/datasets/isbi2012", epochs=2, '
        'augment.brightness=10.0, precision="fp32"',
        "isbi2012 val, 4 images",
        "4.8 min, float32, Intel(R) Xeon(R) Platinum 8480+, 2 cores (avx2, fma, avx512f, "
        "avx512_vnni, avx512_bf16, avx512_fp16, amx_tile, amx_bf16); 2025-03-04",
        f"`{command}`",
    ]


def test_record_of_a_renamed_run_of_the_preset(tmp_path, results_copy, cpuinfo):
    """A run under another --name is the preset's when its target is; no overrides, no baseline,
    KITTI's MaxF from the road block, and a --date given on the command line."""
    metrics = {"mean_iou": 0.884, "pixel_accuracy": 0.961, "num_images": 40,
               "train_seconds": 245.4, "road": {"max_f": 0.903, "ap": 0.897}}
    run_dir = write_run(tmp_path / "mine", "fcn/synthetic_fcn8s", changes={"name": "mine"},
                        metrics=metrics)
    entry = results.record(run_dir, "fcn/synthetic_fcn8s", "python -m fcn_tf.train --name mine",
                           results_copy, date="2025-06-01", cpuinfo=cpuinfo)
    assert "reason" not in entry and entry["paper"] is None
    assert entry["measured"]["figures"] == {"mean_iou": 0.884, "pixel_accuracy": 0.961,
                                            "max_f": 0.903}
    assert entry["measured"]["baseline"] is None
    assert entry["measured"]["overrides"] == {}
    assert entry["measured"]["budget"]["train_minutes"] == 4.1
    assert entry["measured"]["date"] == "2025-06-01"
    assert results.load_results(results_copy, PRESETS)["fcn/synthetic_fcn8s"] == entry


def test_overrides_name_no_folder_of_the_machine(tmp_path, results_copy, cpuinfo):
    """Absolute paths of a run (a notebook's data_dir and init_from) are recorded relative to
    the repository; one that is the preset's own path once relative is no override."""
    assert PRESETS["unet/isbi_unet_small"].data_dir == "data/isbi2012"
    run_dir = write_run(tmp_path / "run", "unet/isbi_unet_small",
                        changes={"data_dir": os.path.join(results.REPO_ROOT, "data", "isbi2012"),
                                 "init_from": os.path.join(os.path.dirname(results.REPO_ROOT),
                                                           "shared", "runs", "base")})
    entry = results.record(run_dir, "unet/isbi_unet_small", "python -m unet_tf.train", results_copy,
                           cpuinfo=cpuinfo)
    assert entry["measured"]["overrides"] == {"init_from": "../shared/runs/base"}
    assert results.repo_relative({"a": [os.path.join(results.REPO_ROOT, "x")], "b": "data/y"}) == \
        {"a": ["x"], "b": "data/y"}


def test_a_new_preset_entry_goes_after_its_predecessors():
    entries = {"fcn/synthetic_fcn8s": 1, "fcn/kitti_fcn8s": 3, "unet/smoke": 4}
    order = ["fcn/synthetic_fcn8s", "fcn/smoke", "fcn/kitti_fcn8s", "unet/synthetic_unet",
             "unet/smoke"]
    assert list(results.with_entry(entries, "fcn/smoke", 2, order)) == \
        ["fcn/synthetic_fcn8s", "fcn/smoke", "fcn/kitti_fcn8s", "unet/smoke"]
    assert list(results.with_entry({"fcn/smoke": 2}, "fcn/synthetic_fcn8s", 1, order)) == \
        ["fcn/synthetic_fcn8s", "fcn/smoke"]
    assert results.with_entry(entries, "fcn/kitti_fcn8s", 30, order) == \
        {"fcn/synthetic_fcn8s": 1, "fcn/kitti_fcn8s": 30, "unet/smoke": 4}


@pytest.mark.parametrize("run_key, changes, preset, message", [
    ("unet/isbi_unet", {}, "fcn/voc_fcn8s",
     "a run of family 'unet' (name 'isbi_unet'), not of preset fcn/voc_fcn8s"),
    ("fcn/voc_fcn16s", {}, "fcn/voc_fcn8s",
     "run 'voc_fcn16s' is preset fcn/voc_fcn16s, not fcn/voc_fcn8s"),
    ("fcn/voc_fcn8s", {"name": "mine", "target": "something else"}, "fcn/voc_fcn8s",
     "run 'mine' is not preset fcn/voc_fcn8s: its name and its target differ from the preset's"),
])
def test_record_of_another_preset_is_a_one_line_error(tmp_path, results_copy, cpuinfo, capsys,
                                                      run_key, changes, preset, message):
    run_dir = write_run(tmp_path / "run", run_key, changes=changes)
    with open(results_copy) as f:
        before = f.read()
    assert results.main(["--results", results_copy, "record", run_dir, "--preset", preset,
                         "--command", "x", "--cpuinfo", cpuinfo]) == 2
    config_path = os.path.join(run_dir, "config.json")
    assert one_error_line(capsys) == f"results.py: error: {config_path}: {message}"
    with open(results_copy) as f:
        assert f.read() == before


def test_a_run_directory_without_metrics_is_a_one_line_error(tmp_path, results_copy, capsys):
    run_dir = write_run(tmp_path / "run", "fcn/smoke")
    os.remove(os.path.join(run_dir, "metrics.json"))
    assert results.main(["--results", results_copy, "record", run_dir, "--preset", "fcn/smoke",
                         "--command", "x"]) == 2
    metrics_path = os.path.join(run_dir, "metrics.json")
    assert one_error_line(capsys) == (f"results.py: error: {metrics_path}: missing (not a "
                                      "finished run directory)")


@pytest.mark.parametrize("preset, message", [
    ("fcn/nope", "--preset 'fcn/nope': no such preset; fcn presets: " + ", ".join(FCN_PRESETS)),
    ("voc_fcn8s", "--preset 'voc_fcn8s': expected FAMILY/NAME, e.g. fcn/voc_fcn8s"),
    ("segnet/voc", "--preset 'segnet/voc': unknown family 'segnet'; families: fcn, unet, deeplab"),
])
def test_unknown_preset_names_are_errors(tmp_path, results_copy, capsys, preset, message):
    run_dir = write_run(tmp_path / "run", "fcn/voc_fcn8s")
    assert results.main(["--results", results_copy, "record", run_dir, "--preset", preset,
                         "--command", "x"]) == 2
    assert one_error_line(capsys) == f"results.py: error: {message}"


def test_an_entry_of_no_preset_in_results_yaml_is_an_error(tmp_path, capsys):
    path = tmp_path / "results.yaml"
    path.write_text(results.dump_results({"fcn/nope": {"paper": None, "paper_reason": "x",
                                                       "measured": None, "reason": "y"}}))
    assert results.main(["--results", str(path), "table"]) == 2
    assert one_error_line(capsys) == (f"results.py: error: {path}: entry 'fcn/nope': no such "
                                      f"preset; fcn presets: {', '.join(FCN_PRESETS)}")


def test_a_null_measurement_without_reason_is_an_error(tmp_path, capsys):
    path = tmp_path / "results.yaml"
    path.write_text(results.dump_results({"fcn/smoke": {"paper": None, "paper_reason": "x",
                                                        "measured": None}}))
    assert results.main(["--results", str(path), "table"]) == 2
    assert one_error_line(capsys) == (f"results.py: error: {path}: fcn/smoke: measured is null, "
                                      "so reason must be a non-empty string")


# --------------------------------------------------------------------------- the README


def test_write_readme_replaces_only_the_text_between_the_markers(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(f"# A\n\nintro\n\n{results.BEGIN}\nold table\n{results.END}\n\n## B\n")
    assert results.main(["table", "--write-readme", "--readme", str(readme)]) == 0
    table = results.render_table(results.load_results(results.RESULTS, PRESETS), PRESETS)
    assert readme.read_text() == f"# A\n\nintro\n\n{results.BEGIN}\n{table}{results.END}\n\n## B\n"
    capsys.readouterr()
    readme.write_text("# no markers\n")
    assert results.main(["table", "--write-readme", "--readme", str(readme)]) == 2
    assert one_error_line(capsys) == (f"results.py: error: {readme}: expected one {results.BEGIN} "
                                      f"line, then one {results.END} line")
