"""Every notebook runs top to bottom in a fresh kernel without an error, and shows pictures where it should.

Each runs from a copy in a temporary folder (the committed outputs stay as they are), through the same functions as
`scripts/execute_notebooks.py`, with IMAGEGEN_NB_QUICK=1 (the training notebook trains a few steps), one CPU thread
and no network. Code cells tagged "image" must show a picture, cells tagged "widget" a widget.
"""

from __future__ import annotations

import importlib.util
import shutil
import time
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
COLAB = "https://colab.research.google.com/github/imagegen-nb/imagegen_nb/blob/main/notebooks/{}"
OURS = {"quickstart", "studio", "inpainting", "controlnet", "train_a_tiny_model", "real_models"}


def _script():
    spec = importlib.util.spec_from_file_location("execute_notebooks", ROOT / "scripts" / "execute_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _shows_picture(cell) -> bool:
    for output in cell.get("outputs", []):
        data = output.get("data", {})
        if "image/png" in data or "image/jpeg" in data or "<img" in data.get("text/html", ""):
            return True
    return False


def _shows_widget(cell) -> bool:
    return any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in cell.get("outputs", []))


def test_the_notebooks_are_there():
    assert OURS <= {p.stem for p in NOTEBOOKS}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_opens_in_colab_and_installs_only_there(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    first, install = nb.cells[0], nb.cells[1]
    assert first.cell_type == "markdown" and COLAB.format(path.name) in first.source, \
        f"{path.name}: the first cell should carry the Open in Colab badge linking to {COLAB.format(path.name)}"
    assert install.cell_type == "code" and 'if "google.colab" in sys.modules' in install.source, \
        f"{path.name}: the first code cell should install the library in Colab only"


@pytest.fixture(scope="module")
def runner():
    script = _script()
    with script.with_kernel():  # a "python3" kernelspec for this interpreter, first on JUPYTER_PATH
        yield script


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_runs_top_to_bottom(path, runner, tmp_path):
    work = tmp_path / path.name
    shutil.copy(path, work)
    env = runner.kernel_env(quick=True, threads=1)
    env["HF_HUB_OFFLINE"] = "1"
    started = time.perf_counter()
    nb = runner.execute(work, cwd=tmp_path, env=env, timeout=600)  # raises, naming the cell, if one fails
    seconds = time.perf_counter() - started

    code = [c for c in nb.cells if c.cell_type == "code"]
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, f"{path.name}: {errors[0]['ename']}: {errors[0]['evalue']}"
    for i, cell in enumerate(code):
        first_line = cell.source.splitlines()[0] if cell.source else ""
        if "image" in _tags(cell):
            assert _shows_picture(cell), f"{path.name}, code cell {i} ({first_line!r}) should show a picture"
        if "widget" in _tags(cell):
            assert _shows_widget(cell), f"{path.name}, code cell {i} ({first_line!r}) should show a widget"
    if path.stem in OURS:
        assert any("image" in _tags(c) for c in code), f"{path.name} has no cell tagged 'image'"
    print(f"{path.name}: {seconds:.0f} s")
