"""The widgets without a browser: controls are set and buttons clicked from Python (`button.click()`), the mask
canvas gets mouse events through its own handlers, and the task functions they call are real (the built-in model)
or recorded with monkeypatch."""

from __future__ import annotations

import datetime
import importlib
import io
import subprocess
import sys
import threading
import time
import types

import numpy as np
import pytest
from PIL import Image

import imagegen_nb as ig
from imagegen_nb import tasks
from imagegen_nb.errors import OutOfMemoryError

pytest.importorskip("ipywidgets")
pytest.importorskip("ipycanvas")

STEPS = 4  # denoising steps of the real runs here: enough to exercise every step event, and quick


@pytest.fixture(scope="module")
def picture():
    """A real picture from the built-in model, carrying its recipe."""
    return ig.generate("a red circle", seed=0, num_inference_steps=STEPS)


@pytest.fixture
def record(monkeypatch, picture):
    """Replace the task functions by recorders that return `picture`; the calls land in the returned list."""
    calls: list[tuple[str, dict]] = []

    def recorder(name):
        def fn(**kwargs):
            calls.append((name, kwargs))
            return picture
        return fn

    for name in ("generate", "edit", "inpaint", "control"):
        monkeypatch.setattr(tasks, name, recorder(name))
    return calls


def decoded(value: bytes) -> Image.Image:
    return Image.open(io.BytesIO(value))


