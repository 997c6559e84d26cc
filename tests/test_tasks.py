"""The four task functions on the built-in model: sizes, determinism, recipes, inpainting's untouched pixels."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

import imagegen_nb as ig


def test_generate_defaults_to_builtin_model(pixels):
    image = ig.generate("a red circle", seed=0)
    assert image.size == (64, 64) and image.mode == "RGB"
    r = ig.recipe(image)
    assert (r["model"], r["family"], r["task"], r["seed"]) == (None, "tiny", "generate", 0)
    assert r["num_inference_steps"] == ig.registry.FAMILIES["tiny"].default_steps
    # a picture, not a flat fill: background and at least one other colour
    assert pixels(image).reshape(-1, 3).std(0).max() > 10


def test_same_seed_same_pixels_other_seed_other_pixels(pixels):
    a = ig.generate("a blue square", seed=11)
    b = ig.generate("a blue square", seed=11)
    c = ig.generate("a blue square", seed=12)
    assert (pixels(a) == pixels(b)).all()
    assert (pixels(a) != pixels(c)).any()


def test_batch_images_have_own_seeds_and_remake_alone(pixels):
    images = ig.generate("two green triangles", seed=40, num_images=3)
    assert isinstance(images, list) and len(images) == 3
    assert [ig.recipe(i)["seed"] for i in images] == [40, 41, 42]
    alone = ig.generate("two green triangles", seed=41)
    assert (pixels(alone) == pixels(images[1])).all()
    assert "<img" in images._repr_html_() and images._repr_png_()[:4] == b"\x89PNG"


def test_prompt_list_gives_one_image_per_prompt():
    images = ig.generate(["a red circle", "a blue square"], seed=3)
    assert [ig.recipe(i)["prompt"] for i in images] == ["a red circle", "a blue square"]


def test_display_enlarges_without_changing_pixels(pixels):
    image = ig.generate("a red circle", seed=0)
    html = image._repr_html_()
    assert "pixelated" in html
    shown = Image.open(__import__("io").BytesIO(image._repr_png_()))
    assert shown.width >= 4 * image.width
    assert (pixels(shown.resize(image.size, Image.NEAREST)) == pixels(image)).all()


def test_save_writes_json_and_a1111_parameters_and_regenerates_bitwise(tmp_path, pixels):
    image = ig.generate("a yellow triangle", seed=5, guidance_scale=3.0, num_inference_steps=8)
    path = ig.save(image, tmp_path / "x.png")
    info = Image.open(path).info
    assert "Steps: 8" in info["parameters"] and "Seed: 5" in info["parameters"]
    assert ig.recipe(path)["guidance_scale"] == 3.0
    again = ig.regenerate(path)
    assert (pixels(again) == pixels(image)).all()


def test_scheduler_choice_is_recorded_and_changes_result(pixels):
    a = ig.generate("a pink circle", seed=1, scheduler="euler", num_inference_steps=10)
    b = ig.generate("a pink circle", seed=1, num_inference_steps=10)
    assert ig.recipe(a)["scheduler"] == "euler"
    assert (pixels(a) != pixels(b)).any()
    assert (pixels(ig.regenerate(a)) == pixels(a)).all()
    # the cached pipeline got its own scheduler back
    assert (pixels(ig.generate("a pink circle", seed=1, num_inference_steps=10)) == pixels(b)).all()


def test_edit_keeps_size_and_low_strength_stays_close(pixels):
    source = ig.generate("a red square on a white background", seed=2)
    near = ig.edit(source, "a blue square", strength=0.2, seed=2)
    far = ig.edit(source, "a blue square", strength=1.0, seed=2)
    assert near.size == source.size
    d_near = np.abs(pixels(near) - pixels(source)).mean()
    d_far = np.abs(pixels(far) - pixels(source)).mean()
    assert d_near < d_far
    assert ig.recipe(near)["strength"] == 0.2
    assert (pixels(ig.regenerate(near)) == pixels(near)).all()


def test_edit_converts_rgba_and_rounds_size():
    rgba = Image.new("RGBA", (70, 66), (0, 0, 0, 0))
    ImageDraw.Draw(rgba).ellipse([10, 10, 40, 40], fill=(220, 30, 30, 255))
    out = ig.edit(rgba, "a red circle", seed=0)
    assert out.size == (64, 64)


@pytest.mark.parametrize("kind", ["bool", "float", "uint8", "pil_rgb", "canvas"])
def test_inpaint_leaves_every_pixel_outside_the_mask(kind, pixels):
    base = ig.generate("a red circle on a white background", seed=4)
    m = np.zeros((64, 64), bool)
    m[16:48, 32:] = True
    mask = {"bool": m, "float": m.astype(np.float32), "uint8": m.astype(np.uint8) * 255,
            "pil_rgb": Image.fromarray(m.astype(np.uint8) * 255).convert("RGB"),
            "canvas": type("Canvas", (), {"mask": Image.fromarray(m.astype(np.uint8) * 255)})()}[kind]
    out = ig.inpaint(base, mask, "a blue square", seed=4, mask_blur=0)
    a, b = pixels(out), pixels(base)
    assert (a[~m] == b[~m]).all()
    assert (a[m] != b[m]).any()


def test_inpaint_feather_only_touches_pixels_near_the_mask(pixels):
    base = ig.generate("a green circle", seed=6)
    m = np.zeros((64, 64), bool)
    m[20:44, 20:44] = True
    out = ig.inpaint(base, m, "a blue square", seed=6, mask_blur=2)
    far = np.ones((64, 64), bool)
    far[12:52, 12:52] = False  # more than 3 sigma from the mask
    assert (pixels(out)[far] == pixels(base)[far]).all()
    assert ig.recipe(out)["mask_blur"] == 2


def test_inpaint_regenerates_with_its_inputs(pixels, tmp_path):
    base = ig.generate("a red circle", seed=8)
    m = np.zeros((64, 64), bool)
    m[:, :32] = True
    out = ig.inpaint(base, m, "a yellow square", seed=9)
    assert (pixels(ig.regenerate(out)) == pixels(out)).all()
    path = ig.save(out, tmp_path / "in.png")
    with pytest.raises(ValueError, match="needs its input image and mask"):
        ig.regenerate(path)
    assert (pixels(ig.regenerate(path, image=base, mask=m)) == pixels(out)).all()


def test_preprocess_canny_finds_the_edges_of_a_drawn_shape():
    im = Image.new("RGB", (64, 64), "white")
    ImageDraw.Draw(im).rectangle([16, 16, 47, 47], fill="red")
    edges = np.asarray(ig.preprocess(im, "canny"))[:, :, 0] > 0
    assert edges[16:48, 15:18].any() and edges[16:48, 46:49].any()
    assert not edges[:10].any() and not edges[25:38, 25:38].any()
    assert (np.asarray(ig.preprocess(im, "none")) == np.asarray(im)).all()


def test_control_follows_the_map_size_and_records_it(pixels):
    sketch = Image.new("RGB", (64, 64), "black")
    ImageDraw.Draw(sketch).ellipse([8, 8, 40, 40], fill="white")
    out = ig.control(sketch, "a red circle", seed=1)
    r = ig.recipe(out)
    assert out.size == (64, 64) and r["kind"] == "canny" and r["controlnet"] == "builtin:canny"
    weak = ig.control(sketch, "a red circle", seed=1, controlnet_conditioning_scale=0.0)
    assert (pixels(weak) != pixels(out)).any()
    assert (pixels(ig.regenerate(out)) == pixels(out)).all()


def test_run_listeners_hear_every_step_and_stop_ends_early():
    seen = []
    ig.generate("a red circle", seed=0, num_inference_steps=6, run=ig.Run(on_step=lambda r, s: seen.append(s.index)))
    assert seen == list(range(6))

    def stop_at_two(run, step):
        if step.index == 1:
            run.stop()

    run = ig.Run(on_step=stop_at_two)
    image = ig.generate("a red circle", seed=0, num_inference_steps=10, run=run)
    assert run.steps_done == 2 and run.stopped and ig.recipe(image)["stopped_at"] == 2
    after = ig.Run()
    ig.generate("a red circle", seed=0, num_inference_steps=10, run=after)
    assert after.steps_done == 10 and not after.stopped


def test_the_progress_bar_counts_steps_as_users_count_them(tmp_path, monkeypatch):
    # SD 1.5's own scheduler, PNDM, evaluates the model 5 times for 4 steps: diffusers' own bar read 5/5
    from imagegen_nb import steps, tasks, testing

    bars = []

    class Recorded(steps.ProgressBar):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            bars.append(self)

    monkeypatch.setattr(tasks, "ProgressBar", Recorded)
    model = str(testing.make_tiny_model("sd15", tmp_path / "sd15"))
    _, pipe = ig.cache.shared.pipeline(model, "generate")
    assert type(pipe.scheduler).__name__ == "PNDMScheduler"
    ig.generate("a cat", model=model, num_inference_steps=4, width=32, height=32, seed=0, progress=True)
    assert (bars[-1].total, bars[-1].done) == (4, 4)
    ig.generate("a cat", model=model, num_inference_steps=4, width=32, height=32, seed=0, num_images=2)
    assert (bars[-1].total, bars[-1].done) == (8, 8)  # one bar for the whole call
    assert not pipe._progress_bar_config or pipe._progress_bar_config.get("disable")  # diffusers' bar stays off
    count = len(bars)
    ig.generate("a cat", model=model, num_inference_steps=4, width=32, height=32, seed=0, progress=False)
    assert len(bars) == count
    ig.cache.evict(model)
