"""The samplers the library offers, by short name, and how one is swapped into a pipeline for a single call.

Swapping keeps what the model was trained with (prediction type, zero-terminal-SNR rescaling, timestep spacing,
flow settings): `from_config` alone would let a scheduler's own defaults, such as DDIM's `clip_sample=True`, ruin a
v-prediction model's pictures.

>>> from imagegen_nb import schedulers
>>> schedulers.SCHEDULERS["euler_a"]
'EulerAncestralDiscreteScheduler'
"""

from __future__ import annotations

SCHEDULERS = {
    "ddim": "DDIMScheduler", "ddpm": "DDPMScheduler", "pndm": "PNDMScheduler",
    "euler": "EulerDiscreteScheduler", "euler_a": "EulerAncestralDiscreteScheduler",
    "dpm++": "DPMSolverMultistepScheduler", "unipc": "UniPCMultistepScheduler", "lcm": "LCMScheduler",
    "flow_euler": "FlowMatchEulerDiscreteScheduler",
}
# Flow-matching models (SD3, FLUX, Z-Image, Sana) need a scheduler that speaks flow (the multistep solvers keep
# the model's flow settings through from_config); noise-prediction models cannot use the flow-only one.
FLOW_ONLY = {"flow_euler"}
FLOW_CAPABLE = {"flow_euler", "dpm++", "unipc"}


def check(name, family) -> None:
    """Refuse a scheduler name the library does not know, or one that does not fit the family's kind of model."""
    if name is None:
        return
    if not isinstance(name, str) or name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; choose one of {', '.join(SCHEDULERS)}")
    if (family.flow and name not in FLOW_CAPABLE) or (not family.flow and name in FLOW_ONLY):
        fitting = sorted(FLOW_CAPABLE) if family.flow else sorted(set(SCHEDULERS) - FLOW_ONLY)
        kind = "flow-matching" if family.flow else "noise-prediction (not flow-matching)"
        raise ValueError(f"scheduler {name!r} does not fit {family.name} models, which are {kind}; "
                         f"choose one of {', '.join(fitting)}")


def build(name: str, config):
    """A scheduler of kind `name` set up from another scheduler's config."""
    import diffusers

    return getattr(diffusers, SCHEDULERS[name]).from_config(config)


def swap(pipe, name: str | None):
    """Replace the pipeline's scheduler for one call; returns the one to put back (or None)."""
    if name is None:
        return None
    previous = pipe.scheduler
    pipe.scheduler = build(name, previous.config)
    return previous
