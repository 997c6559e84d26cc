"""The studio: one panel over the four task functions. Its controls are named like their arguments; Generate
collects them (`studio.kwargs`) and calls `ig.generate` / `ig.edit` / `ig.inpaint` / `ig.control` in a background
thread, with a `Run` that drives the progress bar, the live preview and the Stop button.
"""

from __future__ import annotations

import html
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ipywidgets as widgets
from PIL import Image

from .. import arguments, inputs, registry
from ..recipes import INPUTS_KEY, Recipe, next_free
from ..recipes import recipe as read_recipe
from ..steps import Run, Step
from ._common import PIXELATED_CLASS, PIXELATED_CSS, display_width, error_html, png_bytes

TASKS = registry.TASKS
KINDS = ("canny", "depth", "pose", "none")  # ig.preprocess kinds (the preprocessors module needs OpenCV)
_TASK_STRENGTH = {"edit": 0.6, "inpaint": 1.0}  # the task functions' defaults
_INPUT_NAMES = {"edit": "image", "inpaint": "image", "control": "control_image"}
_THUMB = 96  # gallery thumbnail width (CSS pixels)


def _model_names() -> list[str]:
    """The built-in model, then the Hub ids the registry knows (any other id or folder can be typed in)."""
    return [registry.BUILTIN] + [rid for f in registry.models() for rid in f.repo_ids]


def _known_family(name: str) -> registry.Family | None:
    """The family of a model name the registry lists, without looking anything up on disk or on the Hub."""
    if name in ("", registry.BUILTIN):
        return registry.FAMILIES[registry.BUILTIN]
    return next((f for f in registry.models() if name.lower() in (r.lower() for r in f.repo_ids)), None)


