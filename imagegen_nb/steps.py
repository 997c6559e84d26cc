"""The one step-recording mechanism: progress bars, live previews, the Stop button and teaching traces all listen
to the same per-step events.

A `Run` watches one pipeline call. For each denoising step it tells its listeners the latent going in (x_t), the
model's output (guided, and the raw denoiser output before guidance) and, computed on demand, the predicted clean
latent x0 and the noise eps that output implies. `run.stop()` ends the run after the current step.

A step is what users count: one per noise level of the schedule they asked for. Some samplers call the model more
than once per step (Heun and KDPM2 twice, PNDM twice on its first step and four times per Runge-Kutta warm-up
step); those extra evaluations belong to the step they finish and are not steps of their own.

>>> import imagegen_nb as ig
>>> seen = []
>>> image = ig.generate("a red circle", seed=0, run=ig.Run(on_step=lambda run, step: seen.append(step.index)))
>>> seen[:3]
[0, 1, 2]
"""

from __future__ import annotations

import time
import weakref
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


def prediction_type(scheduler) -> str:
    """What the model's output is: "epsilon" (the noise), "v_prediction" (v = sqrt(alpha_bar) eps -
    sqrt(1 - alpha_bar) x0), "sample" (x0 itself), or "flow" (the velocity eps - x0 of flow matching)."""
    if schedule_kind(scheduler) == "flow":
        return "flow"
    return scheduler.config.get("prediction_type") or "epsilon"


def _index(scheduler, timestep) -> int | None:
    """The position of `timestep` in the scheduler's sigmas, for the call being made (None if it keeps none)."""
    index = getattr(scheduler, "step_index", None)
    if index is None:
        index = getattr(scheduler, "begin_index", None)
    if index is None and hasattr(scheduler, "index_for_timestep"):
        index = int(scheduler.index_for_timestep(timestep))
    return index


def noise_level(scheduler, timestep, step_index: int | None = None) -> dict[str, float]:
    """The noise level at a timestep: {"alpha_bar": ...} for VP schedules, {"sigma": ...} otherwise."""
    kind = schedule_kind(scheduler)
    t = float(timestep)
    if kind == "vp":
        return {"alpha_bar": float(scheduler.alphas_cumprod[int(round(t))])}
    i = step_index if step_index is not None else _index(scheduler, timestep)
    sigmas = getattr(scheduler, "sigmas", None)
    if kind == "flow" and (i is None or sigmas is None):
        return {"sigma": t / scheduler.config.num_train_timesteps}
    return {"sigma": float(sigmas[i])}


def to_x0_and_noise(kind: str, prediction: str, noise_level: dict[str, float], model_output, sample):
    """The clean latent x0 and the noise eps that a model output implies at x_t = `sample` (float32 tensors).

    Each inverts the forward process of the schedule's kind for the prediction type; together they rebuild x_t
    exactly (up to float32 rounding):

    - "vp", x_t = sqrt(ab) x0 + sqrt(1 - ab) eps. epsilon: x0 = (x_t - sqrt(1 - ab) eps) / sqrt(ab);
      v = sqrt(ab) eps - sqrt(1 - ab) x0 (Salimans & Ho 2022): x0 = sqrt(ab) x_t - sqrt(1 - ab) v and
      eps = sqrt(ab) v + sqrt(1 - ab) x_t; sample: eps = (x_t - sqrt(ab) x0) / sqrt(1 - ab).
    - "sigma", x = x0 + s eps (the model sees x / sqrt(1 + s^2), the VP x_t with ab = 1 / (1 + s^2)).
    - "flow", x_t = (1 - s) x0 + s eps, velocity u = eps - x0: x0 = x_t - s u and eps = x_t + (1 - s) u.
    """
    output, x_t = model_output.float(), sample.float()
    if kind == "flow":
        sigma_t, u_pred = noise_level["sigma"], output
        x0_pred = x_t - sigma_t * u_pred  # x_t = (1 - sigma) x0 + sigma eps and u = eps - x0
        eps_pred = x_t + (1 - sigma_t) * u_pred
        return x0_pred, eps_pred
    if kind == "sigma":
        sigma_t = noise_level["sigma"]
        if prediction == "epsilon":
            eps_pred = output
            return x_t - sigma_t * eps_pred, eps_pred  # x = x0 + sigma eps
        if prediction == "v_prediction":
            # the VP form with alpha_bar = 1 / (1 + sigma^2): x0 = sqrt(ab) x_vp - sqrt(1 - ab) v, x_vp = sqrt(ab) x
            v_pred, scale = output, (sigma_t**2 + 1) ** 0.5
            x0_pred = x_t / scale**2 - v_pred * sigma_t / scale
            eps_pred = v_pred / scale + x_t * sigma_t / scale**2
            return x0_pred, eps_pred
        x0_pred = output  # sample
        return x0_pred, (x_t - x0_pred) / sigma_t
    alpha_bar_t = noise_level["alpha_bar"]
    if prediction == "v_prediction":
        v_pred = output  # v = sqrt(ab) eps - sqrt(1 - ab) x0
        x0_pred = alpha_bar_t**0.5 * x_t - (1 - alpha_bar_t) ** 0.5 * v_pred
        eps_pred = alpha_bar_t**0.5 * v_pred + (1 - alpha_bar_t) ** 0.5 * x_t
        return x0_pred, eps_pred
    if prediction == "sample":
        x0_pred = output  # eps = (x_t - sqrt(ab) x0) / sqrt(1 - ab)
        return x0_pred, (x_t - alpha_bar_t**0.5 * x0_pred) / (1 - alpha_bar_t) ** 0.5
    eps_pred = output  # x0 = (x_t - sqrt(1 - ab) eps) / sqrt(ab)
    return (x_t - (1 - alpha_bar_t) ** 0.5 * eps_pred) / alpha_bar_t**0.5, eps_pred


