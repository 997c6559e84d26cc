"""The run view: a progress bar with the steps done and the time left, a live preview of the model's predicted clean
picture x0 at each step, and a Stop button. A thin view over a `steps.Run`: it listens to the run's step events
like every other per-step view, and Stop is `run.stop()`.
"""

from __future__ import annotations

import time

import ipywidgets as widgets
from PIL import Image

from ..steps import Run, Step
from ._common import PIXELATED_CLASS, PIXELATED_CSS, display_width, png_bytes


class RunView(widgets.VBox):
    """Progress, time left, live preview and Stop for one `Run` at a time.

    `view.watch(run, num_images=1, size=(width, height))` makes the view the first listener of `run` (so the
    run's other listeners see the bar already moved) and returns the run, to pass to a task function as `run=`.
    At each step the bar moves, the label says the step, the image of a batch and the seconds left, and the preview
    shows x0 (`show_preview = False` turns it off; a preview that fails turns itself off and says why in `note`).
    Stop asks the run to stop after the step in progress. When the task function has returned, `view.finish(seconds)`
    or `view.fail()` says how the run ended and `view.release()` gives the buttons back. `start_button` (the
    Studio's Generate) shows before Stop and is disabled while a run is in progress; `view.busy` says whether one is.

    >>> import imagegen_nb as ig
    >>> from imagegen_nb.widgets.run_view import RunView
    >>> view = RunView()
    >>> run = view.watch(ig.Run(), size=(64, 64))
    >>> image = ig.generate("a red circle", seed=0, num_inference_steps=4, run=run, progress=False)
    >>> view.progress.value, view.progress_label.value.startswith("step 4/4"), len(view.image_view.value) > 0
    (4, True, True)
    >>> view.finish(1.5); view.release(); view.progress_label.value, view.busy, view.stop_button.disabled
    ('done in 1.5 s', False, True)
    """

    def __init__(self, *, start_button: widgets.Button | None = None):
        self.run: Run | None = None  # the run shown now, or last
        self.busy = False
        self.show_preview = True  # show the predicted x0 at each step
        self.note = ""  # why there is no live preview, if there is none
        self._start_button = start_button
        self._images_done = 0
        self._images_total = 1
        self.stop_button = widgets.Button(description="Stop", button_style="danger", icon="stop", disabled=True)
        self.progress = widgets.IntProgress(value=0, min=0, max=1, layout={"width": "240px"})
        self.progress_label = widgets.Label()
        self.image_view = widgets.Image(format="png", layout={"width": "256px"})
        self.image_view.add_class(PIXELATED_CLASS)
        self.image_view.layout.display = "none"  # no broken-image icon while empty
        self.image_view.observe(lambda change: setattr(self.image_view.layout, "display",
                                                       None if change["new"] else "none"), names="value")
        self.stop_button.on_click(lambda _: self.stop())
        buttons = [self.stop_button] if start_button is None else [start_button, self.stop_button]
        super().__init__([widgets.HBox(buttons), widgets.HBox([self.progress, self.progress_label]),
                          self.image_view, widgets.HTML(PIXELATED_CSS)])

    def watch(self, run: Run, *, num_images: int = 1, size: tuple[int, int] | None = None) -> Run:
        """Show `run` from now on: listen to its steps and make Stop stop it. `num_images` is how many pictures the
        call makes (for the time left), `size` their size (for the preview's shown width)."""
        if self._on_step not in run.listeners:
            run.listeners.insert(0, self._on_step)
        if self._on_start not in run.on_start_listeners:
            run.on_start_listeners.insert(0, self._on_start)
        self.run = run
        self.note = ""
        self._images_done, self._images_total = 0, num_images
        self._set_busy(True)
        self.progress.value, self.progress_label.value = 0, "starting…"
        if size is not None:
            self.image_view.layout.width = f"{display_width(size)}px"
        return run

    def stop(self) -> None:
        """What the Stop button does: end the run after the step in progress."""
        if self.run is not None and self.busy:
            self.run.stop()
            self.progress_label.value = "stopping…"

    def show(self, picture: Image.Image) -> None:
        """Show a picture where the preview is, at its display size."""
        self.image_view.value = png_bytes(picture)
        self.image_view.layout.width = f"{display_width(picture.size)}px"

    def finish(self, seconds: float, *, stopped: bool = False) -> None:
        """Say how the run ended: done in so many seconds, or stopped after which step."""
        if stopped:
            self.progress_label.value = f"stopped after step {self.run.steps_done} of {self.run.total}"
        else:
            self.progress_label.value = f"done in {seconds:.1f} s"

    def fail(self) -> None:
        """Say the run failed (the error itself is for the owner to show)."""
        self.progress_label.value = "failed"

    def release(self) -> None:
        """The run is over: Stop off, the start button back."""
        self._set_busy(False)

    def _set_busy(self, busy: bool) -> None:
        self.busy = busy
        if self._start_button is not None:
            self._start_button.disabled = busy
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
            self.note = f"no live preview ({type(err).__name__}: {err})"
            return
        self.image_view.value = png_bytes(picture)
