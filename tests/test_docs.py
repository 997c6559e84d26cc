"""The documentation site builds with `mkdocs build --strict` (every warning an error: broken links, unknown
cross-references, docstrings griffe cannot read) and has its key pages; every module of the package is in the API
reference."""

from __future__ import annotations

import importlib.util
import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import imagegen_nb

ROOT = Path(__file__).resolve().parents[1]

KEY_PAGES = [
    "index.html",
    "getting-started/index.html",
    "notebooks/index.html",
    "tasks/generate/index.html",
    "tasks/edit/index.html",
    "tasks/inpaint/index.html",
    "tasks/control/index.html",
    "recipes/index.html",
    "models/index.html",
    "cache-and-devices/index.html",
    "widgets/index.html",
    "teaching/index.html",
    "builtin-model/index.html",
    "builtin-model/card/index.html",
    "command-line/index.html",
    "multi-gpu/index.html",
    "reference/index.html",
    "reference/tasks/index.html",
]


def _hook(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "docs" / "hooks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")  # Material's notice about MkDocs 2 is not about this site
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
         "--site-dir", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stderr[-6000:]}"
    return out


def test_site_builds_strict_with_its_key_pages(site):
    missing = [page for page in KEY_PAGES if not (site / page).exists()]
    assert not missing, f"pages missing from the built site: {missing}"


def test_the_api_reference_is_rendered_from_docstrings(site):
    html = (site / "reference" / "tasks" / "index.html").read_text(encoding="utf-8")
    for name in ("generate", "edit", "inpaint", "control"):
        assert f'id="imagegen_nb.tasks.{name}"' in html
    assert "num_inference_steps" in html


def test_doctest_examples_show_as_code_not_quotes(site):
    for page in (site / "reference").glob("*/index.html"):
        html = page.read_text(encoding="utf-8")
        assert "<blockquote" not in html, f"{page.parent.name}: a >>> example rendered as a quote"


def test_every_module_is_in_the_api_reference():
    documented = set()
    for page in (ROOT / "docs" / "reference").glob("*.md"):
        documented |= set(re.findall(r"^::: ([\w.]+)", page.read_text(encoding="utf-8"), flags=re.M))
    modules = {m.name for m in pkgutil.walk_packages(imagegen_nb.__path__, "imagegen_nb.")
               if not any(part.startswith("_") for part in m.name.split("."))}
    missing = sorted(modules - documented)
    assert not missing, f"add `::: <module>` for {missing} to a page of docs/reference/"


def test_doctest_fences():
    fence = _hook("doctest_fences").fence_doctests
    text = "Some prose.\n>>> 1 + 1\n2\n>>> [7, 8]\n[7, 8]\n\nMore prose.\n```python\n>>> kept\n```"
    assert fence(text) == ("Some prose.\n\n```pycon\n>>> 1 + 1\n2\n>>> [7, 8]\n[7, 8]\n```\n\nMore prose.\n"
                           "```python\n>>> kept\n```")


def test_model_card_page(tmp_path):
    from imagegen_nb.tiny import card, evaluate, world

    hook = _hook("model_card")
    assert "No model card yet" in hook.card_markdown(tmp_path / "missing.md")
    result = {"scores": {c: 0.5 for c in world.CATEGORIES}, "overall": 0.5, "held_out": {}, "checker_accuracy": 1.0,
              "seconds_per_image": 0.01, "prompts_per_category": 16, "images_per_prompt": 4}
    path = tmp_path / "README.md"
    path.write_text(card.render(result, evaluate.table(result), {}))
    text = hook.card_markdown(path)
    assert text.splitlines()[0].startswith("## ")  # the card's title sits under the page's
    assert "| category | score |" in text
    assert "<!-- model-card -->" not in hook.on_page_markdown("# Card\n\n<!-- model-card -->\n")
    assert "| epsilon prediction;" in text and "zero terminal SNR" not in text  # no run config: SD 1.5's defaults
    trained = card.render(result, evaluate.table(result), {
        "arch": {"text_film": True}, "train": {"prediction_type": "v_prediction", "zero_terminal_snr": True,
                                               "sides": 0.5}})
    assert "| v prediction;" in trained and "text FiLM" in trained and "rescaled to zero terminal SNR" in trained
    assert "which side of the picture each word's object is on" in trained