def test_widgets_load_only_when_asked_for():
    code = ("import sys, imagegen_nb as ig; assert 'ipywidgets' not in sys.modules; ig.Studio; "
            "assert 'ipywidgets' in sys.modules and 'torch' not in sys.modules and 'ipycanvas' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_colab_custom_widget_manager_is_enabled_on_import(monkeypatch):
    import imagegen_nb.widgets  # first import outside Colab: nothing to enable

    enabled = []
    colab = types.ModuleType("google.colab")
    colab.output = types.SimpleNamespace(enable_custom_widget_manager=lambda: enabled.append(True))
    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    importlib.reload(imagegen_nb.widgets)
    assert enabled == [True]


# -- Studio: arguments ---------------------------------------------------------------------------------------------

def test_controls_become_the_task_functions_arguments(record):
    studio = ig.Studio(prompt="a red circle")
    studio.num_inference_steps.value = 7
    studio.guidance_scale.value = 2.5
    studio.width.value, studio.height.value = 128, 96
    studio.seed.value = 5
    studio.num_images.value = 2
    studio.negative_prompt.value = "blurry"
    expected = dict(prompt="a red circle", negative_prompt="blurry", model=None, num_inference_steps=7,
                    guidance_scale=2.5, width=128, height=96, seed=5, num_images=2)
    assert studio.kwargs == expected
    studio.generate_button.click()
    studio.wait()
    (name, kwargs), = record
    run = kwargs.pop("run")
    assert name == "generate" and kwargs == dict(expected, progress=False)
    assert isinstance(run, ig.Run)
    assert studio.error is None and not studio.generate_button.disabled and studio.stop_button.disabled


def test_each_task_gets_its_own_arguments(record, picture):
    studio = ig.Studio(prompt="a blue square", seed=1, num_inference_steps=5)
    studio.set_input(picture, "edit")
    studio.strength.value = 0.45
    studio.generate_button.click(); studio.wait()
    name, kw = record[-1]
    assert name == "edit" and kw["image"] is picture and kw["strength"] == 0.45
    assert "width" not in kw and "kind" not in kw

    studio.task = "inpaint"  # keeps the picture and opens a mask canvas on it
    assert studio.strength.value == 1.0  # inpaint's default
    studio.mask_canvas.tool.value = "rectangle"
    studio.mask_canvas.mouse_down(0, 0); studio.mask_canvas.mouse_up(192, 384)  # left half (display is 6x)
    studio.generate_button.click(); studio.wait()
    name, kw = record[-1]
    assert name == "inpaint" and kw["image"] is picture
    mask = np.asarray(kw["mask"])
    assert mask.shape == (64, 64) and (mask[:, :32] == 255).all() and (mask[:, 32:] == 0).all()

    studio.task = "control"
    studio.kind.value = "canny"
    studio.controlnet_conditioning_scale.value = 0.7
    studio.generate_button.click(); studio.wait()
    name, kw = record[-1]
    assert name == "control" and kw["control_image"] is picture
    assert kw["kind"] == "canny" and kw["controlnet_conditioning_scale"] == 0.7 and "strength" not in kw
    assert decoded(studio.control_view.value).size == (64, 64)  # the canny map from ig.preprocess


def test_setting_kwargs_fills_the_controls():
    studio = ig.Studio()
    studio.kwargs = {"prompt": "two yellow stars", "seed": 11, "num_inference_steps": 12, "guidance_scale": 6.0,
                     "width": 96, "num_images": 3}
    assert (studio.prompt.value, studio.seed.value, studio.num_inference_steps.value) == ("two yellow stars", 11, 12)
    assert studio.kwargs["width"] == 96 and studio.kwargs["num_images"] == 3
    studio.kwargs = {"num_inference_steps": 250}  # beyond the slider's comfort range: the range grows
    assert studio.kwargs["num_inference_steps"] == 250
    studio.kwargs = {"seed": None}
    assert studio.seed_mode.value == "random"
    studio.kwargs = {"model": "stabilityai/sd-turbo"}  # a known model brings its family's defaults
    assert studio.kwargs["model"] == "stabilityai/sd-turbo"
    assert (studio.num_inference_steps.value, studio.guidance_scale.value, studio.width.value) == (1, 0.0, 512)
    studio.kwargs = {"model": None}
    assert studio.kwargs["model"] is None and studio.width.value == 64
    with pytest.raises(TypeError, match="Studio.. got an unknown argument 'scheduler'"):
        studio.kwargs = {"scheduler": "ddim"}
    with pytest.raises(TypeError, match="unknown argument 'steps'; did you mean 'num_inference_steps'"):
        ig.Studio(steps=3)
    with pytest.raises(ValueError, match="guidance_scale must be a finite number, not nan"):
        studio.kwargs = {"guidance_scale": float("nan")}
    with pytest.raises(ValueError, match="seed must be"):
        studio.kwargs = {"seed": -1}
    with pytest.raises(ValueError, match="num_inference_steps must be at least 1"):
        studio.kwargs = {"num_inference_steps": 0}
    with pytest.raises(ValueError, match="task must be one of"):
        studio.task = "upscale"


def test_dice_and_random_seed_mode(record):
    studio = ig.Studio(seed=0)
    seeds = set()
    for _ in range(3):
        studio.dice_button.click()
        seeds.add(studio.seed.value)
    assert len(seeds) == 3
    studio.seed_mode.value = "random"
    studio.generate_button.click(); studio.wait()
    studio.generate_button.click(); studio.wait()
    first, second = (kw["seed"] for _, kw in record)
    assert first != second and second == studio.seed.value  # the seed used stays visible
    studio.seed_mode.value = "fixed"
    studio.generate_button.click(); studio.wait()
    assert record[-1][1]["seed"] == second


# -- Studio: runs --------------------------------------------------------------------------------------------------

def test_generate_runs_in_a_thread_with_progress_preview_and_gallery(pixels):
    studio = ig.Studio(prompt="a green triangle", seed=4, num_inference_steps=STEPS)
    seen = []
    studio.listeners.append(lambda run, step: seen.append((threading.current_thread().name, step.index,
                                                           studio.progress.value, len(studio.image_view.value),
                                                           studio.generate_button.disabled,
                                                           studio.stop_button.disabled)))
    assert studio.image_view.layout.display == "none"  # nothing to show yet: no broken-image icon
    studio.generate_button.click()
    result = studio.wait()
    assert studio.error is None, studio.message.value
    assert studio.image_view.layout.display is None
    assert [s[1] for s in seen] == list(range(STEPS))
    assert {s[0] for s in seen} == {"imagegen-studio"}  # not the caller's thread
    assert [s[2] for s in seen] == list(range(1, STEPS + 1))  # the bar moved before the listeners after it
    assert all(s[3] > 0 for s in seen)  # a live preview at every step
    assert all(s[4] and not s[5] for s in seen)  # while it runs: Generate off, Stop on
    assert studio.progress.value == STEPS and studio.progress_label.value.startswith("done")
    assert len(studio.results) == 1 and studio.results[0] is result and studio.selected == 0
    shown = decoded(studio.image_view.value)
    assert shown.size == (64, 64) and (pixels(shown) == pixels(result)).all()  # final picture, pixels untouched
    assert studio.image_view.layout.width == "256px"  # shown enlarged, with image-rendering: pixelated
    assert "ig-pixelated" in studio.image_view._dom_classes
    assert (pixels(ig.regenerate(studio.results[0])) == pixels(result)).all()


def test_gallery_pictures_regenerate_and_their_code_runs(tmp_path, pixels, monkeypatch):
    monkeypatch.chdir(tmp_path)
    studio = ig.Studio(prompt="a blue square", seed=8, num_inference_steps=STEPS, num_images=2)
    studio.generate_button.click(); studio.wait()
    assert studio.error is None, studio.message.value
    assert [ig.recipe(p)["seed"] for p in studio.results] == [8, 9]
    for picture in studio.results:
        assert (pixels(ig.regenerate(picture)) == pixels(picture)).all()
    assert len(studio.gallery.children) == 2
    studio.gallery.children[0].children[1].click()  # the thumbnail's button
    assert studio.selected == 0 and "seed" in studio.recipe_view.value and "8" in studio.recipe_view.value

    target = studio.save_path.value
    studio.save_button.click()
    saved = tmp_path / target
    assert saved.exists() and ig.recipe(saved)["seed"] == 8, studio.message.value
    # a second save (or a second Studio's first) never replaces the first file
    first = saved.read_bytes()
    assert studio.save_path.value != target
    studio.save_button.click()
    assert saved.read_bytes() == first and (tmp_path / studio.save_path.value).parent == saved.parent
    assert len(list(saved.parent.glob("*.png"))) == 2
    assert ig.Studio(prompt="a blue square").error is None

    studio.code_button.click()
    assert studio.code.layout.display is None and "ig.generate('a blue square'" in studio.code.value
    namespace: dict = {}
    exec(studio.code.value, namespace)
    assert (pixels(namespace["image"]) == pixels(studio.results[0])).all()

    studio.kwargs = {"prompt": "something else", "seed": 1}
    studio.use_button.click()
    assert studio.kwargs["prompt"] == "a blue square" and studio.kwargs["seed"] == 8


def test_send_to_edit_inpaint_and_control(pixels):
    studio = ig.Studio(prompt="a red circle", seed=2, num_inference_steps=STEPS)
    studio.run_sync()
    original = studio.results[0]
    studio.to_edit_button.click()
    assert studio.task == "edit" and studio.kwargs["image"] is original
    studio.to_inpaint_button.click()
    canvas = studio.mask_canvas
    assert studio.task == "inpaint" and canvas is not None and canvas.image.size == (64, 64)
    assert canvas in studio.mask_box.children
    canvas.tool.value = "rectangle"
    canvas.mouse_down(192, 0); canvas.mouse_up(384, 384)  # right half
    studio.generate_button.click(); studio.wait()
    assert studio.error is None, studio.message.value
    inpainted = studio.results[-1]
    assert ig.recipe(inpainted)["task"] == "inpaint"
    assert (pixels(inpainted)[:, :28] == pixels(original)[:, :28]).all()  # kept where not painted
    studio.select(0)
    studio.to_control_button.click()
    assert studio.task == "control" and len(studio.control_view.value) > 0
    studio.kind.value = "none"
    assert (pixels(decoded(studio.control_view.value)) == pixels(original)).all()


def test_stop_ends_the_run_early_and_the_next_run_completes():
    studio = ig.Studio(prompt="a red circle", seed=0, num_inference_steps=60)
    third_step = threading.Event()

    def slow(run, step):
        if step.index == 2:
            third_step.set()
        time.sleep(0.05)

    studio.listeners.append(slow)
    studio.generate_button.click()
    assert third_step.wait(60)
    studio.stop_button.click()
    studio.wait(60)
    assert studio.error is None, studio.message.value
    assert 3 <= studio.progress.value < 60 and studio.progress_label.value.startswith("stopped")
    assert ig.recipe(studio.result)["stopped_at"] == studio.progress.value
    assert studio.results == [] and "Stopped" in studio.message.value  # unfinished: not in the gallery
    assert not studio.generate_button.disabled and studio.stop_button.disabled

    studio.listeners.clear()
    studio.num_inference_steps.value = STEPS
    studio.generate_button.click(); studio.wait(60)
    assert studio.error is None and studio.progress.value == STEPS and len(studio.results) == 1
    assert ig.recipe(studio.results[0])["stopped_at"] is None


@pytest.mark.parametrize("case", ["missing model", "no input picture", "empty mask", "out of memory", "bad value"])
def test_errors_show_in_the_panel_and_buttons_come_back(case, monkeypatch, picture):
    studio = ig.Studio(prompt="a red circle", seed=0, num_inference_steps=STEPS)
    expected = {"missing model": "ModelNotFoundError", "no input picture": "edit needs an input picture",
                "empty mask": "the mask is empty", "out of memory": "OutOfMemoryError",
                "bad value": "have to be multiples of 8 for tiny models but are 60 and 64"}[case]
    if case == "missing model":
        studio.model.value = "./no/such/model"
    elif case == "no input picture":
        studio.task = "edit"
    elif case == "empty mask":
        studio.set_input(picture, "inpaint")
    elif case == "out of memory":
        def oom(**kwargs):
            raise OutOfMemoryError("the GPU ran out of memory making a 64x64 image")
        monkeypatch.setattr(tasks, "generate", oom)
    else:
        studio.width.value = 60  # the slider steps by 8, but code can set any value
    studio.generate_button.click()
    studio.wait()
    assert expected in studio.message.value and studio.error is not None
    assert "traceback" not in studio.message.value  # a user error: the message, no traceback
    assert not studio.generate_button.disabled and studio.stop_button.disabled and not studio.busy


def test_unexpected_errors_show_a_traceback_and_the_next_run_works(monkeypatch):
    real = tasks.generate
    monkeypatch.setattr(tasks, "generate", lambda **kw: 1 / 0)
    studio = ig.Studio(prompt="a red circle", seed=0, num_inference_steps=STEPS)
    studio.generate_button.click(); studio.wait()
    assert "ZeroDivisionError" in studio.message.value and "traceback" in studio.message.value
    monkeypatch.setattr(tasks, "generate", real)
    studio.generate_button.click(); studio.wait()
    assert studio.error is None and len(studio.results) == 1 and studio.message.value == ""


def test_gallery_buttons_need_a_selection():
    studio = ig.Studio()
    assert studio.save_button.disabled and studio.to_edit_button.disabled
    with pytest.raises(ValueError, match="no picture selected"):
        studio.send_to("edit")


# -- MaskCanvas ----------------------------------------------------------------------------------------------------

def capsule(shape, p0, p1, radius):
    """Pixels whose centre lies within `radius` of the segment p0-p1 (picture coordinates)."""
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]] + 0.5
    (x0, y0), (x1, y1) = p0, p1
    d = np.array([x1 - x0, y1 - y0], dtype=float)
    t = np.clip(((xs - x0) * d[0] + (ys - y0) * d[1]) / max(d @ d, 1e-12), 0, 1)
    return (xs - x0 - t * d[0]) ** 2 + (ys - y0 - t * d[1]) ** 2 <= radius**2


