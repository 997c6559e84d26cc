"""The samplers the library offers, by short name, and how one is swapped into a pipeline for a single call.

A scheduler swapped in must sample the model it was trained for: `build` reads what the model's own scheduler
says (prediction type, zero-terminal-SNR rescaling, timestep spacing, sample clipping, flow-matching shift) and sets
each of them explicitly on the new one. `from_config` alone would let a scheduler's own defaults win where the
model's config has no such key: DDIM's and DDPM's `clip_sample=True` clips a v-prediction model's x0 and makes its
pictures black. A scheduler that cannot sample a model at all (PNDM has no zero-terminal-SNR schedule; Euler has
no flow-matching form) is refused with a ValueError saying why.

>>> from imagegen_nb import schedulers
>>> schedulers.SCHEDULERS["euler_a"]
'EulerAncestralDiscreteScheduler'
>>> schedulers.trained_with({"prediction_type": "v_prediction", "rescale_betas_zero_snr": True})
Trained(flow=False, prediction_type='v_prediction', zero_snr=True)
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from functools import cache

from .arguments import choice

__all__ = ["FLOW_CAPABLE", "FLOW_ONLY", "SCHEDULERS", "Trained", "build", "check", "fitting", "swap",
           "trained_with", "unfit"]

SCHEDULERS = {
    "ddim": "DDIMScheduler", "ddpm": "DDPMScheduler", "pndm": "PNDMScheduler",
    "euler": "EulerDiscreteScheduler", "euler_a": "EulerAncestralDiscreteScheduler",
    "dpm++": "DPMSolverMultistepScheduler", "unipc": "UniPCMultistepScheduler", "lcm": "LCMScheduler",
    "flow_euler": "FlowMatchEulerDiscreteScheduler",
}
# Flow-matching models (SD3, FLUX, Z-Image, Sana) need a scheduler with a flow form: FlowMatchEuler, or the
# multistep solvers with `use_flow_sigmas=True, prediction_type="flow_prediction"` (which `build` sets). Models that
# predict noise (or v) cannot use the flow-only one.
FLOW_ONLY = {"flow_euler"}
FLOW_CAPABLE = {"flow_euler", "dpm++", "unipc"}

# What each scheduler's `step` accepts as the model's output on a noise (VP) schedule (read off diffusers 0.42).
_PREDICTIONS = {
    "ddim": {"epsilon", "v_prediction", "sample"}, "ddpm": {"epsilon", "v_prediction", "sample"},
    "pndm": {"epsilon", "v_prediction"}, "euler": {"epsilon", "v_prediction", "sample"},
    "euler_a": {"epsilon", "v_prediction", "sample"}, "dpm++": {"epsilon", "v_prediction", "sample"},
    "unipc": {"epsilon", "v_prediction", "sample"}, "lcm": {"epsilon", "v_prediction", "sample"},
    "flow_euler": set(),
}
# Pipelines that hand set_timesteps their own `sigmas` whatever the scheduler (Z-Image's linspace(1, 1/N, N)).
_PASS_SIGMAS = ("ZImage",)
# Flow-matching settings a scheduler's config may carry, and how each kind of scheduler names the shift.
_FLOW_KEYS = ("use_dynamic_shifting", "base_shift", "max_shift", "base_image_seq_len", "max_image_seq_len",
              "time_shift_type", "shift_terminal")


@dataclass(frozen=True)
class Trained:
    """What a model was trained with, as its own scheduler's config says."""

    flow: bool  # flow matching: x_t = (1 - sigma) x0 + sigma eps, the model predicts the velocity eps - x0
    prediction_type: str  # "epsilon", "v_prediction" or "sample"; "flow_prediction" for flow models
    zero_snr: bool  # betas rescaled to zero terminal SNR (Lin et al. 2024): the last timestep is pure noise


def _is_flow_match(config) -> bool:
    """Whether a config is a FlowMatch scheduler's: by its class name where the config keeps one, else by its
    keys (a flow shift and no betas)."""
    name = str(config.get("_class_name") or "")
    return "FlowMatch" in name or (not name and "shift" in config and "beta_schedule" not in config)


def trained_with(config) -> Trained:
    """Read a scheduler config (`pipe.scheduler.config`) for the model's prediction type, zero-SNR rescaling and
    whether it is a flow-matching model."""
    flow = (_is_flow_match(config) or bool(config.get("use_flow_sigmas"))
            or config.get("prediction_type") == "flow_prediction")
    if flow:
        return Trained(True, "flow_prediction", False)
    return Trained(False, config.get("prediction_type") or "epsilon", bool(config.get("rescale_betas_zero_snr")))


@cache
def _init_params(cls) -> frozenset[str]:
    return frozenset(inspect.signature(cls.__init__).parameters) - {"self"}


@cache
def _calls_scale_noise(pipeline_class) -> bool:
    """Whether a pipeline noises its input image with the flow scheduler's `scale_noise` (flow img2img/inpaint)."""
    try:
        return "scheduler.scale_noise" in inspect.getsource(pipeline_class)
    except (OSError, TypeError):
        return False


def _scheduler_class(name: str):
    import diffusers

    return getattr(diffusers, SCHEDULERS[name])


def _takes_sigma_list(name: str, config) -> bool:
    """Whether scheduler `name`, set up for this model, accepts `set_timesteps(sigmas=[...], mu=...)` as the
    Z-Image pipelines call it (tried on a two-step schedule)."""
    scheduler = _from_config(name, config)
    try:
        scheduler.set_timesteps(sigmas=[1.0, 0.5], device="cpu", mu=0.5)
    except (TypeError, ValueError, AssertionError):
        return False
    return True


