"""Traces: every step of one picture's denoising, kept for looking at afterwards (the teaching lessons, the trace
player). A trace is only a listener on the one step-recording mechanism, `imagegen_nb.steps.Run`.

At step i the sampler holds x_t (`latents[i]`), the model predicts the noise eps (`noise[i]`, after
classifier-free guidance; `noise_cond[i]` and `noise_uncond[i]` before it; v-prediction models predict
v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x0 instead, and `tensor`/`decode` show the eps it implies),
and inverting the forward process gives the clean latent the model currently believes in, x0 (`x0[i]`). For a VP
schedule with epsilon prediction

    x_t = sqrt(alpha_bar_t) * x0 + sqrt(1 - alpha_bar_t) * eps        (Ho et al. 2020, eq. 4)

holds at every step by construction; for sigma ("k-diffusion") schedules x_t = x0 + sigma * eps, for flow
matching x_t = (1 - sigma) * x0 + sigma * eps with velocity v = eps - x0.

>>> import imagegen_nb as ig
>>> tr = ig.trace("a red circle", seed=0, num_inference_steps=4)
>>> len(tr), tuple(tr.x0.shape), tr.schedule_kind
(4, (4, 4, 16, 16), 'vp')
>>> tr.decode(-1, "x0").size
(64, 64)
"""

from __future__ import annotations

import copy
import weakref
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from .steps import Run

__all__ = ["Trace", "trace"]

_TASKS = ("generate", "edit", "inpaint", "control")
_KINDS = ("x0", "latent", "noise", "noise_cond", "noise_uncond")