def white(canvas) -> np.ndarray:
    mask = canvas.mask
    assert mask.mode == "L" and mask.size == canvas.image.size
    values = np.asarray(mask)
    assert set(np.unique(values)) <= {0, 255}
    return values == 255


def test_brush_paints_exactly_under_the_stroke_the_moment_it_ends():
    canvas = ig.MaskCanvas(Image.new("RGB", (64, 64), "white"), brush_size=6)
    assert canvas.display_size == (384, 384)  # 64x64 shown 6x, pixels as squares
    # canvas pixels (as the browser sends them) -> picture pixels: divide by 6
    canvas.mouse_down(60, 120); canvas.mouse_move(150, 126); canvas.mouse_move(240, 240)
    canvas.mouse_up(240, 240)
    expected = capsule((64, 64), (10, 20), (25, 21), 3) | capsule((64, 64), (25, 21), (40, 40), 3)
    assert (white(canvas) == expected).all()
    assert canvas.mask_array.sum() == expected.sum() and "%" in canvas.info.value


def test_events_from_the_browser_reach_the_handlers():
    canvas = ig.MaskCanvas(Image.new("RGB", (64, 64), "white"), brush_size=4)
    top = canvas.canvas[2]  # the layer that receives events, as ipycanvas dispatches a frontend message
    for event, x, y in (("mouse_down", 30, 30), ("mouse_move", 90, 30), ("mouse_up", 90, 30)):
        top._handle_frontend_event(None, {"event": event, "x": x, "y": y}, [])
    assert (white(canvas) == capsule((64, 64), (5, 5), (15, 5), 2)).all()


