"""Every entry point checks its arguments before any work: a wrong name, type or value is an error that names the
argument and the fix; runaway requests fail at once with the limit named; nothing unchecked reaches a recipe.

The matrix runs each bad argument through each task on the built-in model (and, for names, on tiny random models of
the other families, whose pipelines take different arguments)."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
from PIL import Image, ImageDraw, PngImagePlugin

import imagegen_nb as ig
from imagegen_nb import testing
from imagegen_nb.errors import RecipeError


@pytest.fixture(scope="module")
def base():
    return ig.generate("a red circle", seed=0, progress=False)


@pytest.fixture(scope="module")
def sketch():
    image = Image.new("RGB", (64, 64), "black")
    ImageDraw.Draw(image).ellipse([16, 16, 48, 48], fill="white")
    return image


def _task(name, base, sketch):
    mask = np.zeros((64, 64), bool)
    mask[:, 32:] = True
    return {
        "generate": lambda **kw: ig.generate("a red circle", **{"progress": False, **kw}),
        "edit": lambda **kw: ig.edit(base, "a blue square", **{"progress": False, **kw}),
        "inpaint": lambda **kw: ig.inpaint(base, mask, "a blue square", **{"progress": False, **kw}),
        "control": lambda **kw: ig.control(sketch, "a red circle", **{"progress": False, **kw}),
    }[name]


TASKS = ("generate", "edit", "inpaint", "control")

BAD = [  # (arguments, error, what the message must say)
    ({"steps": 50}, TypeError, "unknown argument 'steps'; did you mean 'num_inference_steps'"),
    ({"guidance": 9.0}, TypeError, "unknown argument 'guidance'; did you mean 'guidance_scale'"),
    ({"num_inference_step": 50}, TypeError, "unknown argument 'num_inference_step'; did you mean "
                                            "'num_inference_steps'"),
    ({"foo": 1}, TypeError, "unknown argument 'foo'"),
    ({"generator": 1}, TypeError, "does not take 'generator': pass seed="),
    ({"num_images_per_prompt": 3}, TypeError, "pass num_images="),
    ({"output_type": "np"}, TypeError, "always PIL images"),
    ({"guidance_scale": math.nan}, ValueError, "guidance_scale must be a finite number, not nan"),
    ({"guidance_scale": math.inf}, ValueError, "guidance_scale must be a finite number, not inf"),
    ({"guidance_scale": "7"}, TypeError, "guidance_scale must be a number, not '7'"),
    ({"num_images": 0}, ValueError, "num_images must be at least 1, not 0"),
    ({"num_images": 2.5}, TypeError, "num_images must be a whole number"),
    ({"num_images": "2"}, TypeError, "num_images must be a whole number.*a string"),
    ({"num_images": 10**6}, ValueError, "num_images=1000000 is too large.*ig.limits.max_images"),
    ({"seed": 2**64}, ValueError, "seed must be at most 18446744073709551615"),
    ({"seed": -1}, ValueError, "seed must be at least 0"),
    ({"seed": True}, TypeError, "seed must be a whole number"),
    ({"num_inference_steps": 10**6}, ValueError, "num_inference_steps=1000000 is too large.*ig.limits.max_steps"),
    ({"num_inference_steps": 10**9}, ValueError, "ig.limits.max_steps = 1000000000"),
    ({"negative_prompt": 3}, TypeError, "negative_prompt must be a string or None"),
    ({"negative_prompt": "blue", "guidance_scale": 1.0}, ValueError, "negative_prompt has no effect"),
    ({"scheduler": "fast"}, ValueError, "unknown scheduler 'fast'"),
    ({"progress": "yes"}, TypeError, "progress must be True or False or None"),
    ({"run": object()}, TypeError, "run must be an ig.Run"),
    ({"allow_pickle": "no"}, TypeError, "allow_pickle must be True or False"),
    ({"eta": math.nan}, ValueError, "eta=nan holds NaN or infinity"),
]


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("kwargs,error,message", BAD, ids=[next(iter(b[0])) + str(i) for i, b in enumerate(BAD)])
def test_bad_arguments_are_refused_before_any_work(task, kwargs, error, message, base, sketch):
    seen = []
    run = ig.Run(on_step=lambda run, step: seen.append(step.index))
    if "run" not in kwargs:
        kwargs = dict(kwargs, run=run)
    started = time.perf_counter()
    with pytest.raises(error, match=message):
        _task(task, base, sketch)(**kwargs)
    assert time.perf_counter() - started < 5  # nothing ran: no picture is made before the check
    assert seen == []


@pytest.mark.parametrize("task,kwargs,message", [
    ("edit", {"strength": 0.01}, r"strength=0.01 with num_inference_steps=12 runs no denoising step.*at least 0.0833"),
    ("edit", {"strength": math.nan}, "strength must be a finite number"),
    ("edit", {"strength": 1.5}, r"strength must be in \(0, 1\]"),
    ("inpaint", {"mask_blur": -5}, r"mask_blur must be in \[0, 64\], not -5"),
    ("inpaint", {"mask_blur": math.nan}, "mask_blur must be a finite number"),
    ("inpaint", {"width": 64}, "inpaint.. takes its size from the image"),
    ("control", {"controlnet_conditioning_scale": math.nan}, "controlnet_conditioning_scale must be a finite"),
    ("control", {"controlnet_conditioning_scale": -1}, "controlnet_conditioning_scale must be at least 0"),
    ("control", {"kind": 3}, "unknown control kind 3"),
    ("control", {"preprocess": "no"}, "preprocess must be True or False"),
    ("generate", {"width": 4096, "height": 4096}, r"4096x4096 is more than 4x the 64 px tiny models.*max_side_factor"),
    ("generate", {"width": 64.0, "height": 64}, "width must be a whole number"),
    ("generate", {"strength": 0.5}, "unknown argument 'strength'"),
    ("generate", {"mask": "m.png"}, "unknown argument 'mask'"),
])
def test_bad_task_specific_values(task, kwargs, message, base, sketch):
    with pytest.raises((TypeError, ValueError), match=message):
        _task(task, base, sketch)(**kwargs)


def test_runaway_requests_fail_fast(base):
    huge = Image.new("RGB", (10000, 10000))
    for call in (lambda: ig.generate("x", width=4096, height=4096), lambda: ig.edit(huge, "x"),
                 lambda: ig.generate("x", num_inference_steps=10**9), lambda: ig.generate("x", num_images=10**9)):
        started = time.perf_counter()
        with pytest.raises(ValueError, match="ig.limits"):
            call()
        assert time.perf_counter() - started < 1.0


def test_limits_can_be_raised_on_purpose(monkeypatch):
    monkeypatch.setattr(ig.limits, "max_side_factor", 8)
    assert ig.generate("a red circle", width=320, height=64, num_inference_steps=1, seed=0,
                       progress=False).size == (320, 64)


def test_numpy_scalars_work_where_python_numbers_do(pixels):
    plain = ig.generate("a red circle", seed=3, num_inference_steps=4, width=64, height=64, guidance_scale=4.0,
                        progress=False)
    numpy = ig.generate("a red circle", seed=np.int64(3), num_inference_steps=np.int32(4), width=np.int64(64),
                        height=np.int64(64), guidance_scale=np.float32(4.0), progress=False)
    assert (pixels(plain) == pixels(numpy)).all()
    recipe = ig.recipe(numpy)
    assert type(recipe["seed"]) is int and type(recipe["width"]) is int and type(recipe["guidance_scale"]) is float


def test_a_lone_width_keeps_the_aspect_ratio(base):
    wide = Image.new("RGB", (128, 64), "white")
    assert ig.edit(wide, "a red circle", width=64, seed=0, num_inference_steps=4, progress=False).size == (64, 32)
    assert ig.edit(base, "a red circle", height=32, seed=0, num_inference_steps=4, progress=False).size == (32, 32)


def test_a_pipeline_argument_is_passed_and_recorded():
    image = ig.generate("a red circle", seed=0, eta=0.0, progress=False)
    assert ig.recipe(image)["extra"] == {"eta": 0.0}
    assert json.loads(image.info["imagegen_nb"])  # valid JSON (no NaN)


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("families")
    made = {}

    def model(family):
        if family not in made:
            made[family] = str(testing.make_tiny_model(family, root / family))
        return made[family]

    yield model
    for name in made.values():
        ig.cache.evict(name)


@pytest.mark.parametrize("family", ["sd15", "sdxl", "sd3", "flux-dev", "zimage-turbo"])
def test_unknown_names_are_refused_on_every_family(family, tiny_models):
    name = tiny_models(family)
    for bad, message in [({"foo": 1}, "unknown argument 'foo'"),
                         ({"num_inference_step": 2}, "did you mean 'num_inference_steps'"),
                         ({"steps": 2}, "did you mean 'num_inference_steps'")]:
        with pytest.raises(TypeError, match=message):
            ig.generate("a cat", model=name, num_inference_steps=2, seed=0, width=32, height=32, progress=False,
                        **bad)


def test_flux_negative_prompt_needs_true_cfg(tiny_models):
    name = tiny_models("flux-dev")
    kwargs = dict(model=name, num_inference_steps=2, seed=0, width=32, height=32, progress=False)
    with pytest.raises(ValueError, match="ignore negative_prompt unless true classifier-free guidance.*true_cfg_scale"):
        ig.generate("a cat", negative_prompt="a dog", **kwargs)
    plain = np.asarray(ig.generate("a cat", **kwargs))
    guided = ig.generate("a cat", negative_prompt="a dog", true_cfg_scale=4.0, **kwargs)
    assert ig.recipe(guided)["extra"] == {"true_cfg_scale": 4.0}
    assert not (np.asarray(guided) == plain).all()  # the negative prompt changed the picture


# -- pictures read rightly ------------------------------------------------------------------------------------------

def _gradient16():
    return np.tile(np.linspace(0, 65535, 64), (64, 1)).astype(np.uint16)


@pytest.mark.parametrize("make", [
    lambda: Image.fromarray(_gradient16()),  # I;16
    lambda: Image.fromarray(_gradient16().astype(np.int32)),  # I
    lambda: Image.fromarray((_gradient16() / 65535).astype(np.float32)),  # F
    lambda: _gradient16(),  # a uint16 array
])
def test_deep_pictures_are_scaled_not_clipped(make):
    from imagegen_nb import inputs

    row = np.asarray(inputs.to_image(make()))[0, :, 0].astype(int)
    assert row[0] == 0 and row[-1] == 255
    assert abs(row[32] - 129) <= 2  # a mid grey stays mid grey (clipping made it 255)


def test_a_16_bit_png_file_is_scaled(tmp_path):
    from imagegen_nb import inputs

    Image.fromarray(_gradient16()).save(tmp_path / "deep.png")
    assert abs(int(np.asarray(inputs.to_image(tmp_path / "deep.png"))[0, 32, 0]) - 129) <= 2


def test_nan_pictures_and_text_files_are_refused(tmp_path, base):
    with pytest.raises(ValueError, match="NaN or infinite"):
        ig.edit(np.full((64, 64, 3), np.nan), "x")
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    for call in (lambda: ig.recipe(text), lambda: ig.regenerate(text), lambda: ig.inpaint(base, text, "x")):
        with pytest.raises(ValueError, match="notes.png' is not an image PIL can read"):
            call()


# -- a PNG is data, never authority ---------------------------------------------------------------------------------

def _tampered(tmp_path, image, change):
    data = ig.recipe(image)
    change(data)
    info = PngImagePlugin.PngInfo()
    info.add_text("imagegen_nb", data if isinstance(data, str) else json.dumps(data))
    path = tmp_path / "tampered.png"
    image.save(path, pnginfo=info)
    return path


@pytest.mark.parametrize("change,message", [
    (lambda d: d["extra"].update(allow_pickle=True), "sets 'allow_pickle', which a picture may not set"),
    (lambda d: d["extra"].update(num_images=100), "sets 'num_images'"),
    (lambda d: d["extra"].update(dtype="bfloat16"), "sets 'dtype'"),
    (lambda d: d.update(task="__import__('os').system('x')"), "its task is"),
    (lambda d: d.update(guidance_scale="NaN"), "guidance_scale must be a number"),
    (lambda d: d.pop("seed"), "has no seed"),
    (lambda d: d.update(extra=[1]), "extra should be an object"),
    (lambda d: d["extra"].update({"x=1); import os; (": 1}), "is not an argument name"),
])
def test_tampered_recipes_are_refused(tmp_path, base, change, message):
    path = _tampered(tmp_path, base, change)
    with pytest.raises(RecipeError, match=message):
        ig.regenerate(path)
    with pytest.raises(RecipeError):
        ig.recipe(path)


@pytest.mark.parametrize("text,message", [("not json", "not valid JSON"), ("[1, 2]", "a JSON object, not list")])
def test_damaged_recipe_json(tmp_path, base, text, message):
    info = PngImagePlugin.PngInfo()
    info.add_text("imagegen_nb", text)
    base.save(tmp_path / "damaged.png", pnginfo=info)
    with pytest.raises(RecipeError, match=f"recipe is damaged: .*{message}"):
        ig.regenerate(tmp_path / "damaged.png")


def test_a_recipe_asking_for_runaway_work_fails_fast(tmp_path, base):
    path = _tampered(tmp_path, base, lambda d: d.update(num_inference_steps=10**9))
    started = time.perf_counter()
    with pytest.raises(ValueError, match="ig.limits.max_steps"):
        ig.regenerate(path)
    assert time.perf_counter() - started < 1.0


def test_recipe_code_is_plain_data(base):
    code = ig.Recipe.from_dict(ig.recipe(ig.generate("it's a 'quoted' prompt\nwith a newline", seed=0,
                                                     num_inference_steps=2, progress=False))).code()
    import ast

    call = ast.parse(code, mode="eval").body
    assert isinstance(call, ast.Call) and call.func.attr == "generate"
    assert all(isinstance(ast.literal_eval(a), str) for a in call.args)  # literals only: no live code
    assert all(ast.literal_eval(k.value) is not None for k in call.keywords)


# -- remaking what was made -----------------------------------------------------------------------------------------

def test_a_stopped_picture_is_remade_stopped(pixels):
    run = ig.Run(on_step=lambda run, step: run.stop() if step.index == 4 else None)
    stopped = ig.generate("a red circle", seed=1, run=run, progress=False)
    assert ig.recipe(stopped)["stopped_at"] == 5
    full = ig.generate("a red circle", seed=1, progress=False)
    again = ig.regenerate(stopped, progress=False)
    assert ig.recipe(again)["stopped_at"] == 5
    assert (pixels(again) == pixels(stopped)).all()
    assert not (pixels(again) == pixels(full)).all()


def test_a_control_picture_is_remade_from_its_file_and_from_the_sketch(tmp_path, sketch, pixels):
    made = ig.control(sketch, "a red circle", seed=0, progress=False)
    path = ig.save(made, tmp_path / "controlled.png")
    assert (pixels(ig.regenerate(path, progress=False)) == pixels(made)).all()  # the PNG carries the map
    assert (pixels(ig.regenerate(path, control_image=sketch, progress=False)) == pixels(made)).all()


def test_an_edit_chain_does_not_pin_earlier_pictures(base):
    import gc
    import weakref

    first = ig.edit(base, "a blue square", seed=0, num_inference_steps=4, progress=False)
    ref = weakref.ref(first)
    second = ig.edit(first, "a green square", seed=0, num_inference_steps=4, progress=False)
    del first
    gc.collect()
    assert ref() is None  # the second picture keeps a copy of its input's pixels, not the first picture itself
    assert second.info["imagegen_nb.inputs"]["image"].info == {}


def test_the_recipe_says_the_dtype_and_sampler(base):
    recipe = ig.recipe(base)
    assert recipe["dtype"] == "float32" and recipe["sampler"] == "DPMSolverMultistepScheduler"
    parameters = ig.Recipe.from_dict(recipe).parameters()
    assert "Sampler: DPM++ 2M" in parameters and "Model: tiny" in parameters
    assert "Model hash: " in parameters and "/" not in parameters.split("Model: ")[1].split(",")[0]


# -- nothing the user made is lost ----------------------------------------------------------------------------------

def test_save_never_overwrites_unless_asked(tmp_path, base):
    path = tmp_path / "out.png"
    ig.save(base, path)
    before = path.read_bytes()
    other = ig.generate("a blue square", seed=9, progress=False)
    with pytest.raises(FileExistsError, match="already exists; pass overwrite=True"):
        ig.save(other, path)
    assert path.read_bytes() == before
    ig.save(other, path, overwrite=True)
    assert path.read_bytes() != before


def test_save_into_a_folder_picks_a_free_name(tmp_path, base):
    first, second = ig.save(base, tmp_path), ig.save(base, tmp_path)
    assert first.parent == second.parent == tmp_path and first != second
    assert not (tmp_path.parent / f"{tmp_path.name}.png").exists()


def test_save_refuses_a_recipe_too_large_to_read_back(tmp_path, monkeypatch):
    monkeypatch.setattr(ig.limits, "max_prompt_chars", 2_000_000)
    image = ig.generate("a red circle " * 100_000, seed=0, num_inference_steps=1, progress=False)
    with pytest.raises(ValueError, match="more than a PNG text chunk that Pillow reads back"):
        ig.save(image, tmp_path / "big.png")
    assert not (tmp_path / "big.png").exists()