class Studio(widgets.VBox):
    """A panel to make pictures with `ig.generate`, `ig.edit`, `ig.inpaint` and `ig.control`.

    `Studio(model=None, task="generate", **defaults)`: `defaults` are task-function arguments that fill the
    controls (`prompt`, `negative_prompt`, `num_inference_steps`, `guidance_scale`, `strength`, `width`,
    `height`, `seed`, `num_images`, `kind`, `controlnet_conditioning_scale`, `image`, `mask`, `control_image`).

    - `studio.kwargs` is the dict the task function gets (without `run=` and `progress=`, which the panel adds);
      assign a dict to it to fill the controls. `studio.task` is the selected task.
    - Generate runs in a background thread, so the notebook stays usable; Stop ends the run after the current
      step. `studio.wait()` waits for the run; `studio.run_sync()` runs in the calling thread.
    - `studio.results` holds this session's pictures (each carries its recipe); `studio.error` the last error,
      which is also shown in the panel. `studio.listeners` are extra step listeners `(run, step)` for each run.
    - From the gallery a picture can be saved (PNG with its recipe), shown as code, its settings reused, or sent
      to Edit, Inpaint (with a `MaskCanvas` on it) or Control (with its control map).

    >>> import imagegen_nb as ig
    >>> studio = ig.Studio(prompt="a red circle", seed=3, num_inference_steps=4)
    >>> studio.kwargs["prompt"], studio.kwargs["seed"], studio.kwargs["model"]
    ('a red circle', 3, None)
    >>> image = studio.run_sync()  # what the Generate button does, in this thread
    >>> ig.recipe(image)["seed"], len(studio.results)
    (3, 1)
    >>> studio.send_to("inpaint"); studio.task, studio.mask_canvas.image.size
    ('inpaint', (64, 64))
    """

    def __init__(self, model: str | None = None, *, task: str = "generate", **defaults: Any):
        self.results: list[Image.Image] = []
        self.result = None  # what the last run returned
        self.error: BaseException | None = None
        self.listeners: list[Callable[[Run, Step], Any]] = []
        self.input_image: Image.Image | None = None
        self.mask_canvas = None  # a MaskCanvas over the input picture, for inpaint
        self.selected: int | None = None
        self.show_preview = True  # show the predicted x0 at each step
        self._run: Run | None = None
        self._thread: threading.Thread | None = None
        self._running = False
        self._images_done = 0
        self._images_total = 1
        self._note = ""

        full = {"width": "100%"}
        self.task_selector = widgets.ToggleButtons(options=[(t.capitalize(), t) for t in TASKS], value="generate",
                                                   style={"button_width": "90px"})
        self.prompt = widgets.Textarea(description="prompt", placeholder="a red circle to the left of a blue square",
                                       rows=2, layout=full)
        self.negative_prompt = widgets.Textarea(description="negative", placeholder="negative_prompt (optional)",
                                                rows=1, layout=full)
        self.model = widgets.Combobox(description="model", options=_model_names(), value=registry.BUILTIN,
                                      ensure_option=False, placeholder="tiny, a Hub id or a folder", layout=full)
        slider = {"continuous_update": False, "style": {"description_width": "initial"}, "layout": full}
        self.num_inference_steps = widgets.IntSlider(description="num_inference_steps", min=1, max=100, **slider)
        self.guidance_scale = widgets.FloatSlider(description="guidance_scale", min=0.0, max=20.0, step=0.5,
                                                  **slider)
        self.strength = widgets.FloatSlider(description="strength", min=0.05, max=1.0, step=0.05, value=0.6,
                                            **slider)
        self.controlnet_conditioning_scale = widgets.FloatSlider(description="controlnet_conditioning_scale",
                                                                 min=0.0, max=2.0, step=0.05, value=1.0, **slider)
        self.width = widgets.IntSlider(description="width", min=8, max=2048, step=8, value=64, **slider)
        self.height = widgets.IntSlider(description="height", min=8, max=2048, step=8, value=64, **slider)
        self.seed = widgets.IntText(description="seed", value=0, layout={"width": "220px"})
        self.dice_button = widgets.Button(icon="random", tooltip="roll a new random seed", layout={"width": "40px"})
        self.seed_mode = widgets.ToggleButtons(options=["fixed", "random"], value="fixed",
                                               tooltips=["use this seed", "roll a new seed for every run"],
                                               style={"button_width": "72px"})
        self.num_images = widgets.BoundedIntText(description="num_images", value=1, min=1, max=16,
                                                 style={"description_width": "initial"}, layout={"width": "160px"})
        self.kind = widgets.Dropdown(description="kind", options=list(KINDS), value="canny")

        # inputs of edit / inpaint / control
        self.input_view = widgets.Image(format="png", layout={"width": "128px"})
        self.input_view.add_class(PIXELATED_CLASS)
        self.upload = widgets.FileUpload(accept="image/*", multiple=False, description="Upload picture")
        self.control_view = widgets.Image(format="png", layout={"width": "128px"})
        self.control_view.add_class(PIXELATED_CLASS)
        self.mask_box = widgets.VBox()
        self.input_label = widgets.HTML("<i>no input picture: send one from the gallery or upload one</i>")

        # running
        self.generate_button = widgets.Button(description="Generate", button_style="primary", icon="play")
        self.stop_button = widgets.Button(description="Stop", button_style="danger", icon="stop", disabled=True)
        self.progress = widgets.IntProgress(value=0, min=0, max=1, layout={"width": "240px"})
        self.progress_label = widgets.Label()
        self.image_view = widgets.Image(format="png", layout={"width": "256px"})
        self.image_view.add_class(PIXELATED_CLASS)
        self.message = widgets.HTML()

        # gallery and the selected picture
        self.gallery = widgets.HBox(layout={"flex_flow": "row wrap"})
        self.recipe_view = widgets.HTML()
        self.save_path = widgets.Text(description="path", layout={"width": "300px"})
        self.save_button = widgets.Button(description="Save PNG", icon="save",
                                          tooltip="ig.save: PNG with the recipe in it")
        self.code_button = widgets.Button(description="Copy as code", icon="code", tooltip="Recipe.code()")
        self.use_button = widgets.Button(description="Use settings", tooltip="fill the controls from this recipe")
        self.to_edit_button = widgets.Button(description="→ Edit")
        self.to_inpaint_button = widgets.Button(description="→ Inpaint")
        self.to_control_button = widgets.Button(description="→ Control")
        self.code = widgets.Textarea(rows=3, layout={"width": "100%", "display": "none"})

        self._wire()
        self._apply_family(registry.FAMILIES[registry.BUILTIN])
        super().__init__(self._layout(), layout={"width": "100%"})
        self.task = task
        if model is not None:
            defaults = {"model": model, **defaults}
        if defaults:
            self.kwargs = defaults
        self._update_visibility()
        self._update_selection_buttons()

    # -- layout and wiring ------------------------------------------------------------------------------------
    def _layout(self) -> list[widgets.Widget]:
        self._seed_row = widgets.HBox([self.seed, self.dice_button, self.seed_mode])
        self._size_box = widgets.VBox([self.width, self.height])
        self._control_box = widgets.VBox([self.kind, self.controlnet_conditioning_scale,
                                          widgets.HBox([widgets.Label("control map"), self.control_view])])
        self._input_box = widgets.VBox([widgets.HBox([self.input_view, widgets.VBox([self.input_label,
                                                                                     self.upload])]),
                                        self.mask_box])
        controls = widgets.VBox([self.task_selector, self.prompt, self.negative_prompt, self.model,
                                 self.num_inference_steps, self.guidance_scale, self.strength, self._size_box,
                                 self._seed_row, self.num_images, self._control_box, self._input_box],
                                layout={"width": "520px", "min_width": "420px"})
        output = widgets.VBox([widgets.HBox([self.generate_button, self.stop_button]),
                               widgets.HBox([self.progress, self.progress_label]), self.image_view, self.message],
                              layout={"padding": "0 0 0 16px"})
        self._selection_box = widgets.VBox([
            self.recipe_view,
            widgets.HBox([self.save_path, self.save_button, self.code_button, self.use_button]),
            widgets.HBox([self.to_edit_button, self.to_inpaint_button, self.to_control_button]), self.code])
        return [widgets.HTML(PIXELATED_CSS), widgets.HBox([controls, output]),
                widgets.HTML("<b>This session's pictures</b> (click one for its recipe)"), self.gallery,
                self._selection_box]

    def _wire(self) -> None:
        for view in (self.image_view, self.input_view, self.control_view):  # no broken-image icon while empty
            view.layout.display = "none"
            view.observe(lambda change, v=view: setattr(v.layout, "display", None if change["new"] else "none"),
                         names="value")
        self.generate_button.on_click(lambda _: self.generate())
        self.stop_button.on_click(lambda _: self.stop())
        self.dice_button.on_click(lambda _: self.roll_seed())
        self.task_selector.observe(self._on_task, names="value")
        self.model.observe(self._on_model, names="value")
        self.kind.observe(lambda _: self._update_control_map(), names="value")
        self.upload.observe(self._on_upload, names="value")
        self.save_button.on_click(lambda _: self._guard(self.save_selected))
        self.code_button.on_click(lambda _: self._guard(self.show_code))
        self.use_button.on_click(lambda _: self._guard(self.use_selected))
        self.to_edit_button.on_click(lambda _: self._guard(self.send_to, "edit"))
        self.to_inpaint_button.on_click(lambda _: self._guard(self.send_to, "inpaint"))
        self.to_control_button.on_click(lambda _: self._guard(self.send_to, "control"))

    def _guard(self, fn, *args) -> None:
        """Run a button's action; show its error in the panel instead of losing it in the kernel log."""
        try:
            fn(*args)
        except Exception as err:
            self._show_error(err)

    def _on_task(self, change) -> None:
        if change["new"] in _TASK_STRENGTH:
            self.strength.value = _TASK_STRENGTH[change["new"]]
        if change["new"] == "inpaint" and self.mask_canvas is None and self.input_image is not None:
            self._open_mask_canvas()
        self._update_visibility()
        self._update_control_map()

    def _on_model(self, change) -> None:
        family = _known_family(change["new"].strip())
        if family is not None:
            self._apply_family(family)

    def _apply_family(self, family: registry.Family) -> None:
        """The family's recommended settings (free-typed unknown models keep the current ones)."""
        for slider in (self.width, self.height):
            slider.step = family.size_factor
            slider.min = family.size_factor
            slider.value = family.default_size
        self.num_inference_steps.value = family.default_steps
        self.guidance_scale.value = family.default_guidance

    def _update_visibility(self) -> None:
        task = self.task
        show = {self.strength: task in ("edit", "inpaint"), self._size_box: task == "generate",
                self._control_box: task == "control", self._input_box: task != "generate",
                self.mask_box: task == "inpaint"}
        for widget, visible in show.items():
            widget.layout.display = None if visible else "none"

    # -- the arguments ----------------------------------------------------------------------------------------
    @property
    def task(self) -> str:
        """"generate", "edit", "inpaint" or "control": which function Generate calls."""
        return self.task_selector.value

    @task.setter
    def task(self, value: str) -> None:
        if value not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, not {value!r}")
        self.task_selector.value = value

    @property
    def kwargs(self) -> dict[str, Any]:
        """The keyword arguments the selected task function gets from the controls (input pictures included)."""
        task = self.task
        kw: dict[str, Any] = {}
        if task in _INPUT_NAMES:
            kw[_INPUT_NAMES[task]] = self.input_image
        if task == "inpaint":
            kw["mask"] = None if self.mask_canvas is None else self.mask_canvas.mask
        model = self.model.value.strip()
        kw.update(prompt=self.prompt.value, negative_prompt=self.negative_prompt.value or None,
                  model=None if model in ("", registry.BUILTIN) else model,
                  num_inference_steps=self.num_inference_steps.value, guidance_scale=self.guidance_scale.value)
        if task in ("edit", "inpaint"):
            kw["strength"] = self.strength.value
        if task == "generate":
            kw.update(width=self.width.value, height=self.height.value)
        if task == "control":
            kw.update(kind=self.kind.value, controlnet_conditioning_scale=self.controlnet_conditioning_scale.value)
        kw.update(seed=self.seed.value, num_images=self.num_images.value)
        return kw

    @kwargs.setter
    def kwargs(self, values: dict[str, Any]) -> None:
        values = dict(values)
        known = {"prompt", "negative_prompt", "model", "num_inference_steps", "guidance_scale", "strength", "width",
                 "height", "seed", "num_images", "kind", "controlnet_conditioning_scale", "image", "mask",
                 "control_image"}
        for name in sorted(set(values) - known):
            raise arguments.unknown_argument("Studio", name, known)
        if "model" in values:  # first: a known model resets steps, guidance and size to its family's defaults
            model = values.pop("model")
            self.model.value = registry.BUILTIN if model is None else str(model)
        for name in ("prompt", "negative_prompt"):
            if name in values:
                value = values.pop(name)
                if value is not None and not isinstance(value, str):
                    raise TypeError(f"{name} must be a string, not {value!r}")
                getattr(self, name).value = value or ""
        if "seed" in values:
            seed = values.pop("seed")
            if seed is None:
                self.seed_mode.value = "random"
            else:
                self.seed.value = arguments.integer("seed", seed, low=0, high=arguments.MAX_SEED)
                self.seed_mode.value = "fixed"
        if "kind" in values:
            kind = values.pop("kind")
            if kind not in KINDS:
                raise ValueError(f"unknown control kind {kind!r}; choose one of {', '.join(KINDS)}")
            self.kind.value = kind
        for name in ("num_inference_steps", "guidance_scale", "strength", "controlnet_conditioning_scale", "width",
                     "height", "num_images"):
            if name in values and values[name] is not None:
                self._set_number(name, values.pop(name))
        picture = values.pop("image", None) if "image" in values else values.pop("control_image", None)
        if picture is not None:
            self.set_input(picture)
        if values.get("mask") is not None:
            if self.mask_canvas is None:
                raise ValueError("a mask needs the inpaint task and its picture: set studio.task = 'inpaint' and "
                                 "pass image= with the mask")
            self.mask_canvas.mask = values.pop("mask")

    def _set_number(self, name: str, value) -> None:
        widget = getattr(self, name)
        if isinstance(widget, (widgets.IntSlider, widgets.BoundedIntText)):
            value = arguments.integer(name, value)
        else:
            value = arguments.number(name, value)
        if value < widget.min:
            raise ValueError(f"{name} must be at least {widget.min}, not {value!r}")
        if value > widget.max:  # the sliders' ranges are for comfort; larger values are the user's call
            widget.max = value
        widget.value = value

    def roll_seed(self) -> int:
        """Put a new random seed in the seed box (the dice button)."""
        self.seed.value = random.SystemRandom().randrange(2**31)
        return self.seed.value

    # -- input pictures ---------------------------------------------------------------------------------------
    def set_input(self, image, task: str | None = None) -> None:
        """Use `image` as the input picture of edit / inpaint / control (and switch to `task` if given)."""
        picture = inputs.to_image(image, "image")
        self.input_image = picture
        self.input_view.value = png_bytes(picture)
        self.input_view.layout.width = f"{min(128, display_width(picture.size, 128, 128))}px"
        self.input_label.value = f"input picture: {picture.width}x{picture.height}"
        self.mask_canvas = None
        self.mask_box.children = ()
        if task is not None:
            self.task = task
        if self.task == "inpaint":
            self._open_mask_canvas()
        self._update_control_map()

    def _open_mask_canvas(self) -> None:
        from .mask_canvas import MaskCanvas

        self.mask_canvas = MaskCanvas(self.input_image)
        self.mask_box.children = (widgets.HTML("paint where the picture should change:"), self.mask_canvas)

    def _update_control_map(self) -> None:
        if self.task != "control" or self.input_image is None:
            return
        from ..preprocessors import preprocess

        try:
            cmap = preprocess(self.input_image, self.kind.value)
        except Exception as err:
            self._show_error(err)
            self.control_view.value = b""
            return
        self.control_view.value = png_bytes(cmap)
        self.control_view.layout.width = f"{min(128, display_width(cmap.size, 128, 128))}px"

    def _on_upload(self, change) -> None:
        files = change["new"]
        if not files:
            return
        import io

        try:
            picture = Image.open(io.BytesIO(bytes(files[0]["content"])))
            picture.load()
            self.set_input(picture, self.task if self.task != "generate" else "edit")
        except Exception as err:
            self._show_error(ValueError(f"{files[0].get('name', 'upload')}: not a picture PIL can read ({err})"))

    def send_to(self, task: str, image: Image.Image | None = None) -> None:
        """Send a picture (default: the selected one) to Edit, Inpaint (opens a mask canvas) or Control."""
        if task not in _INPUT_NAMES:
            raise ValueError(f"pictures can be sent to edit, inpaint or control, not {task!r}")
        if image is None:
            if self.selected is None:
                raise ValueError("no picture selected: click one in the gallery first")
            image = self.results[self.selected]
        self.set_input(image, task)

    def _check(self, task: str, kw: dict[str, Any]) -> None:
        """What the panel itself needs before a run (the task function checks the rest)."""
        if task in _INPUT_NAMES and kw[_INPUT_NAMES[task]] is None:
            raise ValueError(f"{task} needs an input picture: select one in the gallery and press → "
                             f"{task.capitalize()}, or upload one")
        if task == "inpaint" and kw["mask"] is not None and kw["mask"].getbbox() is None:
            raise ValueError("the mask is empty: paint where the picture should change")

    # -- running ----------------------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """True while a run is in progress."""
        return self._running

    def generate(self, background: bool = True) -> None:
        """What the Generate button does: call the task function with `kwargs`, in a thread unless told not to."""
        if self.busy:
            return
        self.error = None
        self._note = ""
        self.message.value = ""
        if self.seed_mode.value == "random":
            self.roll_seed()
        task = self.task
        try:
            kw = self.kwargs
            self._check(task, kw)
        except Exception as err:
            self._show_error(err)
            return
        run = Run([self._on_step, *self.listeners], on_start=self._on_start)
        self._run = run
        self._images_done, self._images_total = 0, kw["num_images"]
        self._running = True
        self._set_busy(True)
        self.progress.value, self.progress_label.value = 0, "starting…"
        size = (kw["width"], kw["height"]) if task == "generate" else kw[_INPUT_NAMES[task]].size
        self.image_view.layout.width = f"{display_width(size)}px"
        if background:
            self._thread = threading.Thread(target=self._work, args=(task, kw, run), daemon=True,
                                            name="imagegen-studio")
            self._thread.start()
        else:
            self._work(task, kw, run)

    def run_sync(self):
        """Generate in the calling thread and return the result (None after an error, shown in the panel)."""
        self.wait()
        self.generate(background=False)
        return self.result if self.error is None else None

    def wait(self, timeout: float | None = None):
        """Wait for the run in progress (if any) to end; returns the last result."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self.result

    def stop(self) -> None:
        """What the Stop button does: end the run after the step in progress."""
        if self._run is not None and self.busy:
            self._run.stop()
            self.progress_label.value = "stopping…"

    def _work(self, task: str, kw: dict[str, Any], run: Run) -> None:
        started = time.perf_counter()
        try:
            from .. import tasks  # imports torch and diffusers: here, so the click returns at once

            result = getattr(tasks, task)(**kw, run=run, progress=False)
            self._finish(result, run, time.perf_counter() - started)
        except Exception as err:
            self._show_error(err)
            self.progress_label.value = "failed"
        finally:
            self._running = False
            self._set_busy(False)

    def _set_busy(self, busy: bool) -> None:
        self.generate_button.disabled = busy
        self.stop_button.disabled = not busy

    def _on_start(self, run: Run) -> None:
        self.progress.max = max(1, run.total or 1)
        self.progress.value = 0

    def _on_step(self, run: Run, step: Step) -> None:
        total = max(1, step.total)
        done = step.index + 1
        if done == total:
            self._images_done += 1
        in_progress = int(done < total)  # the image of this step, if it is not finished
        images_after = max(0, self._images_total - self._images_done - in_progress)
        per_step = (time.perf_counter() - (run.started or time.perf_counter())) / done
        left = per_step * ((total - done) + total * images_after)
        self.progress.max = total
        self.progress.value = done
        which = ""
        if self._images_total > 1:
            which = f"image {min(self._images_done + in_progress, self._images_total)}/{self._images_total} · "
        self.progress_label.value = f"{which}step {done}/{total} · {left:.1f} s left"
        if self.show_preview:
            self._preview(run, step)

    def _preview(self, run: Run, step: Step) -> None:
        """Show the model's predicted clean picture x0 at this step (a cheap decode from previews.py)."""
        try:
            from ..previews import preview_image

            picture = preview_image(step, run.pipe)
        except Exception as err:  # a preview is a nicety: say why there is none, and let the run go on
            self.show_preview = False
            self._note = f"no live preview ({type(err).__name__}: {err})"
            return
        self.image_view.value = png_bytes(picture)

    def _finish(self, result, run: Run, seconds: float) -> None:
        self.result = result
        pictures = list(result) if isinstance(result, list) else [result]
        kept = [p for p in pictures if read_recipe(p).get("stopped_at") is None]
        for picture in kept:
            self._add_to_gallery(picture)
        if pictures:
            self.image_view.value = png_bytes(pictures[-1])
        if len(kept) < len(pictures):
            self.progress_label.value = f"stopped after step {run.steps_done} of {run.total}"
            status = ("Stopped: the unfinished picture is shown but not kept in the gallery "
                      "(its recipe would not make it again).")
        else:
            self.progress_label.value = f"done in {seconds:.1f} s"
            status = ""
        notes = [s for s in (status, self._note) if s]
        self.message.value = "<br>".join(f"<span style='color:#555'>{html.escape(n)}</span>" for n in notes)

    def _show_error(self, err: BaseException) -> None:
        self.error = err
        self.message.value = error_html(err)

    # -- gallery ----------------------------------------------------------------------------------------------
    def _add_to_gallery(self, picture: Image.Image) -> None:
        index = len(self.results)
        self.results.append(picture)
        thumb = picture if max(picture.size) <= 2 * _THUMB else picture.copy()
        if thumb is not picture:
            thumb.thumbnail((2 * _THUMB, 2 * _THUMB))
        view = widgets.Image(value=png_bytes(thumb), format="png", layout={"width": f"{_THUMB}px"})
        view.add_class(PIXELATED_CLASS)
        recipe = read_recipe(picture)
        button = widgets.Button(description=f"#{index + 1} · seed {recipe['seed']}", tooltip=recipe["prompt"],
                                layout={"width": f"{_THUMB}px"})
        button.on_click(lambda _, i=index: self.select(i))
        self.gallery.children += (widgets.VBox([view, button]),)
        self.select(index)

    def select(self, index: int) -> None:
        """Show picture `index` of `results` with its recipe (what clicking its thumbnail does)."""
        if not 0 <= index < len(self.results):
            raise ValueError(f"no picture #{index + 1}: the gallery has {len(self.results)}")
        self.selected = index
        picture = self.results[index]
        recipe = read_recipe(picture)
        self.image_view.value = png_bytes(picture)
        self.image_view.layout.width = f"{display_width(picture.size)}px"
        rows = "".join(f"<tr><td style='padding-right:8px'><code>{html.escape(k)}</code></td>"
                       f"<td>{html.escape(repr(v))}</td></tr>"
                       for k, v in recipe.items() if v not in (None, {}, "") and k != "version")
        self.recipe_view.value = (f"<div style='line-height:1.4'><b>#{index + 1}</b>"
                                  f"<table style='font-size:90%'>{rows}</table></div>")
        # the first free name: a file from an earlier session (or another Studio) is never replaced
        self.save_path.value = str(next_free(Path("imagegen") / f"{recipe['task']}-seed{recipe['seed']}.png"))
        self.code.layout.display = "none"
        for item in self.gallery.children:  # VBox(thumbnail, button)
            item.children[1].button_style = ""
        self.gallery.children[index].children[1].button_style = "info"
        self._update_selection_buttons()

    def _update_selection_buttons(self) -> None:
        for button in (self.save_button, self.code_button, self.use_button, self.to_edit_button,
                       self.to_inpaint_button, self.to_control_button):
            button.disabled = self.selected is None
        self._selection_box.layout.display = None if self.selected is not None else "none"

    def _selected_picture(self) -> Image.Image:
        if self.selected is None:
            raise ValueError("no picture selected: click one in the gallery first")
        return self.results[self.selected]

    def save_selected(self, path: str | None = None):
        """Save the selected picture as PNG with its recipe (`ig.save`); returns the path. An existing file is never
        replaced: saving to one is an error shown in the Studio."""
        from ..recipes import save

        written = save(self._selected_picture(), path or self.save_path.value)
        self.message.value = f"saved to <code>{html.escape(str(written))}</code>"
        self.save_path.value = str(next_free(written))
        return written

    def show_code(self) -> str:
        """Show (and return) the Python that makes the selected picture again."""
        recipe = Recipe.from_dict(read_recipe(self._selected_picture()))
        lines = ["import imagegen_nb as ig", ""]
        if recipe.task in _INPUT_NAMES:
            names = {"edit": "image", "inpaint": "image, mask", "control": "control_image"}[recipe.task]
            lines.append(f"# {names}: the input picture{'s' if recipe.task == 'inpaint' else ''} it was made from")
        lines.append(f"image = {recipe.code()}" if recipe.task == "generate" else f"result = {recipe.code()}")
        self.code.value = "\n".join(lines)
        self.code.rows = len(lines) + 1
        self.code.layout.display = None
        return self.code.value

    def use_selected(self) -> None:
        """Fill the controls from the selected picture's recipe (and its input pictures, if it has them)."""
        picture = self._selected_picture()
        recipe = Recipe.from_dict(read_recipe(picture))
        kw = {k: v for k, v in recipe.call_kwargs().items()
              if k in ("model", "negative_prompt", "num_inference_steps", "guidance_scale", "width", "height",
                       "seed", "strength", "kind", "controlnet_conditioning_scale") and v is not None}
        kw["prompt"] = recipe.prompt
        kw["num_images"] = 1
        inputs_kept = picture.info.get(INPUTS_KEY, {})
        self.task = recipe.task
        self.kwargs = kw
        if recipe.task in _INPUT_NAMES and _INPUT_NAMES[recipe.task] in inputs_kept:
            self.set_input(inputs_kept[_INPUT_NAMES[recipe.task]])
            if recipe.task == "inpaint" and "mask" in inputs_kept:
                self.mask_canvas.mask = inputs_kept["mask"]