def test_eraser_undo_invert_and_clear():
    canvas = ig.MaskCanvas(Image.new("RGB", (64, 64), "gray"), brush_size=10)
    canvas.mouse_down(60, 60); canvas.mouse_up(300, 60)
    stroke = white(canvas)
    canvas.tool.value = "eraser"
    canvas.mouse_down(180, 60); canvas.mouse_up(180, 60)
    erased = white(canvas)
    assert (erased == (stroke & ~capsule((64, 64), (30, 10), (30, 10), 5))).all()
    canvas.undo_button.click()
    assert (white(canvas) == stroke).all()
    canvas.invert_button.click()
    assert (white(canvas) == ~stroke).all()
    canvas.clear_button.click()
    assert not white(canvas).any()
    canvas.undo_button.click(); canvas.undo_button.click()
    assert (white(canvas) == stroke).all()
    canvas.undo_button.click(); canvas.undo_button.click()  # back to the start; one more does nothing
    assert not white(canvas).any()


def test_rectangle_tool_paints_the_pixels_it_touches():
    canvas = ig.MaskCanvas(Image.new("RGB", (64, 64), "white"))
    canvas.tool.value = "rectangle"
    canvas.mouse_down(60, 120); canvas.mouse_move(200, 200)
    assert not white(canvas).any()  # only an outline while dragging
    canvas.mouse_up(180, 240)  # picture (10, 20) to (30, 40)
    expected = np.zeros((64, 64), bool)
    expected[20:40, 10:30] = True
    assert (white(canvas) == expected).all()
    canvas.mouse_down(3, 3); canvas.mouse_up(3, 3)  # a click paints the one pixel under it
    expected[0, 0] = True
    assert (white(canvas) == expected).all()