# -- the models tables say what the registry says ----------------------------------------------------------------

def _table(path: Path, header: str) -> list[dict[str, str]]:
    """The rows of the markdown table in `path` whose header line starts with `header`, as column -> cell."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    columns = [c.strip() for c in lines[start].strip("|").split("|")]
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(columns, (c.strip() for c in line.strip().strip("|").split("|")))))
    return rows


def _families(cell: str) -> list:
    """The registry families of the model ids in a table cell (`None` is the built-in model)."""
    from imagegen_nb import registry

    ids = re.findall(r"`([^`]+)`", cell)
    assert ids, f"no model id in {cell!r}"
    found = []
    for model_id in ids:
        if model_id == "None":
            found.append(registry.FAMILIES[registry.BUILTIN])
        elif model_id.strip("'\"") in registry.FAMILIES and not registry.FAMILIES[model_id.strip("'\"")].repo_ids:
            found.append(registry.FAMILIES[model_id.strip("'\"")])  # a built-in model named by its name
        else:
            assert model_id.lower() in registry._BY_REPO, f"{model_id!r} is not a Hub id the registry knows"
            found.append(registry._BY_REPO[model_id.lower()])
    return found


def _tasks_text(family) -> str:
    """How the docs' tables say which tasks a family supports."""
    from imagegen_nb import registry

    if set(family.tasks) == set(registry.TASKS) and family.controlnets:
        return "all four"
    if "control" in family.tasks and not family.controlnets:
        others = [t for t in family.tasks if t != "control"]
        return f"{', '.join(others)}; control with your own `controlnet=`"
    return ", ".join(family.tasks)


def test_readme_models_table_follows_the_registry():
    from imagegen_nb import registry

    rows = _table(ROOT / "README.md", "| family | example id | tasks |")
    listed = set()
    for row in rows:
        for family in _families(row["example id"]):
            listed.add(family.name)
            assert row["tasks"] == _tasks_text(family), f"README's {row['family']} row: {family.name}"
    hub = {f.name for f in registry.models() if f.repo_ids}
    assert hub <= listed, f"README's models table lacks {sorted(hub - listed)}"


def test_models_page_table_follows_the_registry():
    from imagegen_nb import registry

    rows = _table(ROOT / "docs" / "models.md", "| family | example id |")
    listed = set()
    for row in rows:
        (family,) = _families(row["example id"])
        listed.add(family.name)
        defaults = f"{family.default_size}, {family.default_steps}, {family.default_guidance}"
        assert row["default size, steps, guidance"] == defaults, f"docs/models.md, {row['family']}"
        assert row["tasks"] == _tasks_text(family), f"docs/models.md, {row['family']}"
        assert row["default ControlNet kinds"] == (", ".join(family.controlnets) or "none"), row["family"]
    missing = {f.name for f in registry.models()} - listed
    assert not missing, f"docs/models.md's table lacks the families {sorted(missing)}"


def test_recipe_examples_show_the_built_in_defaults():
    from imagegen_nb import registry

    tiny = registry.FAMILIES[registry.BUILTIN]
    text = (ROOT / "docs" / "recipes.md").read_text(encoding="utf-8")
    assert f"'num_inference_steps': {tiny.default_steps}, 'guidance_scale': {tiny.default_guidance}" in text
    assert re.findall(r"^Steps: (\d+), Sampler: ", text, flags=re.M) == [str(tiny.default_steps)]  # A1111 string
    assert re.findall(r"code\(\)\)\s+# ig\.generate\('a red circle', num_inference_steps=(\d+)", text) == [
        str(tiny.default_steps)]