def predict_x0(scheduler, model_output, sample, timestep, step_index: int | None = None):
    """The clean latent x0 the model predicts from x_t = `sample` and its output at `timestep`.

    Inverts the forward process of the scheduler's kind for its prediction type (epsilon, v or flow velocity):
    for epsilon on a VP schedule, x0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t).
    """
    x_t, level = sample, noise_level(scheduler, timestep, step_index)
    x0_pred, _ = to_x0_and_noise(schedule_kind(scheduler), prediction_type(scheduler), level, model_output, x_t)
    return x0_pred


def predict_noise(scheduler, model_output, sample, timestep, step_index: int | None = None):
    """The noise eps the model's output at `timestep` implies, whatever it predicts (see `to_x0_and_noise`)."""
    x_t, level = sample, noise_level(scheduler, timestep, step_index)
    _, eps_pred = to_x0_and_noise(schedule_kind(scheduler), prediction_type(scheduler), level, model_output, x_t)
    return eps_pred


@dataclass
class Step:
    """What happened at one denoising step. Tensors are the pipeline's own (on its device): copy to keep them.

    `latents` and `model_output` are those of the step's first model call (x_t and the prediction there); a step
    that evaluates the model again (Heun, PNDM's first step) has `model_calls` > 1.
    """

    index: int  # 0-based
    total: int  # steps in the run
    timestep: float
    latents: Any  # x_t, the latent going into this step, as the scheduler sees it
    model_output: Any  # the model's prediction the scheduler used (after classifier-free guidance): eps, v, ...
    raw_output: Any  # the denoiser's output before guidance (batch 2B when guidance is on), or None
    pipe: Any = field(repr=False, default=None)
    elapsed: float = 0.0  # seconds since the run started, when the step began
    model_calls: int = 1  # denoiser evaluations this step took
    _step_index: int | None = field(default=None, repr=False)
    _noise_level: dict | None = field(default=None, repr=False)  # the noise level, read when the step began
    _kind: str | None = field(default=None, repr=False)
    _prediction: str | None = field(default=None, repr=False)

    @cached_property
    def noise_level(self) -> dict[str, float]:
        """The noise level: {"alpha_bar": ...} (VP schedules) or {"sigma": ...} (sigma and flow schedules)."""
        if self._noise_level is not None:
            return self._noise_level
        return noise_level(self.pipe.scheduler, self.timestep, self._step_index)

    @property
    def kind(self) -> str:
        return self._kind if self._kind is not None else schedule_kind(self.pipe.scheduler)

    @property
    def prediction_type(self) -> str:
        return self._prediction if self._prediction is not None else prediction_type(self.pipe.scheduler)

    def split(self, output):
        """x0 and eps (float32) that a model output in the scheduler's convention implies at this step."""
        return to_x0_and_noise(self.kind, self.prediction_type, self.noise_level, output, self.latents)

    @cached_property
    def _x0_noise(self):
        return self.split(self.model_output)

    @property
    def x0(self):
        """The predicted clean latent (float32)."""
        return self._x0_noise[0]

    @property
    def noise(self):
        """The noise eps the model's (guided) output implies (float32): the output itself for epsilon models."""
        return self._x0_noise[1]

    @cached_property
    def guidance_halves(self):
        """(conditional, unconditional) model outputs before guidance, in the scheduler's convention, or None
        when the denoiser ran without a classifier-free guidance batch."""
        import torch

        raw, b = self.raw_output, self.latents.shape[0]
        if isinstance(raw, (list, tuple)) and len(raw) == 2 * b and all(isinstance(r, torch.Tensor) for r in raw):
            # Z-Image: a list [cond..., uncond...] of (C, 1, h, w), which the pipeline negates for the scheduler
            out = -torch.stack([r.float() for r in raw]).squeeze(2)
            if out.shape[1:] == self.latents.shape[1:]:
                return out[:b], out[b:]
            return None
        if isinstance(raw, torch.Tensor) and raw.shape[0] == 2 * b and raw.shape[1:] == self.latents.shape[1:]:
            return raw[b:], raw[:b]  # diffusers batches [unconditional, conditional]
        return None


Listener = Callable[["Run", Step], Any]