def test_large_pictures_are_shown_scaled_with_a_full_resolution_mask():
    canvas = ig.MaskCanvas(Image.new("RGB", (1024, 768), "white"), brush_size=20)
    assert canvas.display_size == (512, 384) and canvas.canvas.width == 512
    canvas.mouse_down(100, 50); canvas.mouse_up(300, 50)  # canvas pixels: x2 in the picture
    assert canvas.mask.size == (1024, 768)
    assert (white(canvas) == capsule((768, 1024), (200, 100), (600, 100), 10)).all()
    canvas.tool.value = "rectangle"
    canvas.mouse_down(0, 300); canvas.mouse_up(512, 384)
    assert white(canvas)[600:, :].all() and not white(canvas)[200:600, :].any()


def test_mask_blur_is_handed_to_inpaint_and_the_mask_stays_hard():
    base = ig.generate("a red circle on a white background", seed=2)
    canvas = ig.MaskCanvas(base)
    assert canvas.mask_blur.value == 0  # inpaint's own default at 64x64
    canvas.tool.value = "rectangle"
    canvas.mouse_down(96, 96); canvas.mouse_up(288, 288)
    hard = canvas.mask_array
    canvas.mask_blur.value = 2.0
    assert set(np.unique(np.asarray(canvas.mask))) == {0, 255} and (canvas.mask_array == hard).all()
    out = ig.inpaint(base, canvas, "a blue square", seed=0, num_inference_steps=2)
    assert ig.recipe(out)["mask_blur"] == 2.0
    same = ig.inpaint(base, canvas.mask, "a blue square", seed=0, num_inference_steps=2, mask_blur=2.0)
    assert np.array_equal(np.asarray(out), np.asarray(same))
    sharp = ig.inpaint(base, canvas, "a blue square", seed=0, num_inference_steps=2, mask_blur=0)
    assert ig.recipe(sharp)["mask_blur"] == 0  # an explicit mask_blur wins over the canvas's
    with pytest.raises(ValueError, match="mask_blur must be 0 or more"):
        ig.MaskCanvas(base, mask_blur=-1)


