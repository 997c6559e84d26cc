"""Checks for the arguments of the public functions, and the limits on how much work one call may ask for.

Every wrong name, type or value becomes an error that names the argument, the value and the fix, before any work
starts and before anything reaches a recipe. Numbers may be Python or numpy scalars; they come back as Python ones.

>>> import imagegen_nb as ig
>>> ig.generate("a red circle", steps=20)
Traceback (most recent call last):
TypeError: generate() got an unknown argument 'steps'; did you mean 'num_inference_steps'?
>>> ig.limits.max_steps
1000
"""

from __future__ import annotations

import difflib
import json
import math
import numbers
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Limits:
    """How much work one call may ask for. Past a limit a call fails at once, naming the limit; to go past one on
    purpose, raise it.

    >>> import imagegen_nb as ig
    >>> ig.limits.max_images
    64
    >>> ig.limits.max_steps = 5000  # on purpose: a very long run
    >>> ig.limits.max_steps = 1000
    """

    max_steps: int = 1000  # denoising steps per picture (schedules are trained on 1000 timesteps)
    max_images: int = 64  # pictures per call
    max_side_factor: int = 4  # width and height at most this many times the model's default size
    max_prompt_chars: int = 10_000  # longer prompts are truncated by every tokenizer anyway
    max_input_pixels: int = 64_000_000  # pictures passed in (edit, inpaint, control) before any resizing


limits = Limits()


def limit_hint(attr: str, value) -> str:
    return f"the limit is {getattr(limits, attr)} (ig.limits.{attr}); to go past it on purpose: " \
           f"ig.limits.{attr} = {value}"


# Names people reach for from other tools -> the name diffusers (and so imagegen_nb) uses.
ALIASES = {
    "steps": "num_inference_steps", "num_steps": "num_inference_steps", "n_steps": "num_inference_steps",
    "sampling_steps": "num_inference_steps", "guidance": "guidance_scale", "cfg": "guidance_scale",
    "cfg_scale": "guidance_scale", "scale": "guidance_scale", "negative": "negative_prompt",
    "neg_prompt": "negative_prompt", "sampler": "scheduler", "n": "num_images",
    "num_images_per_prompt": "num_images", "n_images": "num_images", "size": "width and height",
    "denoising_strength": "strength", "init_image": "image", "mask_image": "mask", "control": "control_image",
    "controlnet_scale": "controlnet_conditioning_scale", "conditioning_scale": "controlnet_conditioning_scale",
    "generator": "seed", "device": "ig.set_device(...)",
}

# Pipeline arguments the task functions set themselves, with what to use instead.
MANAGED = {
    "generator": "pass seed= instead: imagegen_nb makes one CPU generator per picture from its seed, so every "
                 "picture can be made again alone",
    "num_images_per_prompt": "pass num_images= instead (each picture gets its own seed and recipe)",
    "output_type": "results are always PIL images that carry their recipe; convert with np.asarray(image)",
    "return_dict": "results are always PIL images",
    "callback_on_step_end": "pass run=ig.Run(on_step=...) instead: it hears every step",
    "callback_on_step_end_tensor_inputs": "pass run=ig.Run(on_step=...) instead",
    "callback": "pass run=ig.Run(on_step=...) instead", "callback_steps": "pass run=ig.Run(on_step=...) instead",
    "prompt": "pass the prompt as the prompt argument",
    "image": "use ig.edit(image, prompt) or ig.control(control_image, prompt)",
    "mask_image": "use ig.inpaint(image, mask, prompt)",
    "control_image": "use ig.control(control_image, prompt)",
    "ip_adapter_image": "pass style= (a picture) and style_scale= instead: the IP-Adapter is loaded once per cached "
                        "model and recorded in the recipe",
    "ip_adapter_image_embeds": "pass style= (a picture) and style_scale= instead",
}


def unknown_argument(function: str, name: str, valid: Iterable[str]) -> TypeError:
    """The error for an argument `function` does not take, with the nearest valid name."""
    valid = sorted(set(valid))
    if name in ALIASES:
        hint = f"; did you mean '{ALIASES[name]}'?" if not ALIASES[name].startswith("ig.") else \
            f"; use {ALIASES[name]}"
    else:
        close = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else f"; it takes {', '.join(valid)}"
    return TypeError(f"{function}() got an unknown argument {name!r}{hint}")


