"""Execute every reproduction notebook (notebooks/*.ipynb) at SEGCORE_NOTEBOOK_SCALE=ci.

A notebook fails the test when a cell raises (its `assert` cells included), when
it has no cell tagged `parameters` (papermill's convention) that reads
SEGCORE_NOTEBOOK_SCALE, or when it runs longer than its budget: the notebook's
metadata ``segcore.ci_budget_seconds``, else DEFAULT_BUDGET. New notebooks are
picked up by the glob. The kernel is the interpreter running the tests (a
kernelspec written to a temporary JUPYTER_PATH), with the repository first on
PYTHONPATH and the notebooks folder as working directory; runs go to a
temporary SEGCORE_NOTEBOOK_RUNS. Executed notebooks are not written back.
"""

import glob
import json
import os
import re
import sys
import time

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import REPO_ROOT

NOTEBOOKS = sorted(glob.glob(os.path.join(REPO_ROOT, "notebooks", "*.ipynb")))
DEFAULT_BUDGET = 150.0
KERNEL_NAME = "segcore-test-python"


def parameters_cell(notebook):
    for cell in notebook.cells:
        if cell.cell_type == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            return cell
    return None


def test_there_are_notebooks():
    names = [os.path.basename(p) for p in NOTEBOOKS]
    assert len(names) >= 7 and all(n[:2].isdigit() for n in names), names


@pytest.fixture(scope="module")
def kernel_path(tmp_path_factory):
    root = tmp_path_factory.mktemp("jupyter")
    spec_dir = root / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "segcore tests", "language": "python"}))
    return str(root)


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[os.path.basename(p) for p in NOTEBOOKS])
def test_notebook_runs_at_ci_scale(path, kernel_path, datasets_root, tmp_path, monkeypatch):
    notebook = nbformat.read(path, as_version=4)
    cell = parameters_cell(notebook)
    assert cell is not None, f"{path}: no code cell tagged 'parameters'"
    assert "SEGCORE_NOTEBOOK_SCALE" in cell.source, (
        f"{path}: its parameters cell does not read SEGCORE_NOTEBOOK_SCALE")
    budget = float(notebook.metadata.get("segcore", {}).get("ci_budget_seconds", DEFAULT_BUDGET))
    monkeypatch.setenv("JUPYTER_PATH", kernel_path)
    monkeypatch.setenv("SEGCORE_NOTEBOOK_SCALE", "ci")
    monkeypatch.setenv("SEGCORE_NOTEBOOK_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [REPO_ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    client = NotebookClient(notebook, kernel_name=KERNEL_NAME, timeout=int(budget),
                            resources={"metadata": {"path": os.path.dirname(path)}})
    started = time.monotonic()
    client.execute()
    seconds = time.monotonic() - started
    assert seconds <= budget, (
        f"{os.path.basename(path)} took {seconds:.0f} s, budget {budget:.0f} s")


# A folder of the machine that ran a notebook, as its outputs would show it.
MACHINE_PATH = re.compile(r"(?<![\w.~])/(?:work|tmp|home|root|Users|mnt|data|check)/[\w.-]")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_committed_outputs_name_no_folder_of_the_machine(path):
    """Committed outputs show paths relative to the repository (segcore.notebook.relative)."""
    notebook = nbformat.read(path, as_version=4)
    found = []
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            texts = [output.get("text", "")] + [output.get("data", {}).get("text/plain", "")]
            found += [f"cell {index}: {m.group(0)}..."
                      for t in texts for m in MACHINE_PATH.finditer(t)]
    assert not found, f"{os.path.basename(path)}: {found}"


# `assert 0 <= x <= 1`, `assert 0.0 <= miou`, `assert x <= 1.0`: ranges any output passes
RANGE_ASSERT = re.compile(
    r"\bassert\b.*(\b0(\.0)?\s*<=|<=\s*1(\.0)?\b(?!\.\d)|>=\s*0(\.0)?\b(?!\.\d))")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_no_assert_is_a_range_check(path):
    """A notebook's asserts check results (against a baseline, a golden value, a target),
    never a range that any output, trained or not, satisfies."""
    notebook = nbformat.read(path, as_version=4)
    found = [f"cell {index}: {line.strip()}" for index, cell in enumerate(notebook.cells)
             if cell.cell_type == "code" for line in cell.source.splitlines()
             if RANGE_ASSERT.search(line)]
    assert not found, f"{os.path.basename(path)}: {found}"


def test_the_range_check_pattern_finds_range_checks():
    for line in ["assert 0 <= m['mean_iou'] <= 1", "assert 0.0 <= max_f", "assert ap <= 1.0",
                 "assert acc >= 0, acc"]:
        assert RANGE_ASSERT.search(line), line
    for line in ["assert miou >= 0.50, miou", "assert err <= 0.5 * base", "assert n <= 10",
                 "x = 0 <= y"]:
        assert not RANGE_ASSERT.search(line), line