class Run:
    """One watched pipeline call: listeners hear every step; `stop()` ends it after the current step.

    Pass it to any task function as `run=`. Listeners are callables `(run, step)`; `on_start(run)` and
    `on_end(run)` are called before the first and after the last step. A Run can be used again: a stop asked for
    during an earlier call does not carry over to the next one.

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
        self._pipe = None  # a weak reference: a finished Run must not keep an evicted pipeline alive
        self.result = None  # what the task function returned, once it did
        self.error: BaseException | None = None
        self._calls_ended = 0  # pipeline calls this Run has watched to their end
        self._stop_asked_at = 0  # the value of _calls_ended when stop() was last called

    @property
    def pipe(self):
        """The pipeline this Run watches or last watched, while it still exists (None once the cache let it go)."""
        return self._pipe() if self._pipe is not None else None

    @pipe.setter
    def pipe(self, value) -> None:
        self._pipe = None if value is None else weakref.ref(value)

    def add(self, listener: Listener) -> Run:
        self.listeners.append(listener)
        return self

    def stop(self) -> None:
        """Ask the run to stop after the step in progress (thread-safe: a flag read between steps)."""
        self._stop_asked_at = self._calls_ended
        self.stop_requested = True

    @property
    def stopped(self) -> bool:
        return self.stop_requested and self.total is not None and self.steps_done < self.total

    def _begin(self, pipe, total: int | None) -> None:
        if self.stop_requested and self._stop_asked_at < self._calls_ended:
            self.stop_requested = False  # asked during a call that has ended: not a stop for this one
        self.pipe, self.total, self.steps_done, self.started = pipe, total, 0, time.perf_counter()


def _mid_step(scheduler) -> bool:
    """Whether the `step` call just made left its denoising step unfinished (the next model call finishes it).

    Heun and KDPM2 evaluate the model twice per step (`state_in_first_order` is False in between; the run's last
    call is a first-order step of its own). PNDM's PLMS evaluates twice for its first step (its counter is 1 in
    between), and its Runge-Kutta warm-up four times per step.
    """
    if hasattr(type(scheduler), "state_in_first_order"):
        if scheduler.state_in_first_order:
            return False
        index = getattr(scheduler, "step_index", None)
        return index is None or index < len(scheduler.timesteps)
    if type(scheduler).__name__ == "PNDMScheduler":
        counter = scheduler.counter
        warm_up = 0 if scheduler.config.skip_prk_steps else len(scheduler.prk_timesteps)
        if counter <= warm_up:
            return counter % 4 != 0
        return counter == 1
    return False


class ProgressBar:
    """The console and notebook progress bar of a task call (tqdm.auto), a listener of its `Run` like every other
    view: one bar for the whole call, counting denoising steps as users count them (PNDM's warm-up evaluations and
    Heun's second ones fall inside a step, where diffusers' own bar would count them).

    >>> import imagegen_nb as ig
    >>> bar = ProgressBar(total=4, disable=True)
    >>> _ = ig.generate("a red circle", seed=0, num_inference_steps=4, run=ig.Run(on_step=bar), progress=False)
    >>> bar.done
    4
    """

    def __init__(self, total: int, *, delay: float = 1.0, disable: bool = False):
        self.total, self.delay, self.disable = total, delay, disable
        self.done = 0
        self._bar = None

    def __call__(self, run: Run, step: Step) -> None:
        if self._bar is None and not self.disable:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.total, delay=self.delay, leave=False, unit="step")
        self.done += 1
        if self._bar is not None:
            self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


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
    pending: list[Step] = []  # a step whose first model call is made and whose last is still to come
    hook = None
    if run.keep_raw_output and denoiser is not None:
        def capture(module, args, output):
            raw["out"] = output[0] if isinstance(output, (tuple, list)) else getattr(output, "sample", output)
        hook = denoiser.register_forward_hook(capture)
    kind, prediction = schedule_kind(scheduler), prediction_type(scheduler)

    def finish(event: Step) -> None:
        run.steps_done += 1
        for listener in run.listeners:
            listener(run, event)
        if run.stop_requested:
            pipe._interrupt = True

    def step(model_output, timestep, sample, *args, **kwargs):
        if pending:
            event = pending.pop()
            event.model_calls += 1
            raw.pop("out", None)
        else:
            index = _index(scheduler, timestep) if kind != "vp" else getattr(scheduler, "step_index", None)
            event = Step(index=run.steps_done, total=run.total or 0, timestep=float(timestep), latents=sample,
                         model_output=model_output, raw_output=raw.pop("out", None), pipe=pipe,
                         elapsed=time.perf_counter() - (run.started or 0.0), _step_index=index,
                         _noise_level=noise_level(scheduler, timestep, index), _kind=kind, _prediction=prediction)
        result = original_step(model_output, timestep, sample, *args, **kwargs)
        if _mid_step(scheduler):
            pending.append(event)
        else:
            finish(event)
        return result

    run._begin(pipe, total)
    scheduler.step = step
    try:
        for fn in run.on_start_listeners:
            fn(run)
        yield
        if pending:  # a pipeline that stopped calling between a step's model calls: the step is as done as it gets
            finish(pending.pop())
    finally:
        del scheduler.step  # back to the class's method
        if hook is not None:
            hook.remove()
        pipe._interrupt = False
        run._calls_ended += 1
        for fn in run.on_end_listeners:
            fn(run)
