"""Traces: every step of one picture's denoising, kept for looking at afterwards (the teaching lessons, the trace
player). A trace is only a listener on the one step-recording mechanism, `imagegen_nb.steps.Run`.

At step i the sampler holds x_t (`latents[i]`) and the model makes its prediction (`model_output[i]`, after
classifier-free guidance; `model_output_cond[i]` and `model_output_uncond[i]` before it). What that output is
depends on the model: the noise eps (epsilon prediction), v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x0
(v-prediction, like the built-in model), or the velocity eps - x0 (flow matching). Whatever it is, the trace also
keeps the two things it implies: the noise eps (`noise[i]`; `noise_cond[i]`, `noise_uncond[i]`) and the clean
latent the model currently believes in, x0 (`x0[i]`). They obey the forward process of the schedule at every
step, up to float16 rounding:

    x_t = sqrt(alpha_bar_t) * x0 + sqrt(1 - alpha_bar_t) * eps        (VP schedules; Ho et al. 2020, eq. 4)
    x_t = x0 + sigma * eps                                            (sigma, "k-diffusion" schedules)
    x_t = (1 - sigma) * x0 + sigma * eps                              (flow matching)

>>> import imagegen_nb as ig
>>> tr = ig.trace("a red circle", seed=0, num_inference_steps=4)
>>> len(tr), tuple(tr.x0.shape), tr.schedule_kind, tr.prediction_type
(4, (4, 4, 16, 16), 'vp', 'v_prediction')
>>> tr.decode(-1, "x0").size
(64, 64)
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from . import arguments, registry
from .steps import Run

__all__ = ["Trace", "trace"]

_KINDS = ("x0", "latent", "noise", "noise_cond", "noise_uncond", "model_output", "model_output_cond",
          "model_output_uncond")


@dataclass(repr=False)
class Trace:
    """The record of one picture's denoising. Tensors are on the CPU in float16, one row per step.

    (steps, C, H, W) each: `latents` (x_t going into the step), `model_output` (the guided prediction the sampler
    used, as the model makes it: eps, v or flow velocity), `noise` (the noise eps it implies) and `x0` (the clean
    latent it implies); `model_output_cond`/`model_output_uncond` and `noise_cond`/`noise_uncond` are the
    denoiser's two halves before guidance (None without guidance). `timesteps` is (steps,); `alpha_bar` (VP
    schedules) or `sigmas` (sigma and flow schedules) gives the noise level at each step, the other is None.

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
    prediction_type: str = "epsilon"  # what model_output is: "epsilon", "v_prediction", "sample" or "flow"
    model_output: Any = None
    model_output_cond: Any = None
    model_output_uncond: Any = None
    # Only a weak reference and the model's name: a trace must not keep an evicted model alive.
    _pipe: Any = field(default=None, repr=False)
    _model: str | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return int(self.timesteps.shape[0])

    def __repr__(self) -> str:
        level = "alpha_bar" if self.alpha_bar is not None else "sigmas"
        shape = tuple(self.latents.shape[1:]) if len(self) else ()
        cfg = "with" if self.noise_cond is not None else "without"
        return (f"Trace({len(self)} steps of {self.family} ({self.schedule_kind} schedule, {level}, "
                f"{self.prediction_type} model), latents {shape}, {cfg} cond/uncond split)")

    @property
    def pipe(self):
        """The pipeline that made the trace (from the shared cache again if it was evicted since)."""
        pipe = self._pipe() if self._pipe is not None else None
        if pipe is None:
            from . import cache

            _, pipe = cache.shared.pipeline(self._model, "generate")
        return pipe

    def index(self, i: int) -> int:
        """Step `i` as a position from the start (negative counts from the end); an IndexError out of range."""
        n = len(self)
        if not isinstance(i, int) or not -n <= i < n:
            raise IndexError(f"step {i!r} is out of range for a trace of {n} steps")
        return i % n

    def noise_level(self, i: int) -> dict[str, float]:
        """The noise level at step i: {"alpha_bar": ...} or {"sigma": ...}."""
        i = self.index(i)
        if self.alpha_bar is not None:
            return {"alpha_bar": float(self.alpha_bar[i])}
        return {"sigma": float(self.sigmas[i])}

    def x0_from(self, i: int, noise):
        """The clean latent that noise eps at step i implies (e.g. `noise_cond[i]`), by the forward process:
        x0 = (x_t - sqrt(1 - alpha_bar) eps) / sqrt(alpha_bar) for VP schedules, x_t - sigma eps for sigma ones,
        (x_t - sigma eps) / (1 - sigma) for flow matching. Returns float32 (C, H, W).

        Near pure noise (alpha_bar near 0, sigma near 1 for flow) x_t is almost all eps and the division magnifies
        float16 rounding; there `x0[i]`, computed from the model's output before rounding, is the one to trust.
        """
        i = self.index(i)
        x_t, eps = self.latents[i].float(), noise.float()
        if self.alpha_bar is not None:
            ab = float(self.alpha_bar[i])
            return (x_t - (1 - ab) ** 0.5 * eps) / ab**0.5
        s = float(self.sigmas[i])
        if self.schedule_kind == "flow":
            return (x_t - s * eps) / (1 - s)
        return x_t - s * eps

    def tensor(self, i: int, what: str = "x0"):
        """The float32 latent (C, H, W) `decode` would show: x0, x_t ("latent"), the noise eps ("noise",
        "noise_cond", "noise_uncond") or the model's raw output ("model_output", ..._cond, ..._uncond).

        For sigma schedules x_t = x0 + sigma * eps is divided by sqrt(1 + sigma^2) (what the sampler does before
        the model sees it), so it is on the VAE's scale like the other kinds.
        """
        i = self.index(i)
        if what not in _KINDS:
            raise ValueError(f"what must be one of {', '.join(map(repr, _KINDS))}, not {what!r}")
        source = getattr(self, "latents" if what == "latent" else what)
        if source is None:
            raise ValueError(f"this trace has no {what}: it was made without classifier-free guidance "
                             "(guidance_scale <= 1, or a guidance-distilled model)")
        z = source[i].float()
        if what == "latent" and self.schedule_kind == "sigma":
            z = z / (1.0 + float(self.sigmas[i]) ** 2) ** 0.5
        return z

    def decode(self, i: int, what: str = "x0", *, fast: bool = False) -> Image.Image:
        """Step i as a picture: `what` is "x0" (the model's current guess), "latent" (x_t), "noise" (the noise eps;
        also "noise_cond", "noise_uncond") or "model_output" (what the model output, e.g. v). The full VAE by
        default; `fast=True` uses the cheap linear preview (`imagegen_nb.previews.preview_image`), at latent
        resolution. Decoding happens only when asked."""
        from .previews import preview_image, vae_decode

        z = self.tensor(i, what)
        pipe = self.pipe
        if fast:
            return preview_image(z[None], pipe, family=self.family)
        return vae_decode(z[None], pipe)


