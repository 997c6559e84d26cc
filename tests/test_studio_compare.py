"""The Studio's comparison row: `ig.compare` on the panel's settings over one argument's values, the grid shown,
its cells in the gallery with their recipes; bad values said in the panel; Stop keeps only finished cells."""

from __future__ import annotations

import numpy as np
import pytest

import imagegen_nb as ig

STEPS = 4


pytestmark = pytest.mark.usefixtures("one_thread")


def _studio(**kw):
    studio = ig.Studio()
    studio.kwargs = {"prompt": "a red circle and a blue square", "seed": 3, "num_inference_steps": STEPS, **kw}
    return studio


def test_compare_makes_one_cell_per_value_and_keeps_them_in_the_gallery():
    studio = _studio()
    studio.compare_row.axis.value, studio.compare_row.values.value = "guidance_scale", "1, 4, 8"
    studio.compare_row.button.click(); studio.wait()
    assert studio.error is None
    grid = studio.comparison
    assert grid.shape == (3,) and [name for name, _ in grid.axes] == ["guidance_scale"]
    assert len(studio.results) == 3
    for cell, guidance in zip(grid.cells, (1.0, 4.0, 8.0)):
        assert ig.recipe(cell)["guidance_scale"] == guidance and ig.recipe(cell)["seed"] == 3
        alone = ig.generate("a red circle and a blue square", seed=3, num_inference_steps=STEPS,
                            guidance_scale=guidance, progress=False)
        assert (np.asarray(cell) == np.asarray(alone)).all()
    assert studio.run_view.progress_label.value.startswith("done in")
    assert len(studio.run_view.image_view.value) > 0  # the grid is shown


def test_bad_comparisons_are_said_in_the_panel():
    studio = _studio()
    row = studio.compare_row
    for axis, values, message in [("strength", "0.3, 0.6", "strength is an argument of edit and inpaint"),
                                  ("seed", "1", "give two or more values"),
                                  ("seed", "1, 2.5", "seed takes whole numbers"),
                                  ("guidance_scale", "2, lots", "'lots' is not a number"),
                                  ("scheduler", "ddim, eulr", "did you mean 'euler'"),
                                  ("style_scale", "0, 1", "style_scale needs a style picture")]:
        row.axis.value, row.values.value = axis, values
        row.button.click(); studio.wait()
        assert message in str(studio.error), (axis, studio.error)
        assert studio.results == [] and not studio.busy


def test_stop_during_a_comparison_keeps_only_finished_cells():
    studio = _studio()
    studio.compare_row.axis.value, studio.compare_row.values.value = "seed", "0, 1, 2"
    studio.listeners.append(lambda run, step: run.stop() if step.index == 1 else None)
    studio.compare(background=False)
    assert studio.error is None
    assert studio.results == []  # the one cell in progress was stopped, the others never started
    assert "Stopped" in studio.message.value
    assert studio.run_view.progress_label.value.startswith("stopped after step 2")