def choice(name: str, value, options: Iterable[str], *, what: str | None = None) -> str:
    """`value` if it is one of `options`, else a ValueError naming it, the nearest option and all of them.

    >>> choice("kind", "cany", ("canny", "depth"), what="control kind")
    Traceback (most recent call last):
    ValueError: unknown control kind 'cany'; did you mean 'canny'? choose one of canny, depth
    """
    options = tuple(options)
    if isinstance(value, str) and value in options:
        return value
    close = difflib.get_close_matches(value, options, n=1, cutoff=0.6) if isinstance(value, str) else []
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ValueError(f"unknown {what or name} {value!r}; {hint}choose one of {', '.join(options)}")


def integer(name: str, value, *, low: int | None = None, high: int | None = None,
            limit: str | None = None) -> int:
    """`value` as a Python int, or an error naming `name`. `limit` names the `ig.limits` field behind `high`."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral, np.integer)):
        extra = " (a string; pass a number without quotes)" if isinstance(value, str) else ""
        raise TypeError(f"{name} must be a whole number (an int), not {value!r}{extra}")
    value = int(value)
    if low is not None and value < low:
        raise ValueError(f"{name} must be at least {low}, not {value}")
    if high is not None and value > high:
        if limit:
            raise ValueError(f"{name}={value} is too large: {limit_hint(limit, value)}")
        raise ValueError(f"{name} must be at most {high}, not {value}")
    return value


def number(name: str, value, *, low: float | None = None, high: float | None = None,
           low_open: bool = False, hint: str = "") -> float:
    """`value` as a finite Python float, or an error naming `name`."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.integer, np.floating)):
        quoted = " (a string; pass a number without quotes)" if isinstance(value, str) else ""
        raise TypeError(f"{name} must be a number, not {value!r}{quoted}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, not {value}{hint}")
    too_low = low is not None and (value <= low if low_open else value < low)
    if too_low or (high is not None and value > high):
        lo = "" if low is None else ("(" if low_open else "[") + f"{low:g}"
        hi = "" if high is None else f"{high:g}]"
        span = f"in {lo}, {hi}" if low is not None and high is not None else (
            f"{'more than' if low_open else 'at least'} {low:g}" if low is not None else f"at most {high:g}")
        raise ValueError(f"{name} must be {span}, not {value:g}{hint}")
    return value


def text(name: str, value, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string{' or None' if optional else ''}, not {type(value).__name__}")
    if len(value) > limits.max_prompt_chars:
        raise ValueError(f"{name} is {len(value)} characters long: {limit_hint('max_prompt_chars', len(value))}")
    return value


def flag(name: str, value, *, optional: bool = False) -> bool | None:
    if value is None and optional:
        return None
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False{' or None' if optional else ''}, not {value!r}")
    return bool(value)


MAX_SEED = 2**64 - 1  # torch generators take seeds up to this


def seeds(seed, n: int) -> list[int]:
    """The seeds of `n` pictures: `seed`, `seed + 1`, ...; a random start when `seed` is None."""
    if seed is None:
        import random

        seed = random.SystemRandom().randrange(2**32)
    seed = integer("seed", seed, low=0, high=MAX_SEED)
    if seed + n - 1 > MAX_SEED:
        raise ValueError(f"seed={seed} with {n} pictures runs past the largest seed ({MAX_SEED}); "
                         f"use a seed of at most {MAX_SEED - n + 1}")
    return [seed + i for i in range(n)]


def recordable(name: str, value) -> Any:
    """A pipeline argument as a recipe will hold it: JSON without NaN or infinity. Tensors and other objects are
    passed to the pipeline but described in the recipe (`<Tensor (1, 4, 8, 8), not recorded: ...>`)."""
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        value = value.item()
    try:
        json.dumps(value, allow_nan=False)
        return value
    except ValueError:
        raise ValueError(f"{name}={value!r} holds NaN or infinity; pass finite numbers") from None
    except TypeError:
        shape = tuple(getattr(value, "shape", ()))
        return f"<{type(value).__name__} {shape}, not recorded: pass {name}= again>"


def plain(value):
    """A numpy scalar as the Python number it holds; anything else unchanged."""
    return value.item() if isinstance(value, (np.integer, np.floating, np.bool_)) else value
