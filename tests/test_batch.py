"""Batched generation: pictures made several per pipeline call keep their own seeds and recipes, are remade bit for
bit by regenerate (which remakes their batch), differ from the same picture made alone only by rounding, and stop
as a batch."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

import imagegen_nb as ig
from imagegen_nb import tasks
from imagegen_nb.recipes import INFO_KEY

FAST = dict(num_inference_steps=4, progress=False)


def _calls():
    """A Run that counts pipeline calls and the batch each step sees."""
    seen = {"calls": 0, "batches": []}

    def on_step(run, step):
        if step.index == 0:
            seen["batches"].append(int(step.latents.shape[0]))

    run = ig.Run(on_step=on_step, on_start=lambda run: seen.__setitem__("calls", seen["calls"] + 1))
    return run, seen


def _sketch():
    im = Image.new("RGB", (64, 64), "black")
    ImageDraw.Draw(im).ellipse([16, 16, 48, 48], fill="white")
    return im


def test_chunks_keep_seeds_prompts_and_record_their_batch(pixels):
    run, seen = _calls()
    images = ig.generate(["a red circle", "a blue square"], seed=3, num_images=3, batch_size=4, run=run, **FAST)
    assert seen == {"calls": 2, "batches": [4, 2]}
    recipes = [ig.recipe(i) for i in images]
    assert [r["seed"] for r in recipes] == [3, 4, 5, 6, 7, 8]
    assert [r["prompt"] for r in recipes] == ["a red circle"] * 3 + ["a blue square"] * 3
    first = ["a red circle"] * 3 + ["a blue square"]
    assert [r["batch"] for r in recipes] == [
        {"index": j, "prompts": first, "seeds": [3, 4, 5, 6]} for j in range(4)] + [
        {"index": j, "prompts": ["a blue square"] * 2, "seeds": [7, 8]} for j in range(2)]
    assert "Batch size: 4, Batch pos: 1" in ig.Recipe.from_dict(recipes[1]).parameters()
    assert len({pixels(i).tobytes() for i in images}) == 6  # every picture its own noise


def test_default_is_one_per_call_on_cpu_and_auto_batches(pixels):
    run, seen = _calls()
    alone = ig.generate("two green triangles", seed=40, num_images=3, run=run, **FAST)
    assert seen["calls"] == 3 and all(ig.recipe(i)["batch"] is None for i in alone)
    run, seen = _calls()
    auto = ig.generate("two green triangles", seed=40, num_images=10, batch_size="auto", run=run, **FAST)
    assert seen["batches"] == [tasks.CPU_BATCH, 10 - tasks.CPU_BATCH]
    # What the CPU does: batched matrix products round differently in the last bits, so a batched picture is the
    # picture made alone up to a step of 1/255 here and there, never more than 2.
    for a, b in zip(alone, auto):
        assert np.abs(pixels(a) - pixels(b)).max() <= 2


def test_regenerate_remakes_the_batch_bit_identical(pixels, tmp_path):
    images = ig.generate(["a red circle", "a blue square", "a yellow triangle"], seed=11, batch_size=3, **FAST)
    for k in (0, 2):
        again = ig.regenerate(images[k])
        assert (pixels(again) == pixels(images[k])).all()
        assert ig.recipe(again) == ig.recipe(images[k])
    path = ig.save(images[1], tmp_path / "b.png")
    assert (pixels(ig.regenerate(path)) == pixels(images[1])).all()
    # batch_size=1 makes it alone: the same picture as ig.generate with its own seed and prompt
    alone = ig.regenerate(images[1], batch_size=1)
    assert ig.recipe(alone)["batch"] is None
    assert (pixels(alone) == pixels(ig.generate("a blue square", seed=12, **FAST))).all()
    assert np.abs(pixels(alone) - pixels(images[1])).max() <= 2


def test_a_damaged_batch_is_a_recipe_error(tmp_path):
    image = ig.generate("a red circle", seed=3, num_images=2, batch_size=2, **FAST)[1]
    import json

    good = {"index": 1, "prompts": ["a red circle"] * 2, "seeds": [3, 4]}
    for bad in ({**good, "index": 5}, {**good, "prompts": ["a"], "seeds": [3]}, {"index": 0},
                {**good, "prompts": ["a", 3]}, {**good, "seeds": [3, -1]}, {**good, "seeds": [3, 5]},
                {**good, "prompts": ["a red circle", "a blue square"]}, "two"):
        data = json.loads(image.info[INFO_KEY])
        data["batch"] = bad
        image.info[INFO_KEY] = json.dumps(data)
        with pytest.raises(ig.RecipeError):
            ig.regenerate(image)


@pytest.mark.parametrize("value, error, words", [
    ("big", ValueError, "batch_size must be None, 'auto' or a whole number"),
    (0, ValueError, "batch_size must be at least 1"),
    (2.5, TypeError, "batch_size must be a whole number"),
    (True, TypeError, "batch_size must be a whole number"),
    (65, ValueError, "ig.limits.max_images"),
])
def test_batch_size_is_checked_before_any_work(value, error, words):
    run, seen = _calls()
    with pytest.raises(error, match=words.replace("(", r"\(")):
        ig.generate("a red circle", seed=0, batch_size=value, run=run, **FAST)
    assert seen["calls"] == 0
    assert ig.generate("a red circle", seed=0, batch_size=np.int64(2), **FAST).size == (64, 64)


def test_a_seed_list_gives_each_picture_its_seed(pixels):
    images = ig.generate(["a red circle", "a blue square"], seed=[9, 2], batch_size=2, **FAST)
    assert [ig.recipe(i)["seed"] for i in images] == [9, 2]
    assert (pixels(ig.regenerate(images[1])) == pixels(images[1])).all()
    assert np.abs(pixels(images[1]) - pixels(ig.generate("a blue square", seed=2, **FAST))).max() <= 2
    with pytest.raises(ValueError, match="seed is a list of 1 seeds for 2 pictures"):
        ig.generate(["a red circle", "a blue square"], seed=[9])
    with pytest.raises(ValueError, match="seed must be at least 0"):
        ig.generate(["a red circle", "a blue square"], seed=[9, -2])


def test_stop_mid_batch_keeps_the_finished_batch_and_stops_the_current_one(pixels):
    calls = []

    def stop(run, step):
        if len(calls) == 2 and step.index == 1:
            run.stop()

    run = ig.Run(on_step=stop, on_start=lambda run: calls.append(1))
    images = ig.generate("a red circle", seed=20, num_images=5, batch_size=2, run=run, num_inference_steps=6,
                         progress=False)
    assert len(calls) == 2 and len(images) == 4  # the third batch never starts
    stopped = [ig.recipe(i)["stopped_at"] for i in images]
    assert stopped == [None, None, 2, 2]
    full = ig.generate("a red circle", seed=20, num_images=2, batch_size=2, num_inference_steps=6, progress=False)
    assert all((pixels(a) == pixels(b)).all() for a, b in zip(full, images[:2]))
    again = ig.regenerate(images[3])  # stopped at the same step, in the same batch
    assert ig.recipe(again)["stopped_at"] == 2 and (pixels(again) == pixels(images[3])).all()


def test_listeners_and_previews_see_the_batch_and_traces_stay_at_one():
    from imagegen_nb.previews import preview_image

    shapes, previews = [], []

    def listen(run, step):
        shapes.append(tuple(step.latents.shape))
        previews.append(preview_image(step, run.pipe).size)
        assert step.x0.shape == step.latents.shape
        halves = step.guidance_halves
        assert halves is None or halves[0].shape == step.latents.shape

    ig.generate("a red circle", seed=0, num_images=3, batch_size=3, run=ig.Run(on_step=listen, keep_raw_output=True),
                **FAST)
    assert shapes == [(3, 4, 16, 16)] * 4 and previews == [(16, 16)] * 4
    tr = ig.trace("a red circle", seed=0, num_inference_steps=3, batch_size="auto")
    assert tuple(tr.latents.shape) == (3, 4, 16, 16) and ig.recipe(tr.image)["batch"] is None


def test_edit_batches_each_picture_from_its_own_seed(pixels):
    base = ig.generate("a red square", seed=1, **FAST)
    images = ig.edit(base, "a blue square", strength=0.7, seed=5, num_images=3, batch_size=3, **FAST)
    assert [ig.recipe(i)["seed"] for i in images] == [5, 6, 7]
    assert (pixels(ig.regenerate(images[2])) == pixels(images[2])).all()
    alone = ig.edit(base, "a blue square", strength=0.7, seed=7, **FAST)
    assert np.abs(pixels(alone) - pixels(images[2])).max() <= 2


def test_inpaint_pastes_back_every_picture_of_a_batch(pixels):
    base = ig.generate("a red circle on a white background", seed=2, **FAST)
    mask = np.zeros((64, 64), bool)
    mask[:, 32:] = True
    images = ig.inpaint(base, mask, "a blue square", seed=2, num_images=3, batch_size=3, **FAST)
    for image in images:
        assert (pixels(image)[:, :28] == pixels(base)[:, :28]).all()
    assert len({pixels(i)[:, 36:].tobytes() for i in images}) == 3
    assert (pixels(ig.regenerate(images[1])) == pixels(images[1])).all()
    alone = ig.inpaint(base, mask, "a blue square", seed=3, **FAST)
    assert np.abs(pixels(alone) - pixels(images[1])).max() <= 2


def test_control_gives_every_picture_of_a_batch_the_map(pixels, tmp_path):
    images = ig.control(_sketch(), ["a red circle", "a blue circle"], seed=4, batch_size=2, **FAST)
    maps = [i.info["imagegen_nb.inputs"]["control_image"] for i in images]
    assert all((pixels(m) == pixels(maps[0])).all() for m in maps)
    assert [ig.recipe(i)["prompt"] for i in images] == ["a red circle", "a blue circle"]
    path = ig.save(images[1], tmp_path / "c.png")
    assert (pixels(ig.regenerate(path)) == pixels(images[1])).all()
    alone = ig.control(_sketch(), "a blue circle", seed=5, **FAST)
    assert np.abs(pixels(alone) - pixels(images[1])).max() <= 2


def test_gpu_batch_size_comes_from_free_memory(monkeypatch):
    from types import SimpleNamespace

    from imagegen_nb import devices, registry

    family = registry.resolve(None)[1]
    entry = SimpleNamespace(placement=SimpleNamespace(device="cuda"), nbytes=1_000_000_000)
    size = family.default_size
    monkeypatch.setattr(devices, "free_gpu_bytes", lambda device: 10_000_000_000)
    # each picture at the default size is reckoned at 30% of the weights: 0.8 x 10 GB / 0.3 GB = 26, capped at 16
    assert tasks._chunk_size(None, entry, object(), family, size, size, 64) == tasks.GPU_MAX_BATCH
    assert tasks._chunk_size("auto", entry, object(), family, 2 * size, 2 * size, 64) == 6
    assert tasks._chunk_size(None, entry, object(), family, size, size, 3) == 3
    monkeypatch.setattr(devices, "free_gpu_bytes", lambda device: 100_000_000)
    assert tasks._chunk_size(None, entry, object(), family, size, size, 64) == 1
    assert tasks._chunk_size(5, entry, object(), family, size, size, 64) == 5
    cpu = SimpleNamespace(placement=SimpleNamespace(device="cpu"), nbytes=1)
    assert tasks._chunk_size(None, cpu, object(), family, 64, 64, 64) == 1
    assert tasks._chunk_size("auto", cpu, object(), family, 64, 64, 64) == tasks.CPU_BATCH
    assert tasks._chunk_size("auto", cpu, object(), family, 1024, 1024, 64) == 1
