"""The one step-recording mechanism: progress bars, live previews, the Stop button and teaching traces all listen
to the same per-step events.

A `Run` watches one pipeline call. For each denoising step it tells its listeners the latent going in (x_t), the
model's prediction (guided, and the raw denoiser output before guidance) and, computed on demand, the predicted
clean latent x0. `run.stop()` ends the run after the current step.

>>> import imagegen_nb as ig
>>> seen = []
>>> image = ig.generate("a red circle", seed=0, run=ig.Run(on_step=lambda run, step: seen.append(step.index)))
>>> seen[:3]
[0, 1, 2]
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

# Schedulers whose latents live in "variance exploding" form x = x0 + sigma * eps (k-diffusion style).
_SIGMA_SCHEDULERS = {
    "EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler", "HeunDiscreteScheduler", "LMSDiscreteScheduler",
    "KDPM2DiscreteScheduler", "KDPM2AncestralDiscreteScheduler", "DPMSolverSDEScheduler", "EDMEulerScheduler",
}


def schedule_kind(scheduler) -> str:
    """"flow" (x_t = (1 - sigma) x0 + sigma eps), "sigma" (x_t = x0 + sigma eps) or "vp"
    (x_t = sqrt(alpha_bar) x0 + sqrt(1 - alpha_bar) eps)."""
    name = type(scheduler).__name__
    cfg = scheduler.config
    if "FlowMatch" in name or cfg.get("use_flow_sigmas") or cfg.get("prediction_type") == "flow_prediction":
        return "flow"
    if name in _SIGMA_SCHEDULERS:
        return "sigma"
    return "vp"


def schedule_value(scheduler, timestep, step_index: int | None = None) -> dict[str, float]:
    """The noise level at a timestep: {"alpha_bar": ...} for VP schedules, {"sigma": ...} otherwise."""
    kind = schedule_kind(scheduler)
    t = float(timestep)
    if kind == "flow":
        return {"sigma": t / scheduler.config.num_train_timesteps}
    if kind == "sigma":
        i = step_index if step_index is not None else int(scheduler.index_for_timestep(timestep))
        return {"sigma": float(scheduler.sigmas[i])}
    return {"alpha_bar": float(scheduler.alphas_cumprod[int(round(t))])}


def predict_x0(scheduler, model_output, sample, timestep, step_index: int | None = None):
    """The clean latent x0 the model predicts from x_t = `sample` and its output at `timestep`.

    Inverts the forward process of the scheduler's kind for its prediction type (epsilon, v or flow velocity):
    for epsilon on a VP schedule, x0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t).
    """
    kind = schedule_kind(scheduler)
    pred = scheduler.config.get("prediction_type", "epsilon")
    value = schedule_value(scheduler, timestep, step_index)
    out, x = model_output.float(), sample.float()
    if kind == "flow":  # velocity v = eps - x0
        return x - value["sigma"] * out
    if kind == "sigma":
        s = value["sigma"]
        if pred == "v_prediction":
            return x / (s**2 + 1) - out * s / (s**2 + 1) ** 0.5
        return x - s * out if pred == "epsilon" else out
    ab = value["alpha_bar"]
    if pred == "v_prediction":
        return ab**0.5 * x - (1 - ab) ** 0.5 * out
    if pred == "sample":
        return out
    return (x - (1 - ab) ** 0.5 * out) / ab**0.5


@dataclass
class Step:
    """What happened at one denoising step. Tensors are the pipeline's own (on its device): copy to keep them."""

    index: int  # 0-based
    total: int  # steps in the run
    timestep: float
    latents: Any  # x_t, the latent going into this step, as the scheduler sees it
    model_output: Any  # the prediction the scheduler used (after classifier-free guidance)
    raw_output: Any  # the denoiser's output before guidance (batch 2B when guidance is on), or None
    pipe: Any = field(repr=False, default=None)
    elapsed: float = 0.0  # seconds since the run started

    @cached_property
    def x0(self):
        """The predicted clean latent (float32)."""
        return predict_x0(self.pipe.scheduler, self.model_output, self.latents, self.timestep, self._step_index)

    @cached_property
    def schedule(self) -> dict[str, float]:
        return schedule_value(self.pipe.scheduler, self.timestep, self._step_index)

    _step_index: int | None = field(default=None, repr=False)


Listener = Callable[["Run", Step], Any]


class Run:
    """One watched pipeline call: listeners hear every step; `stop()` ends it after the current step.

    Pass it to any task function as `run=`. Listeners are callables `(run, step)`; `on_start(run)` and
    `on_end(run)` are called before the first and after the last step.

    >>> import imagegen_nb as ig
    >>> run = ig.Run(on_step=lambda run, step: run.stop() if step.index == 2 else None)
    >>> _ = ig.generate("a red circle", seed=0, run=run)
    >>> run.steps_done, run.stopped
    (3, True)
    """

    def __init__(self, on_step: Listener | list[Listener] | None = None, *, on_start=None, on_end=None,
                 keep_raw_output: bool = False):
        self.listeners: list[Listener] = [] if on_step is None else (
            list(on_step) if isinstance(on_step, (list, tuple)) else [on_step])
        self.on_start_listeners = [on_start] if on_start else []
        self.on_end_listeners = [on_end] if on_end else []
        self.keep_raw_output = keep_raw_output
        self.stop_requested = False
        self.steps_done = 0
        self.total: int | None = None
        self.started: float | None = None
        self.pipe = None
        self.result = None  # what the task function returned, once it did
        self.error: BaseException | None = None

    def add(self, listener: Listener) -> Run:
        self.listeners.append(listener)
        return self

    def stop(self) -> None:
        """Ask the run to stop after the step in progress (thread-safe: a flag read between steps)."""
        self.stop_requested = True

    @property
    def stopped(self) -> bool:
        return self.stop_requested and self.total is not None and self.steps_done < self.total


@contextmanager
def watch(pipe, run: Run | None, total: int | None = None):
    """Attach `run` to `pipe` for one call: wrap its scheduler's `step`, and hook its denoiser for the raw output.

    Everything is undone on exit, also after an error or a stop, so the cached pipeline stays as it was.
    """
    if run is None:
        yield
        return
    scheduler = pipe.scheduler
    original_step = scheduler.step
    denoiser = getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)
    raw: dict[str, Any] = {}
    hook = None
    if run.keep_raw_output and denoiser is not None:
        def capture(module, args, output):
            raw["out"] = output[0] if isinstance(output, (tuple, list)) else getattr(output, "sample", output)
        hook = denoiser.register_forward_hook(capture)

    def step(model_output, timestep, sample, *args, **kwargs):
        index = run.steps_done
        step_index = getattr(scheduler, "step_index", None)
        event = Step(index=index, total=run.total or 0, timestep=float(timestep), latents=sample,
                     model_output=model_output, raw_output=raw.pop("out", None), pipe=pipe,
                     elapsed=time.perf_counter() - (run.started or 0.0), _step_index=step_index)
        result = original_step(model_output, timestep, sample, *args, **kwargs)
        run.steps_done += 1
        for listener in run.listeners:
            listener(run, event)
        if run.stop_requested:
            pipe._interrupt = True
        return result

    run.pipe, run.total, run.steps_done, run.started = pipe, total, 0, time.perf_counter()
    scheduler.step = step
    try:
        for fn in run.on_start_listeners:
            fn(run)
        yield
    finally:
        del scheduler.step  # back to the class's method
        if hook is not None:
            hook.remove()
        pipe._interrupt = False
        for fn in run.on_end_listeners:
            fn(run)
