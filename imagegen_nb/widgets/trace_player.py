"""Step through a recorded denoising run: at each step the noisy latent x_t, the model's predicted clean picture
x0 and the noise eps its prediction implies, side by side, with the timestep and the noise level of the schedule.
"""

from __future__ import annotations

import ipywidgets as widgets

from ._common import PIXELATED_CLASS, PIXELATED_CSS, error_html, png_bytes

# what trace.decode shows, and the caption under it
PANELS = (("latent", "x<sub>t</sub>: the noisy latent going in"),
          ("x0", "predicted x<sub>0</sub>: the model's guess of the result"),
          ("noise", "predicted noise ε"))
# The noise panel shows trace.noise, the eps the model's output implies; say what that output was.
NOISE_CAPTIONS = {
    "epsilon": "predicted noise ε (the model's output)",
    "v_prediction": "noise ε implied by the model's output v = √ᾱ<sub>t</sub>·ε − √(1−ᾱ<sub>t</sub>)·x<sub>0</sub>",
    "flow": "noise ε implied by the model's output, the velocity ε − x<sub>0</sub>",
    "sample": "noise ε implied by the model's output x<sub>0</sub>",
}


def captions(trace) -> tuple[tuple[str, str], ...]:
    """The panels for this trace: what `trace.decode` shows in each, and the caption under it."""
    noise = NOISE_CAPTIONS.get(getattr(trace, "prediction_type", "epsilon"), "noise ε implied by the model's output")
    return tuple((what, noise if what == "noise" else caption) for what, caption in PANELS)


class TracePlayer(widgets.VBox):
    """A slider and a Play button over the steps of a trace (`ig.trace(...)`).

    For step i it shows `trace.decode(i, "latent")`, `trace.decode(i, "x0")` and `trace.decode(i, "noise")` (the
    noise eps the model's output implies, whether it predicts eps, v or a flow velocity; the caption says which),
    and the timestep t with the schedule's noise level: alpha_bar_t for VP schedules
    (x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps), sigma for sigma and flow schedules.
    `fast=True` decodes with the cheap linear latent-to-colour map instead of the VAE. Decoded pictures are kept,
    so going back to a step is instant.

    >>> import imagegen_nb as ig
    >>> player = ig.TracePlayer(ig.trace("a red circle", seed=0, num_inference_steps=4))
    >>> player.slider.value = 3; player.info.value.startswith("step 3 / 3")
    True
    """

    def __init__(self, trace, *, fast: bool = False, interval: int = 400, panel_width: int = 192):
        steps = len(trace)
        if steps == 0:
            raise ValueError("this trace has no steps to show")
        self.trace = trace
        self.panel_width = panel_width
        self._pictures: dict[tuple[int, str, bool], bytes] = {}
        self.slider = widgets.IntSlider(value=0, min=0, max=steps - 1, description="step",
                                        continuous_update=True, layout={"width": "420px"})
        self.play = widgets.Play(value=0, min=0, max=steps - 1, interval=interval, description="play")
        widgets.link((self.play, "value"), (self.slider, "value"))
        self.fast = widgets.Checkbox(value=fast, description="fast preview (no VAE)", indent=False)
        self.info = widgets.HTML()
        self.message = widgets.HTML()
        self.views: dict[str, widgets.Image] = {}
        columns = []
        for what, caption in captions(trace):
            view = widgets.Image(format="png", layout={"width": f"{panel_width}px"})
            view.add_class(PIXELATED_CLASS)
            self.views[what] = view
            columns.append(widgets.VBox([view, widgets.HTML(f"<div style='width:{panel_width}px;font-size:90%;"
                                                            f"line-height:1.3'>{caption}</div>")]))
        self.slider.observe(lambda change: self.show(change["new"]), names="value")
        self.fast.observe(lambda _: self.show(self.slider.value), names="value")
        super().__init__([widgets.HTML(PIXELATED_CSS), widgets.HBox([self.play, self.slider, self.fast]),
                          self.info, widgets.HBox(columns), self.message])
        self.show(0)

    @property
    def step(self) -> int:
        return self.slider.value

    def noise_level(self, i: int) -> dict[str, float]:
        """The schedule's noise level at step i: {"alpha_bar": ...} or {"sigma": ...}."""
        if hasattr(self.trace, "noise_level"):
            return dict(self.trace.noise_level(i))
        alpha_bar = getattr(self.trace, "alpha_bar", None)
        if alpha_bar is not None:
            return {"alpha_bar": float(alpha_bar[i])}
        return {"sigma": float(self.trace.sigmas[i])}

    def show(self, i: int) -> None:
        """Show step i (what moving the slider does)."""
        steps = len(self.trace)
        if not 0 <= i < steps:
            raise ValueError(f"step must be in 0..{steps - 1}, not {i!r}")
        if self.slider.value != i:
            self.slider.value = i  # comes back here through the observer
            return
        t = float(self.trace.timesteps[i])
        level = self.noise_level(i)
        text = ", ".join(f"{'ᾱ<sub>t</sub>' if k == 'alpha_bar' else 'σ'} = {v:.4g}" for k, v in level.items())
        self.info.value = f"step {i} / {steps - 1} · t = {t:g} · {text}"  # 0-based, like trace.decode(i)
        errors = []
        for what, view in self.views.items():
            try:
                view.value = self._picture(i, what)
            except Exception as err:
                view.value = b""
                errors.append(error_html(err))
        self.message.value = "".join(errors)

    def _picture(self, i: int, what: str) -> bytes:
        key = (i, what, bool(self.fast.value))
        if key not in self._pictures:
            picture = self.trace.decode(i, what, fast=bool(self.fast.value))
            self._pictures[key] = png_bytes(picture)  # shown panel_width wide, pixels as squares if small
        return self._pictures[key]