def unfit(name: str, config, pipeline=None) -> str | None:
    """Why scheduler `name` cannot sample the model whose scheduler config is `config` (with `pipeline`, an
    instance or class, if given), or None when it can."""
    trained = trained_with(config)
    cls = _scheduler_class(name)
    label = SCHEDULERS[name]
    if trained.flow:
        if name not in FLOW_CAPABLE:
            return f"{label} has no flow-matching form, and this model is trained by flow matching"
    else:
        if name in FLOW_ONLY:
            return f"{label} is for flow-matching models, and this model predicts {trained.prediction_type}"
        if trained.prediction_type not in _PREDICTIONS[name]:
            return f"{label} does not support prediction_type={trained.prediction_type!r}, which this model uses"
        if trained.zero_snr and "rescale_betas_zero_snr" not in _init_params(cls):
            return (f"{label} has no zero-terminal-SNR schedule (rescale_betas_zero_snr), which this model is "
                    "trained on: it would not start from pure noise nor follow the model's noise levels")
    if trained.flow and config.get("shift_terminal") and "shift_terminal" not in _init_params(cls):
        return f"{label} has no shift_terminal, which this model's schedule sets"
    if pipeline is not None:
        pipeline_class = pipeline if isinstance(pipeline, type) else type(pipeline)
        pname = pipeline_class.__name__
        if pname.startswith(_PASS_SIGMAS) and not _takes_sigma_list(name, config):
            return f"{pname} passes its own sigmas (a list) and mu to set_timesteps, which {label} does not take"
        if trained.flow and not hasattr(cls, "scale_noise") and _calls_scale_noise(pipeline_class):
            return f"{pname} noises its input image with scheduler.scale_noise, which {label} lacks"
    return None


def fitting(config, pipeline=None) -> list[str]:
    """The scheduler names that can sample this model (in `SCHEDULERS` order)."""
    return [name for name in SCHEDULERS if unfit(name, config, pipeline) is None]


def _settings(name: str, config) -> dict:
    """The keyword arguments that make scheduler `name` follow the model (overriding its own defaults)."""
    trained = trained_with(config)
    params = _init_params(_scheduler_class(name))
    out: dict = {}
    if trained.flow:
        shift = config.get("shift") if "shift" in config else config.get("flow_shift", 1.0)
        out.update({key: config[key] for key in _FLOW_KEYS if key in config})
        if name == "flow_euler":
            out["shift"] = shift
        else:  # the multistep solvers' flow form: sigmas of the flow schedule, velocity prediction
            out.update(use_flow_sigmas=True, prediction_type="flow_prediction", flow_shift=shift)
    else:
        out.update(prediction_type=trained.prediction_type, rescale_betas_zero_snr=trained.zero_snr,
                   clip_sample=bool(config.get("clip_sample", False)),  # only if the model says so
                   thresholding=bool(config.get("thresholding", False)), use_flow_sigmas=False)
        if trained.zero_snr:
            out["timestep_spacing"] = "trailing"  # the only spacing whose first step is the pure-noise timestep
        elif config.get("timestep_spacing"):
            out["timestep_spacing"] = config["timestep_spacing"]
        if name == "pndm":
            out["skip_prk_steps"] = bool(config.get("skip_prk_steps", True))  # PLMS as SD ships it
    return {key: value for key, value in out.items() if key in params}


def _from_config(name: str, config):
    """Scheduler `name` from the keys of `config` it takes (so diffusers has no foreign keys to warn about), with
    the model's settings on top."""
    cls = _scheduler_class(name)
    params = _init_params(cls)
    return cls.from_config({k: v for k, v in config.items() if k in params}, **_settings(name, config))


def build(name: str, config, *, pipeline=None):
    """A scheduler of kind `name` that samples the model whose scheduler config is `config`.

    Raises ValueError, naming the reason and the schedulers that fit, when it cannot (`unfit`).
    """
    choice("scheduler", name, SCHEDULERS)
    reason = unfit(name, config, pipeline)
    if reason is not None:
        raise ValueError(f"scheduler {name!r} cannot sample this model: {reason}; choose one of "
                         f"{', '.join(fitting(config, pipeline))}")
    scheduler = _from_config(name, config)
    if trained_with(config).flow:
        # pipelines read these off scheduler.config for the resolution-dependent shift, whatever the class
        missing = {key: config[key] for key in _FLOW_KEYS if key in config and key not in scheduler.config}
        if missing:
            scheduler.register_to_config(**missing)
    return scheduler


def check(name, family) -> None:
    """Refuse a scheduler name the library does not know, or one that does not fit the family's kind of model.

    What only the loaded model's config can tell (zero-SNR rescaling, prediction type) is checked by `swap`.
    """
    if name is None:
        return
    choice("scheduler", name, SCHEDULERS)
    if (family.flow and name not in FLOW_CAPABLE) or (not family.flow and name in FLOW_ONLY):
        fits = sorted(FLOW_CAPABLE) if family.flow else sorted(set(SCHEDULERS) - FLOW_ONLY)
        kind = "flow-matching" if family.flow else "noise-prediction (not flow-matching)"
        raise ValueError(f"scheduler {name!r} does not fit {family.name} models, which are {kind}; "
                         f"choose one of {', '.join(fits)}")


def swap(pipe, name: str | None):
    """Replace the pipeline's scheduler for one call; returns the one to put back (or None).

    Raises ValueError before changing anything when `name` cannot sample this pipeline's model.
    """
    if name is None:
        return None
    previous = pipe.scheduler
    pipe.scheduler = build(name, previous.config, pipeline=pipe)
    return previous
