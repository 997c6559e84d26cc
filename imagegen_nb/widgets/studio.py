"""The studio: one panel over the four task functions. Its controls are named like their arguments; Generate
collects them (`studio.kwargs`) and calls `ig.generate` / `ig.edit` / `ig.inpaint` / `ig.control` in a background
thread, with a `Run` that its run view (`run_view.py`: progress bar, live preview, Stop) listens to. The pictures go
to its gallery (`gallery.py`), from which they can be saved, shown as code, reused or sent on to another task: to
its input picture (`input_picture.py`, with the mask canvas and the control map). The argument widgets and their
checks are `controls.py`'s.
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
from PIL import Image

from .. import arguments, preprocessors, registry, tasks
from ..recipes import INPUTS_KEY, Recipe
from ..recipes import recipe as read_recipe
from ..steps import Run, Step
from ._common import PIXELATED_CSS, error_html
from .compare_row import CompareRow
from .controls import Controls, known_family
from .gallery import Gallery
from .input_picture import InputPicture
from .run_view import RunView
from .style_picture import StylePicture

TASKS = registry.TASKS
KINDS = preprocessors.KINDS
_INPUT_NAMES = {"edit": "image", "inpaint": "image", "control": "control_image"}


class Studio(widgets.VBox):
    """A panel to make pictures with `ig.generate`, `ig.edit`, `ig.inpaint` and `ig.control`.

    `Studio(model=None, task="generate", **defaults)`: `defaults` are task-function arguments that fill the
    controls (`prompt`, `negative_prompt`, `num_inference_steps`, `guidance_scale`, `strength`, `width`,
    `height`, `seed`, `num_images`, `kind`, `controlnet_conditioning_scale`, `lora` (one LoRA: a path or
    `{path: weight}`), `image`, `mask`, `control_image`).

    - `studio.kwargs` is the dict the task function gets (without `run=` and `progress=`, which the panel adds);
      assign a dict to it to fill the controls. `studio.task` is the selected task.
    - Generate runs in a background thread, so the notebook stays usable; Stop ends the run after the current
      step. `studio.wait()` waits for the run; `studio.run_sync()` runs in the calling thread.
    - `studio.results` holds this session's pictures (each carries its recipe); `studio.error` the last error,
      which is also shown in the panel. `studio.listeners` are extra step listeners `(run, step)` for each run.
    - From the gallery a picture can be saved (PNG with its recipe), shown as code, its settings reused, or sent
      to Edit, Inpaint (with a `MaskCanvas` on it) or Control (with its control map).
    - Its parts: `studio.run_view` (a `RunView`: progress, preview, Stop), `studio.gallery_view` (a `Gallery`)
      and `studio.input_picture` (an `InputPicture`); their widgets keep their names on the Studio too
      (`studio.progress`, `studio.save_button`, `studio.upload`, ...); `studio.gallery` is the row of thumbnails.

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
        self.result = None  # what the last run returned
        self.error: BaseException | None = None
        self.listeners: list[Callable[[Run, Step], Any]] = []
        self._thread: threading.Thread | None = None

        self.task_selector = widgets.ToggleButtons(options=[(t.capitalize(), t) for t in TASKS], value="generate",
                                                   style={"button_width": "90px"})
        self.controls = Controls()
        for name in Controls.NAMES:  # the controls keep their names on the Studio
            setattr(self, name, getattr(self.controls, name))

        # the parts: the input picture of edit / inpaint / control, the run in progress, the pictures made
        self.message = widgets.HTML()
        self.generate_button = widgets.Button(description="Generate", button_style="primary", icon="play")
        self.input_picture = InputPicture(on_error=self._show_error, on_upload=lambda picture: self.set_input(
            picture, self.task if self.task != "generate" else "edit"))
        self.style_picture = StylePicture(on_error=self._show_error)
        self.compare_row = CompareRow()
        self.comparison = None  # the last comparison grid (ig.Comparison), made with the Compare button
        self.run_view = RunView(start_button=self.generate_button)
        self.gallery_view = Gallery(on_select=self.run_view.show, on_use=self._use_settings, on_send=self.send_to,
                                    on_error=self._show_error, message=self.message)
        box, run, gallery = self.input_picture, self.run_view, self.gallery_view  # their widgets, by the old names
        self.input_view, self.input_label, self.upload, self.mask_box = box.view, box.label, box.upload, box.mask_box
        self.control_view, self.image_view, self.stop_button = box.control_view, run.image_view, run.stop_button
        self.progress, self.progress_label, self.gallery = run.progress, run.progress_label, gallery.thumbnails
        self.recipe_view, self.save_path, self.code = gallery.recipe_view, gallery.save_path, gallery.code
        self.save_button, self.code_button, self.use_button = (gallery.save_button, gallery.code_button,
                                                               gallery.use_button)
        self.to_edit_button, self.to_inpaint_button, self.to_control_button = (
            gallery.to_edit_button, gallery.to_inpaint_button, gallery.to_control_button)
        self.style_scale, self.ip_adapter = self.style_picture.style_scale, self.style_picture.ip_adapter

        self._wire()
        super().__init__(self._layout(), layout={"width": "100%"})
        self.task = task
        if model is not None:
            defaults = {"model": model, **defaults}
        if defaults:
            self.kwargs = defaults
        self._update_visibility()

    # -- layout and wiring ------------------------------------------------------------------------------------
    def _layout(self) -> list[widgets.Widget]:
        self._seed_row = widgets.HBox([self.seed, self.dice_button, self.seed_mode])
        self._size_box = widgets.VBox([self.width, self.height])
        self._control_box = widgets.VBox([self.kind, self.controlnet_conditioning_scale,
                                          widgets.HBox([widgets.Label("control map"), self.control_view])])
        self._lora_row = widgets.HBox([self.lora, self.lora_weight])
        self._style_box = widgets.Accordion([self.style_picture], titles=("style (IP-Adapter)",),
                                            selected_index=None)
        controls = widgets.VBox([self.task_selector, self.prompt, self.negative_prompt, self.model, self._lora_row,
                                 self._style_box, self.num_inference_steps, self.guidance_scale, self.strength,
                                 self._size_box, self._seed_row, self.num_images, self._control_box,
                                 self.input_picture],
                                layout={"width": "520px", "min_width": "420px"})
        output = widgets.VBox([self.run_view, self.compare_row, self.message], layout={"padding": "0 0 0 16px"})
        return [widgets.HTML(PIXELATED_CSS), widgets.HBox([controls, output]), self.gallery_view]

    def _wire(self) -> None:
        self.generate_button.on_click(lambda _: self.generate())
        self.compare_row.button.on_click(lambda _: self.compare())
        self.task_selector.observe(self._on_task, names="value")
        self.kind.observe(lambda _: self._update_control_map(), names="value")
        self.model.observe(self._on_model, names="value")

    def _on_model(self, change) -> None:
        family = known_family(change["new"].strip())
        if family is not None:
            self.style_picture.apply_family(family)

    def _on_task(self, change) -> None:
        if change["new"] in ("edit", "inpaint"):
            self.strength.value = tasks.default(change["new"], "strength")
        if change["new"] == "inpaint" and self.mask_canvas is None and self.input_image is not None:
            self.input_picture.open_mask_canvas()
        self._update_visibility()
        self._update_control_map()

    def roll_seed(self) -> int:
        """Put a new random seed in the seed box (the dice button)."""
        return self.controls.roll_seed()

    def _update_visibility(self) -> None:
        task = self.task
        show = {self.strength: task in ("edit", "inpaint"), self._size_box: task == "generate",
                self._control_box: task == "control", self.input_picture: task != "generate",
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
            if self.mask_canvas is not None:
                kw["mask_blur"] = self.mask_canvas.mask_blur.value
        kw.update(self.controls.values(task))
        kw.update(self.style_picture.values())
        return kw

    @kwargs.setter
    def kwargs(self, values: dict[str, Any]) -> None:
        values = dict(values)
        known = {*Controls.ARGUMENTS, *StylePicture.NAMES, "image", "mask", "mask_blur", "control_image"}
        for name in sorted(set(values) - known):
            raise arguments.unknown_argument("Studio", name, known)
        self.controls.set_values(values)
        self.style_picture.set_values(values)
        picture = values.pop("image", None) if "image" in values else values.pop("control_image", None)
        if picture is not None:
            self.set_input(picture)
        if values.get("mask") is not None:
            if self.mask_canvas is None:
                raise ValueError("a mask needs the inpaint task and its picture: set studio.task = 'inpaint' and "
                                 "pass image= with the mask")
            self.mask_canvas.mask = values.pop("mask")
        if values.get("mask_blur") is not None:
            if self.mask_canvas is None:
                raise ValueError("mask_blur belongs to a mask: set studio.task = 'inpaint' and pass image= first")
            blur = arguments.number("mask_blur", values.pop("mask_blur"), low=0)
            slider = self.mask_canvas.mask_blur
            slider.max = max(slider.max, blur)
            slider.value = blur

    # -- the input picture -----------------------------------------------------------------------------------
    @property
    def input_image(self) -> Image.Image | None:
        """The input picture of edit / inpaint / control (None before one is sent or uploaded)."""
        return self.input_picture.image

    @property
    def mask_canvas(self):
        """The `MaskCanvas` over the input picture, for inpaint (None before it opens)."""
        return self.input_picture.mask_canvas

    def set_input(self, image, task: str | None = None) -> None:
        """Use `image` as the input picture of edit / inpaint / control (and switch to `task` if given)."""
        self.input_picture.set(image)
        if task is not None:
            self.task = task
        if self.task == "inpaint":
            self.input_picture.open_mask_canvas()
        self._update_control_map()

    def _update_control_map(self) -> None:
        if self.task == "control":
            self.input_picture.show_control_map(self.kind.value)

    def send_to(self, task: str, image: Image.Image | None = None) -> None:
        """Send a picture (default: the selected one) to Edit, Inpaint (opens a mask canvas) or Control, or to
        "style": the style picture of the next runs, whatever the task."""
        if task not in (*_INPUT_NAMES, "style"):
            raise ValueError(f"pictures can be sent to edit, inpaint, control or style, not {task!r}")
        if image is None:
            image = self.gallery_view.selected_picture()
        if task == "style":
            self.style_picture.set(image)
            self._style_box.selected_index = 0
            return
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
        return self.run_view.busy

    @property
    def show_preview(self) -> bool:
        """Whether the run view shows the predicted x0 at each step."""
        return self.run_view.show_preview

    @show_preview.setter
    def show_preview(self, value: bool) -> None:
        self.run_view.show_preview = bool(value)

    def generate(self, background: bool = True) -> None:
        """What the Generate button does: call the task function with `kwargs`, in a thread unless told not to."""
        self._start(self._execute, background)

    def compare(self, background: bool = True) -> None:
        """What the Compare button does: `ig.compare` with the controls' settings and the compare row's values of
        one argument; the grid shows where the preview is and each cell goes to the gallery with its recipe."""
        self._start(self._execute_compare, background, self._comparison_axis)

    def _comparison_axis(self, task: str, kw: dict[str, Any]) -> int:
        """Put the compare row's argument and values into `kw`; returns how many pictures the grid makes."""
        axis, values = self.compare_row.axis_values(task)
        if axis == "style_scale" and "style" not in kw:
            raise ValueError("style_scale needs a style picture: upload one in the style box, or press → Style")
        del kw["num_images"]
        kw[axis] = values
        return len(values)

    def _start(self, target, background: bool, axis=None) -> None:
        """Check the controls and start `target(task, kwargs, run)` with the run view watching the run, in a
        thread unless told not to; `axis(task, kwargs)`, if given, adds a comparison's values and returns how many
        pictures they make. Errors go to the panel."""
        if self.busy:
            return
        self.error = None
        self.message.value = ""
        if self.seed_mode.value == "random":
            self.roll_seed()
        task = self.task
        try:
            kw = self.kwargs
            self._check(task, kw)
            size = (kw["width"], kw["height"]) if task == "generate" else kw[_INPUT_NAMES[task]].size
            pictures = kw["num_images"] if axis is None else axis(task, kw)
        except Exception as err:
            self._show_error(err)
            return
        run = self.run_view.watch(Run(list(self.listeners)), num_images=pictures, size=size)
        if background:
            self._thread = threading.Thread(target=target, args=(task, kw, run), daemon=True, name="imagegen-studio")
            self._thread.start()
        else:
            target(task, kw, run)

    def _execute_compare(self, task: str, kw: dict[str, Any], run: Run) -> None:
        from ..comparisons import compare

        started = time.perf_counter()
        try:
            prompt = kw.pop("prompt")
            grid = compare(prompt, task=task, run=run, progress=False, **kw)
            self.comparison = grid
            made = [cell for cell in grid.cells.flat if cell is not None]
            kept = [cell for cell in made if read_recipe(cell).get("stopped_at") is None]
            for cell in kept:
                self.gallery_view.add(cell)
            self.run_view.show(grid.image)
            self.result = grid
            stopped = len(kept) < grid.cells.size
            self.run_view.finish(time.perf_counter() - started, stopped=stopped)
            if stopped:
                self.message.value = ("<span style='color:#555'>Stopped: the grid shows the cells made; only the "
                                      f"{len(kept)} finished ones are kept in the gallery.</span>")
        except Exception as err:
            self._show_error(err)
            self.run_view.fail()
        finally:
            self.run_view.release()

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
        self.run_view.stop()

    def _execute(self, task: str, kw: dict[str, Any], run: Run) -> None:
        """Call the task function with the run the run view watches; the pictures go to the gallery."""
        started = time.perf_counter()
        try:
            result = getattr(tasks, task)(**kw, run=run, progress=False)
            self._finish(result, time.perf_counter() - started)
        except Exception as err:
            self._show_error(err)
            self.run_view.fail()
        finally:
            self.run_view.release()

    def _finish(self, result, seconds: float) -> None:
        self.result = result
        pictures = list(result) if isinstance(result, list) else [result]
        kept = [p for p in pictures if read_recipe(p).get("stopped_at") is None]
        for picture in kept:
            self.gallery_view.add(picture)
        if pictures:
            self.run_view.show(pictures[-1])
        stopped = len(kept) < len(pictures)
        self.run_view.finish(seconds, stopped=stopped)
        status = ("Stopped: the unfinished picture is shown but not kept in the gallery "
                  "(its recipe would not make it again)." if stopped else "")
        notes = [s for s in (status, self.run_view.note) if s]
        self.message.value = "<br>".join(f"<span style='color:#555'>{html.escape(n)}</span>" for n in notes)

    def _show_error(self, err: BaseException) -> None:
        self.error = err
        self.message.value = error_html(err)

    # -- the gallery ------------------------------------------------------------------------------------------
    @property
    def results(self) -> list[Image.Image]:
        """This session's pictures, each carrying its recipe (the gallery's)."""
        return self.gallery_view.results

    @property
    def selected(self) -> int | None:
        """The index in `results` of the picture selected in the gallery (None before the first)."""
        return self.gallery_view.selected

    def select(self, index: int) -> None:
        """Show picture `index` of `results` with its recipe (what clicking its thumbnail does)."""
        self.gallery_view.select(index)

    def save_selected(self, path: str | None = None):
        """Save the selected picture as PNG with its recipe (`ig.save`); returns the path. An existing file is never
        replaced: saving to one is an error shown in the Studio."""
        return self.gallery_view.save_selected(path)

    def show_code(self) -> str:
        """Show (and return) the Python that makes the selected picture again."""
        return self.gallery_view.show_code()

    def use_selected(self) -> None:
        """Fill the controls from the selected picture's recipe (and its input pictures, if it has them)."""
        self._use_settings(self.gallery_view.selected_picture())

    def _use_settings(self, picture: Image.Image) -> None:
        recipe = Recipe.from_dict(read_recipe(picture))
        kw = {k: v for k, v in recipe.call_kwargs().items()
              if k in ("model", "negative_prompt", "num_inference_steps", "guidance_scale", "width", "height",
                       "seed", "strength", "kind", "controlnet_conditioning_scale", "lora", "style_scale",
                       "ip_adapter") and v is not None}
        kw["prompt"] = recipe.prompt
        kw.setdefault("lora", None)  # a picture made without a LoRA clears the box
        inputs_kept = picture.info.get(INPUTS_KEY, {})
        note = None
        if not recipe.style:
            kw["style"] = None
        elif "style" in inputs_kept:
            kw["style"] = inputs_kept["style"]
        else:  # a saved PNG keeps the recipe, not the reference picture
            note = ("this picture was made with a style picture that its file does not hold: upload it (the "
                    "style box keeps the one it has)")
        kw["num_images"] = 1
        self.task = recipe.task
        self.kwargs = kw
        if recipe.task in _INPUT_NAMES and _INPUT_NAMES[recipe.task] in inputs_kept:
            self.set_input(inputs_kept[_INPUT_NAMES[recipe.task]])
            if recipe.task == "inpaint" and "mask" in inputs_kept:
                self.mask_canvas.mask = inputs_kept["mask"]
                if recipe.call_kwargs().get("mask_blur") is not None:
                    self.kwargs = {"mask_blur": recipe.call_kwargs()["mask_blur"]}
        if note is not None:
            self.message.value = f"<span style='color:#555'>{html.escape(note)}</span>"
