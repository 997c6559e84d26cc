"""The Studio's controls: one widget per task-function argument, named like the argument, and the two ways between
them and the arguments (`values(task)` reads them, `set_values(values)` fills them, checking each value as the task
functions do). The defaults come from the task signatures (`tasks.default`) and the model family (`registry`).

>>> from imagegen_nb.widgets.controls import Controls
>>> controls = Controls()
>>> controls.set_values({"prompt": "a red circle", "seed": 3, "num_inference_steps": 4})
>>> controls.values("edit")["strength"], controls.values("generate")["seed"]
(0.6, 3)
"""

from __future__ import annotations

import os
import random
from typing import Any

import ipywidgets as widgets

from .. import arguments, preprocessors, registry, tasks


def _model_names() -> list[str]:
    """The built-in model, then the Hub ids the registry knows (any other id or folder can be typed in)."""
    return [registry.BUILTIN] + [rid for f in registry.models() for rid in f.repo_ids]


def known_family(name: str) -> registry.Family | None:
    """The family of a model name the registry lists, without looking anything up on disk or on the Hub."""
    if name in ("", registry.BUILTIN):
        return registry.FAMILIES[registry.BUILTIN]
    return next((f for f in registry.models() if name.lower() in (r.lower() for r in f.repo_ids)), None)