def test_mask_can_be_set_and_is_checked():
    canvas = ig.MaskCanvas(Image.new("RGB", (64, 64), "white"))
    stripe = np.zeros((64, 64), bool)
    stripe[:, 10:20] = True
    canvas.mask = stripe
    assert (white(canvas) == stripe).all()
    canvas.undo()
    assert not white(canvas).any()
    with pytest.raises(ValueError, match="mask is 32x32 but image is 64x64"):
        canvas.mask = np.zeros((32, 32), bool)
    with pytest.raises(ValueError, match="brush_size must be at least 1"):
        ig.MaskCanvas(Image.new("RGB", (64, 64)), brush_size=0)


def test_inpaint_takes_the_canvas_as_its_mask(picture, pixels):
    canvas = ig.MaskCanvas(picture, brush_size=16)
    canvas.mouse_down(300, 60); canvas.mouse_move(300, 320); canvas.mouse_up(300, 320)
    out = ig.inpaint(picture, canvas, "a blue square", seed=0, num_inference_steps=STEPS, mask_blur=0)
    keep = ~capsule((64, 64), (50, 10), (50, 160 / 3), 8)
    assert (pixels(out)[keep] == pixels(picture)[keep]).all()
    assert (np.asarray(ig.recipe(out)["width"]) == 64)


# -- TracePlayer ---------------------------------------------------------------------------------------------------

class StandInTrace:
    """What TracePlayer reads from an `ig.trace(...)` result, with pictures made up per step."""

    def __init__(self, steps=5, sigmas=False):
        self.timesteps = np.linspace(999, 0, steps)
        self.alpha_bar = None if sigmas else np.linspace(0.01, 0.99, steps)
        self.sigmas = np.linspace(14.6, 0.03, steps) if sigmas else None
        self.calls: list[tuple[int, str, bool]] = []

    def __len__(self):
        return len(self.timesteps)

    def decode(self, i, what="x0", fast=False):
        self.calls.append((i, what, fast))
        if what == "noise" and i == 4:
            raise ValueError("this trace has no noise")
        shade = {"latent": 50, "x0": 150, "noise": 250}[what]
        return Image.new("RGB", (16, 16) if fast else (64, 64), (shade, i * 10, 0))


def test_trace_player_shows_each_steps_three_pictures_and_noise_level():
    trace = StandInTrace()
    player = ig.TracePlayer(trace)
    assert "step 0 / 4" in player.info.value and "t = 999" in player.info.value and "0.01" in player.info.value
    assert sorted(trace.calls) == [(0, "latent", False), (0, "noise", False), (0, "x0", False)]
    player.slider.value = 2
    assert "step 2 / 4" in player.info.value and "0.5" in player.info.value
    assert decoded(player.views["x0"].value).getpixel((0, 0)) == (150, 20, 0)
    assert decoded(player.views["latent"].value).getpixel((0, 0)) == (50, 20, 0)
    assert decoded(player.views["noise"].value).getpixel((0, 0)) == (250, 20, 0)
    player.play.value = 3  # the Play button drives the slider
    assert player.slider.value == 3 and "step 3 / 4" in player.info.value
    calls = len(trace.calls)
    player.slider.value = 2  # seen before: no decoding again
    assert len(trace.calls) == calls
    player.fast.value = True
    assert (2, "x0", True) in trace.calls and decoded(player.views["x0"].value).size == (16, 16)
    player.slider.value = 4  # a decode error shows in the player, the other pictures still do
    assert "this trace has no noise" in player.message.value and player.views["noise"].value == b""
    assert len(player.views["x0"].value) > 0