class _Recorder:
    """The listener: copies each step's tensors to the CPU in float16 as they go by.

    Only x_t, the model's outputs and x0 are copied during the run; the noise each output implies is worked out for
    all steps at once afterwards (`_implied_noise`), which keeps the per-step cost of tracing low.
    """

    def __init__(self):
        self.timesteps: list[float] = []
        self.noise_levels: list[float] = []
        self.elapsed: list[float] = []
        self.latents: list = []
        self.model_output: list = []
        self.x0: list = []
        self.halves: list = []  # per step: (cond output, uncond output) in the scheduler's convention, or None
        self.kind: str | None = None
        self.prediction_type: str | None = None
        self.pipe = None

    def __call__(self, run: Run, step) -> None:
        import torch

        if self.kind is None:
            self.pipe, self.kind, self.prediction_type = step.pipe, step.kind, step.prediction_type
        value = step.noise_level
        self.timesteps.append(step.timestep)
        self.noise_levels.append(value.get("alpha_bar", value.get("sigma")))
        self.elapsed.append(step.elapsed)

        def keep(t):
            return t.detach()[0].to(device="cpu", dtype=torch.float16, copy=True)

        self.latents.append(keep(step.latents))
        self.model_output.append(keep(step.model_output))
        self.x0.append(keep(step.x0))
        halves = step.guidance_halves
        self.halves.append(None if halves is None else (keep(halves[0]), keep(halves[1])))

    def implied_noise(self, outputs, latents):
        """The noise eps that recorded model outputs (steps, ...) imply at the recorded x_t, float16. Well
        conditioned for every prediction type (no division by a vanishing noise level), so working from the
        float16 records loses nothing that storing eps in float16 would not."""
        import torch

        from .steps import to_x0_and_noise

        shape = (-1,) + (1,) * (outputs.ndim - 1)
        levels = torch.tensor(self.noise_levels, dtype=torch.float32).view(shape)
        level = {"alpha_bar": levels} if self.kind == "vp" else {"sigma": levels}
        return to_x0_and_noise(self.kind, self.prediction_type, level, outputs, latents)[1].to(torch.float16)