class Controls:
    """The argument widgets of the Studio (`Controls.NAMES`), a known model's defaults applied as it is chosen."""

    NAMES = ("prompt", "negative_prompt", "model", "num_inference_steps", "guidance_scale", "strength",
             "controlnet_conditioning_scale", "width", "height", "seed", "dice_button", "seed_mode", "num_images",
             "kind", "lora", "lora_weight")
    ARGUMENTS = ("prompt", "negative_prompt", "model", "num_inference_steps", "guidance_scale", "strength", "width",
                 "height", "seed", "num_images", "kind", "controlnet_conditioning_scale", "lora")

    def __init__(self):
        full = {"width": "100%"}
        self.prompt = widgets.Textarea(description="prompt", placeholder="a red circle to the left of a blue square",
                                       rows=2, layout=full)
        self.negative_prompt = widgets.Textarea(description="negative", placeholder="negative_prompt (optional)",
                                                rows=1, layout=full)
        self.model = widgets.Combobox(description="model", options=_model_names(), value=registry.BUILTIN,
                                      ensure_option=False, placeholder="tiny, a Hub id or a folder", layout=full)
        slider = {"continuous_update": False, "style": {"description_width": "initial"}, "layout": full}
        self.num_inference_steps = widgets.IntSlider(description="num_inference_steps", min=1, max=100, **slider)
        self.guidance_scale = widgets.FloatSlider(description="guidance_scale", min=0.0, max=20.0, step=0.5,
                                                  **slider)
        self.strength = widgets.FloatSlider(description="strength", min=0.05, max=1.0, step=0.05,
                                            value=tasks.default("edit", "strength"), **slider)
        self.controlnet_conditioning_scale = widgets.FloatSlider(
            description="controlnet_conditioning_scale", min=0.0, max=2.0, step=0.05,
            value=tasks.default("control", "controlnet_conditioning_scale"), **slider)
        self.width = widgets.IntSlider(description="width", min=8, max=2048, step=8, value=64, **slider)
        self.height = widgets.IntSlider(description="height", min=8, max=2048, step=8, value=64, **slider)
        self.seed = widgets.IntText(description="seed", value=0, layout={"width": "220px"})
        self.dice_button = widgets.Button(icon="random", tooltip="roll a new random seed", layout={"width": "40px"})
        self.seed_mode = widgets.ToggleButtons(options=["fixed", "random"], value="fixed",
                                               tooltips=["use this seed", "roll a new seed for every run"],
                                               style={"button_width": "72px"})
        self.num_images = widgets.BoundedIntText(description="num_images", value=1, min=1, max=16,
                                                 style={"description_width": "initial"}, layout={"width": "160px"})
        self.kind = widgets.Dropdown(description="kind", options=list(preprocessors.KINDS),
                                     value=tasks.default("control", "kind"))
        # One LoRA (or textual-inversion embedding) at a weight: `lora={path: weight}` of the task functions
        self.lora = widgets.Text(description="lora", placeholder="a LoRA .safetensors file or folder (optional)",
                                 layout={"width": "340px"})
        self.lora_weight = widgets.FloatSlider(description="weight", min=-2.0, max=2.0, step=0.05, value=1.0,
                                               continuous_update=False, layout={"width": "180px"})

        self.dice_button.on_click(lambda _: self.roll_seed())
        self.model.observe(self._on_model, names="value")
        self.apply_family(registry.FAMILIES[registry.BUILTIN])

    def _on_model(self, change) -> None:
        family = known_family(change["new"].strip())
        if family is not None:
            self.apply_family(family)

    def apply_family(self, family: registry.Family) -> None:
        """The family's recommended settings (free-typed unknown models keep the current ones)."""
        for slider in (self.width, self.height):
            slider.step = family.size_factor
            slider.min = family.size_factor
            slider.value = family.default_size
        self.num_inference_steps.value = family.default_steps
        self.guidance_scale.value = family.default_guidance

    def values(self, task: str) -> dict[str, Any]:
        """The arguments `task` takes from the controls (not its input pictures)."""
        model = self.model.value.strip()
        kw = dict(prompt=self.prompt.value, negative_prompt=self.negative_prompt.value or None,
                  model=None if model in ("", registry.BUILTIN) else model,
                  num_inference_steps=self.num_inference_steps.value, guidance_scale=self.guidance_scale.value)
        if task in ("edit", "inpaint"):
            kw["strength"] = self.strength.value
        if task == "generate":
            kw.update(width=self.width.value, height=self.height.value)
        if task == "control":
            kw.update(kind=self.kind.value, controlnet_conditioning_scale=self.controlnet_conditioning_scale.value)
        if self.lora.value.strip():
            kw["lora"] = {self.lora.value.strip(): self.lora_weight.value}
        kw.update(seed=self.seed.value, num_images=self.num_images.value)
        return kw

    def set_values(self, values: dict[str, Any]) -> None:
        """Fill the controls from the arguments in `values` that are theirs (`ARGUMENTS`), removing them from it."""
        if "model" in values:  # first: a known model resets steps, guidance and size to its family's defaults
            model = values.pop("model")
            self.model.value = registry.BUILTIN if model is None else str(model)
        for name in ("prompt", "negative_prompt"):
            if name in values:
                value = values.pop(name)
                if value is not None and not isinstance(value, str):
                    raise TypeError(f"{name} must be a string, not {value!r}")
                getattr(self, name).value = value or ""
        if "seed" in values:
            seed = values.pop("seed")
            if seed is None:
                self.seed_mode.value = "random"
            else:
                self.seed.value = arguments.integer("seed", seed, low=0, high=arguments.MAX_SEED)
                self.seed_mode.value = "fixed"
        if "lora" in values:
            self._set_lora(values.pop("lora"))
        if "kind" in values:
            self.kind.value = arguments.choice("kind", values.pop("kind"), preprocessors.KINDS, what="control kind")
        for name in ("num_inference_steps", "guidance_scale", "strength", "controlnet_conditioning_scale", "width",
                     "height", "num_images"):
            if name in values and values[name] is not None:
                self.set_number(name, values.pop(name))

    def _set_lora(self, lora) -> None:
        """`lora=` as the task functions take it, for one LoRA: None, a path, or {path: weight}."""
        if lora is None:
            self.lora.value, self.lora_weight.value = "", 1.0
            return
        if isinstance(lora, dict):
            if len(lora) != 1:
                raise ValueError(f"the Studio holds one LoRA, not {len(lora)}; call ig.generate(..., "
                                 "lora={'a.safetensors': 0.8, 'b.safetensors': 0.4}) to mix several")
            (path, weight), = lora.items()
        elif isinstance(lora, (str, os.PathLike)):
            path, weight = lora, 1.0
        else:
            raise TypeError(f"lora must be a path or {{path: weight}}, not {type(lora).__name__}")
        weight = arguments.number("lora weight", weight)
        self.lora_weight.min, self.lora_weight.max = min(self.lora_weight.min, weight), max(self.lora_weight.max,
                                                                                             weight)
        self.lora_weight.value = weight
        self.lora.value = os.fspath(path)

    def set_number(self, name: str, value) -> None:
        """Set one numeric control, checked as the task functions check it; a slider grows to hold a larger value."""
        widget = getattr(self, name)
        if isinstance(widget, (widgets.IntSlider, widgets.BoundedIntText)):
            value = arguments.integer(name, value)
        else:
            value = arguments.number(name, value)
        if value < widget.min:
            raise ValueError(f"{name} must be at least {widget.min}, not {value!r}")
        if value > widget.max:  # the sliders' ranges are for comfort; larger values are the user's call
            widget.max = value
        widget.value = value

    def roll_seed(self) -> int:
        """Put a new random seed in the seed box (the dice button)."""
        self.seed.value = random.SystemRandom().randrange(2**31)
        return self.seed.value
