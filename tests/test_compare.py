"""Comparison grids: each cell is the picture made alone with its arguments, the grid has the size its layout says,
its labels are drawn, and bad axes are refused before any picture is made."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

import imagegen_nb as ig

FAST = dict(num_inference_steps=4, progress=False)


def _counting_run():
    calls = []
    return ig.Run(on_start=lambda run: calls.append(1)), calls


def _cell_in_grid(comparison, i, j, k=0):
    """The cell's square of the grid picture, shrunk back to the cell's own size."""
    cell = comparison.cells[(i, j, k)[:len(comparison.axes)]]
    w, h = cell.width * comparison.scale, cell.height * comparison.scale
    box = (comparison.left + i * w, comparison.top + j * h, comparison.left + (i + 1) * w, comparison.top + (j + 1) * h)
    return comparison.images[k].crop(box).resize(cell.size, Image.NEAREST)


def test_cells_are_the_pictures_made_alone_and_the_grid_shows_them(pixels):
    grid = ig.compare("a red circle", seed=[0, 1], guidance_scale=[2.0, 6.0], **FAST)
    assert grid.shape == (2, 2) and [n for n, _ in grid.axes] == ["seed", "guidance_scale"]
    for i, seed in enumerate([0, 1]):
        for j, guidance in enumerate([2.0, 6.0]):
            alone = ig.generate("a red circle", seed=seed, guidance_scale=guidance, **FAST)
            assert (pixels(grid.cells[i, j]) == pixels(alone)).all()
            assert ig.recipe(grid.cells[i, j]) == ig.recipe(alone)
            assert (pixels(_cell_in_grid(grid, i, j)) == pixels(alone)).all()
    image = grid.image
    assert grid.scale == 2 and image.size == (grid.left + 2 * 64 * 2, grid.top + 2 * 64 * 2)
    strip = pixels(image)
    assert (strip[:grid.top, grid.left:] < 200).any()  # the X labels
    assert (strip[grid.top:, :grid.left] < 200).any()  # the Y labels
    assert grid._repr_png_()[:4] == b"\x89PNG" and "<img" in grid._repr_html_()


def test_cells_sharing_a_call_are_batched(pixels):
    run, calls = _counting_run()
    grid = ig.compare("a red circle", seed=[3, 4, 5], num_inference_steps=[3, 5], batch_size="auto", run=run,
                      progress=False)
    assert grid.shape == (3, 2) and len(calls) == 2  # one pipeline call per step count, the 3 seeds batched
    for i, seed in enumerate([3, 4, 5]):
        cell = grid.cells[i, 1]
        assert ig.recipe(cell)["seed"] == seed and ig.recipe(cell)["num_inference_steps"] == 5
        assert (pixels(ig.regenerate(cell)) == pixels(cell)).all()
        alone = ig.generate("a red circle", seed=seed, num_inference_steps=5, progress=False)
        assert np.abs(pixels(alone) - pixels(cell)).max() <= 2


def test_prompt_sr_and_prompt_lists_and_three_axes(pixels):
    grid = ig.compare("a red circle", prompt_sr=["red", "blue", "green"], scheduler=[None, "euler"],
                      guidance_scale=[4.0], seed=2, **FAST)
    assert grid.shape == (3, 2, 1) and len(grid.images) == 1
    assert [ig.recipe(grid.cells[i, 0, 0])["prompt"] for i in range(3)] == [
        "a red circle", "a blue circle", "a green circle"]
    alone = ig.generate("a green circle", seed=2, scheduler="euler", guidance_scale=4.0, **FAST)
    assert (pixels(grid.cells[2, 1, 0]) == pixels(alone)).all()
    assert (pixels(_cell_in_grid(grid, 2, 1)) == pixels(alone)).all()
    z = ig.compare(["a red circle", "a blue square"], seed=[0], guidance_scale=[2.0, 5.0], **FAST)
    assert z.shape == (2, 1, 2) and len(z.images) == 2
    assert (pixels(z.images[1])[:z.top] < 200).any()  # the Z title and X labels
    assert ig.recipe(z.cells[1, 0, 1])["prompt"] == "a blue square" and ig.recipe(z.cells[1, 0, 1])[
        "guidance_scale"] == 5.0
    one = ig.compare("a red circle", seed=7, **FAST)  # no axis: one cell
    assert one.shape == () and (pixels(one.cells[()]) == pixels(ig.generate("a red circle", seed=7, **FAST))).all()


def test_each_task(pixels):
    base = ig.generate("a red square", seed=1, **FAST)
    edit = ig.compare("a blue square", task="edit", image=base, strength=[0.5, 0.9], seed=3, **FAST)
    alone = ig.edit(base, "a blue square", strength=0.9, seed=3, **FAST)
    assert (pixels(edit.cells[1]) == pixels(alone)).all()
    mask = np.zeros((64, 64), bool)
    mask[:, 32:] = True
    inpaint = ig.compare("a blue circle", task="inpaint", image=base, mask=mask, seed=[0, 1], **FAST)
    assert (pixels(inpaint.cells[1]) == pixels(ig.inpaint(base, mask, "a blue circle", seed=1, **FAST))).all()
    assert (pixels(inpaint.cells[0])[:, :28] == pixels(base)[:, :28]).all()
    sketch = Image.new("RGB", (64, 64), "black")
    ImageDraw.Draw(sketch).ellipse([16, 16, 48, 48], fill="white")
    control = ig.compare("a red circle", task="control", control_image=sketch,
                         controlnet_conditioning_scale=[0.5, 1.0], seed=4, **FAST)
    assert (pixels(control.cells[0]) == pixels(
        ig.control(sketch, "a red circle", controlnet_conditioning_scale=0.5, seed=4, **FAST))).all()


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(seed=[0, 1], guidance_scale=[1.0, 2.0], scheduler=["ddim"], num_inference_steps=[2, 3]), ValueError,
     "at most 3 axes"),
    (dict(guidance_scale=[2.0, -1.0]), ValueError, "guidance_scale must be at least 0, not -1"),
    (dict(num_inference_steps=[4, 0]), ValueError, "num_inference_steps must be at least 1, not 0"),
    (dict(scheduler=["ddim", "euler-a"]), ValueError, "euler-a"),
    (dict(seed=[0, "1"]), TypeError, "seed must be a whole number"),
    (dict(seed=[]), ValueError, "the seed axis has no values"),
    (dict(prompt_sr=["purple", "blue"]), ValueError, "prompt_sr's first entry 'purple' is not in the prompt"),
    (dict(num_images=2), TypeError, "one picture per cell"),
    (dict(batch_size=[1, 2]), TypeError, "batch_size cannot be an axis"),
    (dict(task="paint"), ValueError, "task must be one of"),
    (dict(task="edit"), ValueError, "needs image="),
])
def test_bad_axes_are_refused_before_any_work(kwargs, error, words):
    run, calls = _counting_run()
    with pytest.raises(error, match=words):
        ig.compare("a red circle", run=run, progress=False, **kwargs)
    assert calls == []


def test_look_at_a_grid(tmp_path):
    """Writes a grid to look at (the path is printed on failure)."""
    grid = ig.compare("a red circle to the left of a blue square", seed=[0, 1, 2], guidance_scale=[1.0, 4.0],
                      **FAST)
    path = tmp_path / "grid.png"
    grid.image.save(path)
    assert Image.open(path).size == grid.image.size, path