@dataclass(repr=False)
class Trace:
    """The record of one picture's denoising. Tensors are on the CPU in float16, one row per step.

    `latents` (x_t going into the step), `noise` (the guided prediction the sampler used), `noise_cond` and
    `noise_uncond` (the denoiser's two halves before guidance; None without guidance), `x0` (the predicted clean
    latent) are (steps, C, H, W). `timesteps` is (steps,); `alpha_bar` (VP schedules) or `sigmas` (sigma and flow
    schedules) gives the noise level at each step, the other is None.

    >>> import imagegen_nb as ig
    >>> tr = ig.trace("two green triangles", seed=3, num_inference_steps=3)
    >>> isinstance(tr, ig.Trace), len(tr), tr.decode(0, "latent", fast=True).size
    (True, 3, (16, 16))
    """

    image: Image.Image  # the final picture, carrying its recipe
    timesteps: Any
    latents: Any
    noise: Any
    x0: Any
    noise_cond: Any = None
    noise_uncond: Any = None
    alpha_bar: Any = None
    sigmas: Any = None
    elapsed: Any = None  # seconds since the run started, per step
    family: str = ""
    schedule_kind: str = "vp"  # "vp", "sigma" or "flow"
    prediction_type: str = "epsilon"  # "epsilon", "v_prediction", "sample", or "flow" (velocity eps - x0)
    _pipe: Any = field(default=None, repr=False)  # weak reference: a trace must not keep an evicted model alive
    _model: str | None = field(default=None, repr=False)
    _scheduler: Any = field(default=None, repr=False)  # a copy holding this run's timesteps and sigmas
    _step_indices: list = field(default_factory=list, repr=False)

    def __len__(self) -> int:
        return int(self.timesteps.shape[0])

    def __repr__(self) -> str:
        level = "alpha_bar" if self.alpha_bar is not None else "sigmas"
        shape = tuple(self.latents.shape[1:]) if len(self) else ()
        cfg = "with" if self.noise_cond is not None else "without"
        return (f"Trace({len(self)} steps of {self.family} ({self.schedule_kind} schedule, {level}), latents "
                f"{shape}, {cfg} cond/uncond split)")

    @property
    def pipe(self):
        """The pipeline that made the trace (from the shared cache again if it was evicted since)."""
        pipe = self._pipe() if self._pipe is not None else None
        if pipe is None:
            from . import cache

            _, pipe = cache.shared.pipeline(self._model, "generate")
        return pipe

    def _index(self, i: int) -> int:
        n = len(self)
        if not isinstance(i, int) or not -n <= i < n:
            raise IndexError(f"step {i!r} is out of range for a trace of {n} steps")
        return i % n

    def level(self, i: int) -> dict[str, float]:
        """The noise level at step i: {"alpha_bar": ...} or {"sigma": ...}."""
        i = self._index(i)
        if self.alpha_bar is not None:
            return {"alpha_bar": float(self.alpha_bar[i])}
        return {"sigma": float(self.sigmas[i])}

    def x0_from(self, i: int, noise):
        """The clean latent a given prediction at step i implies (e.g. `noise_cond[i]`): the same inversion of the
        forward process that gives `x0[i]` (`imagegen_nb.steps.predict_x0`). Returns float32 (C, H, W)."""
        from .steps import predict_x0

        i = self._index(i)
        out = predict_x0(self._scheduler, noise.float()[None], self.latents[i].float()[None],
                         float(self.timesteps[i]), self._step_indices[i])
        return out[0]

    def tensor(self, i: int, what: str = "x0"):
        """The float32 latent (C, H, W) `decode` would show: x0, x_t ("latent"), or a noise prediction.

        For sigma schedules x_t = x0 + sigma * eps is divided by sqrt(1 + sigma^2) (what the sampler does before
        the model sees it), so it is on the VAE's scale like the other kinds. A noise prediction is the noise eps
        the model's output implies, whatever it predicts: a v-prediction model's v is turned into
        eps = (x_t - sqrt(alpha_bar) x0) / sqrt(1 - alpha_bar), with x0 from that same output. (`noise`,
        `noise_cond` and `noise_uncond` keep the outputs as they were: near pure noise, only v still holds x0.)
        Flow models' velocity eps - x0 is shown as it is.
        """
        i = self._index(i)
        if what not in _KINDS:
            raise ValueError(f"what must be one of {', '.join(map(repr, _KINDS))}, not {what!r}")
        source = {"x0": self.x0, "latent": self.latents, "noise": self.noise, "noise_cond": self.noise_cond,
                  "noise_uncond": self.noise_uncond}[what]
        if source is None:
            raise ValueError(f"this trace has no {what}: it was made without classifier-free guidance "
                             "(guidance_scale <= 1, or a guidance-distilled model)")
        z = source[i].float()
        if what == "latent" and self.schedule_kind == "sigma":
            z = z / (1.0 + float(self.sigmas[i]) ** 2) ** 0.5
        if what.startswith("noise") and self.prediction_type not in ("epsilon", "flow"):
            z = self._implied_noise(i, z)
        return z

    def _implied_noise(self, i: int, prediction):
        x_t, x0 = self.latents[i].float(), self.x0_from(i, prediction)
        if self.alpha_bar is not None:
            ab = float(self.alpha_bar[i])
            return (x_t - ab**0.5 * x0) / (1 - ab) ** 0.5
        return (x_t - x0) / float(self.sigmas[i])

    def decode(self, i: int, what: str = "x0", *, fast: bool = False) -> Image.Image:
        """Step i as a picture: `what` is "x0" (the model's current guess), "latent" (x_t) or "noise" (also
        "noise_cond", "noise_uncond"). The full VAE by default; `fast=True` uses the cheap linear preview
        (`imagegen_nb.previews.preview_image`), at latent resolution. Decoding happens only when asked."""
        from .previews import preview_image, vae_decode

        z = self.tensor(i, what)
        pipe = self.pipe
        if fast:
            return preview_image(z[None], pipe, family=self.family)
        return vae_decode(z[None], pipe)


class _Recorder:
    """The listener: copies each step's tensors to the CPU in float16 as they go by."""

    def __init__(self):
        self.timesteps: list[float] = []
        self.levels: list[float] = []
        self.elapsed: list[float] = []
        self.latents: list = []
        self.noise: list = []
        self.x0: list = []
        self.raw: list = []
        self.step_indices: list[int | None] = []
        self.kind: str | None = None
        self.scheduler = None
        self.pipe = None

    def __call__(self, run: Run, step) -> None:
        import torch

        from .steps import schedule_kind

        if self.kind is None:
            self.pipe = step.pipe
            self.kind = schedule_kind(step.pipe.scheduler)
            # A shallow copy keeps this run's timesteps/sigmas even after the cached scheduler is set up again.
            self.scheduler = copy.copy(step.pipe.scheduler)
        value = step.schedule
        index = step._step_index
        if index is None and self.kind == "sigma":
            index = int(step.pipe.scheduler.index_for_timestep(step.timestep))
        self.timesteps.append(step.timestep)
        self.levels.append(value.get("alpha_bar", value.get("sigma")))
        self.elapsed.append(step.elapsed)
        self.step_indices.append(index)

        def keep(t):
            return t.detach()[0].to(device="cpu", dtype=torch.float16, copy=True)

        self.latents.append(keep(step.latents))
        self.noise.append(keep(step.model_output))
        self.x0.append(keep(step.x0))
        raw, b = step.raw_output, step.latents.shape[0]
        if isinstance(raw, torch.Tensor) and raw.shape[0] == 2 * b and raw.shape[1:] == step.latents.shape[1:]:
            # diffusers batches [unconditional, conditional] for classifier-free guidance
            self.raw.append((keep(raw[b:]), keep(raw[:b])))
        else:
            self.raw.append(None)