def test_trace_player_shows_sigma_for_sigma_schedules():
    player = ig.TracePlayer(StandInTrace(sigmas=True))
    assert "σ = 14.6" in player.info.value


def test_trace_player_on_a_real_trace():
    trace = ig.trace("a red circle", seed=0, num_inference_steps=STEPS)
    player = ig.TracePlayer(trace)
    player.slider.value = STEPS - 1
    assert player.message.value == "" and f"step {STEPS - 1} / {STEPS - 1}" in player.info.value
    assert decoded(player.views["x0"].value).size == trace.image.size


def test_upload_and_input_pictures_through_kwargs(picture):
    studio = ig.Studio(task="inpaint")
    png = io.BytesIO()
    picture.save(png, format="PNG")
    upload = {"name": "picture.png", "type": "image/png", "size": len(png.getvalue()),
              "content": memoryview(png.getvalue()), "last_modified": datetime.datetime.now(datetime.timezone.utc)}
    studio.upload.value = (upload,)
    assert studio.input_image.size == (64, 64) and studio.mask_canvas is not None
    assert studio.task == "inpaint" and "64x64" in studio.input_label.value
    stripe = np.zeros((64, 64), bool)
    stripe[:8] = True
    studio.kwargs = {"image": picture, "mask": stripe}
    mask = np.asarray(studio.kwargs["mask"])
    assert studio.kwargs["image"] is picture and (mask[:8] == 255).all() and not mask[8:].any()
    studio.upload.value = (dict(upload, name="notes.txt", content=memoryview(b"not a picture")),)
    assert "notes.txt: not a picture PIL can read" in studio.message.value
    generate = ig.Studio()
    with pytest.raises(ValueError, match="needs the inpaint task"):
        generate.kwargs = {"mask": stripe}


def test_the_lora_box_runs_the_lora_and_its_settings_come_back(tmp_path):
    from test_lora import _make_lora

    lora = _make_lora(tmp_path / "style_a", seed=1, scale=0.2)
    studio = ig.Studio(prompt="a red circle", seed=0, num_inference_steps=STEPS)
    plain = studio.run_sync()
    studio.kwargs = {"lora": {str(lora): 0.8}}
    assert studio.kwargs["lora"] == {str(lora): 0.8}
    styled = studio.run_sync()
    assert ig.recipe(styled)["loras"][0]["weight"] == 0.8
    assert np.abs(np.asarray(plain, np.int16) - np.asarray(styled, np.int16)).max() > 0
    direct = ig.generate("a red circle", seed=0, num_inference_steps=STEPS, lora={str(lora): 0.8})
    assert np.array_equal(np.asarray(direct), np.asarray(styled))  # the box is exactly the argument
    studio.select(0)  # the picture without a LoRA: using its settings empties the box
    studio.use_selected()
    assert "lora" not in studio.kwargs and studio.lora.value == ""
    studio.select(1)
    studio.use_selected()
    assert studio.kwargs["lora"] == {str(lora): 0.8}


def test_the_lora_box_takes_one_lora_and_names_what_is_wrong():
    studio = ig.Studio()
    with pytest.raises(ValueError, match="one LoRA"):
        studio.kwargs = {"lora": {"a.safetensors": 0.8, "b.safetensors": 0.4}}
    with pytest.raises(TypeError, match="lora must be a path"):
        studio.kwargs = {"lora": 3}
    with pytest.raises(TypeError, match="lora weight"):
        studio.kwargs = {"lora": {"a.safetensors": "strong"}}
    studio.kwargs = {"lora": {"a.safetensors": 3.5}}  # beyond the slider's range: the range grows
    assert studio.lora_weight.value == 3.5