def trace(prompt, *, task: str = "generate", image=None, mask=None, control_image=None, run: Run | None = None,
          **kwargs) -> Trace:
    """Make one picture like `ig.generate` (or `ig.edit`, `ig.inpaint`, `ig.control` by `task=`) and keep every step.

    Takes the task function's arguments: `task="edit"` needs `image=`, `"inpaint"` needs `image=` and
    `mask=`, `"control"` needs `control_image=`. Pass `run=ig.Run(...)` to listen (or stop) as well; the
    trace is added to its listeners. FLUX's packed latents (1 x tokens x 64) are stored unpacked, (16, H/8, W/8).

    >>> import imagegen_nb as ig
    >>> tr = ig.trace("a blue square", seed=1, num_inference_steps=3, guidance_scale=4.0)
    >>> tuple(tr.noise_cond.shape), tr.alpha_bar is not None
    ((3, 4, 16, 16), True)
    """
    import torch

    from . import tasks

    arguments.choice("task", task, registry.TASKS)
    if kwargs.get("num_images", 1) != 1 or not isinstance(prompt, str):
        raise ValueError("a trace follows one picture: give one prompt (a string) and num_images=1, not "
                         f"prompt={prompt!r}, num_images={kwargs.get('num_images', 1)!r}")
    needs = {"edit": {"image": image}, "inpaint": {"image": image, "mask": mask},
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
            result = tasks.inpaint(image, mask, prompt, run=run, **kwargs)
        else:
            result = tasks.control(control_image, prompt, run=run, **kwargs)
    finally:
        run.listeners.remove(recorder)  # a user's Run may be used again; this trace is done listening

    from .recipes import recipe as recipe_of

    r = recipe_of(result)
    pipe = recorder.pipe
    width, height = result.size

    def unpack(out):
        if out.ndim == 3 and pipe is not None and hasattr(pipe, "_unpack_latents"):
            # FLUX packs 2x2 latent patches into tokens: (steps, tokens, 4C) -> (steps, C, H/8, W/8)
            out = pipe._unpack_latents(out, height, width, pipe.vae_scale_factor)
        return out

    empty = torch.zeros(0, dtype=torch.float16)
    latents = torch.stack(recorder.latents) if recorder.latents else empty
    outputs = {"": torch.stack(recorder.model_output) if recorder.latents else empty}
    if r["guidance_scale"] > 1 and recorder.halves and all(h is not None for h in recorder.halves):
        outputs["_cond"] = torch.stack([c for c, _ in recorder.halves])
        outputs["_uncond"] = torch.stack([u for _, u in recorder.halves])
    noise = {key: recorder.implied_noise(out, latents) if len(latents) else empty for key, out in outputs.items()}
    kind = recorder.kind or "vp"
    levels = torch.tensor(recorder.noise_levels, dtype=torch.float64)
    return Trace(
        image=result, timesteps=torch.tensor(recorder.timesteps, dtype=torch.float32), latents=unpack(latents),
        noise=unpack(noise[""]), x0=unpack(torch.stack(recorder.x0)) if recorder.x0 else empty,
        noise_cond=unpack(noise["_cond"]) if "_cond" in noise else None,
        noise_uncond=unpack(noise["_uncond"]) if "_uncond" in noise else None,
        model_output=unpack(outputs[""]), model_output_cond=unpack(outputs["_cond"]) if "_cond" in outputs else None,
        model_output_uncond=unpack(outputs["_uncond"]) if "_uncond" in outputs else None,
        alpha_bar=levels if kind == "vp" else None, sigmas=levels if kind != "vp" else None,
        elapsed=torch.tensor(recorder.elapsed, dtype=torch.float64), family=r["family"], schedule_kind=kind,
        prediction_type=recorder.prediction_type or "epsilon",
        _pipe=weakref.ref(pipe) if pipe is not None else None, _model=r["model"])