def trace(prompt, *, task: str = "generate", image=None, mask_image=None, control_image=None, run: Run | None = None,
          **kwargs) -> Trace:
    """Make one picture like `ig.generate` (or `ig.edit`, `ig.inpaint`, `ig.control` by `task=`) and keep every step.

    Takes the task function's arguments: `task="edit"` needs `image=`, `"inpaint"` needs `image=` and
    `mask_image=`, `"control"` needs `control_image=`. Pass `run=ig.Run(...)` to listen (or stop) as well; the
    trace is added to its listeners. FLUX's packed latents (1 x tokens x 64) are stored unpacked, (16, H/8, W/8).

    >>> import imagegen_nb as ig
    >>> tr = ig.trace("a blue square", seed=1, num_inference_steps=3, guidance_scale=4.0)
    >>> tuple(tr.noise_cond.shape), tr.alpha_bar is not None
    ((3, 4, 16, 16), True)
    """
    import torch

    from . import tasks

    if task not in _TASKS:
        raise ValueError(f"task must be one of {', '.join(_TASKS)}, not {task!r}")
    if kwargs.get("num_images", 1) != 1 or not isinstance(prompt, str):
        raise ValueError("a trace follows one picture: give one prompt (a string) and num_images=1, not "
                         f"prompt={prompt!r}, num_images={kwargs.get('num_images', 1)!r}")
    if mask_image is None and task == "inpaint":
        mask_image = kwargs.pop("mask", None)
    needs = {"edit": {"image": image}, "inpaint": {"image": image, "mask_image": mask_image},
             "control": {"control_image": control_image}}.get(task, {})
    missing = [name for name, value in needs.items() if value is None]
    if missing:
        raise ValueError(f"task={task!r} needs {' and '.join(f'{n}=' for n in missing)}")

    recorder = _Recorder()
    if run is None:
        run = Run(on_step=recorder, keep_raw_output=True)
    else:
        run.keep_raw_output = True
        run.add(recorder)
    try:
        if task == "generate":
            result = tasks.generate(prompt, run=run, **kwargs)
        elif task == "edit":
            result = tasks.edit(image, prompt, run=run, **kwargs)
        elif task == "inpaint":
            result = tasks.inpaint(image, mask_image, prompt, run=run, **kwargs)
        else:
            result = tasks.control(control_image, prompt, run=run, **kwargs)
    finally:
        run.listeners.remove(recorder)  # a user's Run may be used again; this trace is done listening

    from .recipes import recipe as recipe_of

    r = recipe_of(result)
    pipe = recorder.pipe
    width, height = result.size

    def stack(items):
        if not items:
            return torch.zeros(0, dtype=torch.float16)
        out = torch.stack(items)
        if out.ndim == 3 and pipe is not None and hasattr(pipe, "_unpack_latents"):
            # FLUX packs 2x2 latent patches into tokens: (steps, tokens, 4C) -> (steps, C, H/8, W/8)
            out = pipe._unpack_latents(out, height, width, pipe.vae_scale_factor)
        return out

    split = r["guidance_scale"] > 1 and recorder.raw and all(x is not None for x in recorder.raw)
    levels = torch.tensor(recorder.levels, dtype=torch.float64)
    kind = recorder.kind or "vp"
    return Trace(
        image=result, timesteps=torch.tensor(recorder.timesteps, dtype=torch.float32),
        latents=stack(recorder.latents), noise=stack(recorder.noise), x0=stack(recorder.x0),
        noise_cond=stack([c for c, _ in recorder.raw]) if split else None,
        noise_uncond=stack([u for _, u in recorder.raw]) if split else None,
        alpha_bar=levels if kind == "vp" else None, sigmas=levels if kind != "vp" else None,
        elapsed=torch.tensor(recorder.elapsed, dtype=torch.float64), family=r["family"], schedule_kind=kind,
        prediction_type="flow" if kind == "flow" else (
            recorder.scheduler.config.get("prediction_type", "epsilon") if recorder.scheduler else "epsilon"),
        _pipe=weakref.ref(pipe) if pipe is not None else None, _model=r["model"], _scheduler=recorder.scheduler,
        _step_indices=recorder.step_indices)
