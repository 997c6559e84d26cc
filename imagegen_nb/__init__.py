"""imagegen_nb: make images with diffusion models in notebooks, and see how they work.

>>> import imagegen_nb as ig
>>> image = ig.generate("a red circle", seed=0)
>>> image.size, ig.recipe(image)["prompt"]
((64, 64), 'a red circle')

Public names are imported on first use, so `import imagegen_nb` does not import torch or diffusers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

# public name -> (module, attribute); attribute None means the module itself
_LAZY: dict[str, tuple[str, str | None]] = {
    "generate": ("tasks", "generate"),
    "edit": ("tasks", "edit"),
    "inpaint": ("tasks", "inpaint"),
    "control": ("tasks", "control"),
    "preprocess": ("preprocessors", "preprocess"),
    "recipe": ("recipes", "recipe"),
    "save": ("recipes", "save"),
    "regenerate": ("tasks", "regenerate"),
    "outpaint": ("workflows", "outpaint"),
    "hires_fix": ("workflows", "hires_fix"),
    "generate_many": ("many", "generate_many"),
    "limits": ("arguments", "limits"),
    "RecipeError": ("errors", "RecipeError"),
    "Recipe": ("recipes", "Recipe"),
    "models": ("registry", "models"),
    "set_device": ("devices", "set_device"),
    "set_threads": ("devices", "set_threads"),
    "Run": ("steps", "Run"),
    "trace": ("traces", "trace"),
    "train_lora": ("lora_training", "train_lora"),
    "Trace": ("traces", "Trace"),
    "grid": ("display", "grid"),
    "compare": ("comparisons", "compare"),
    "Comparison": ("comparisons", "Comparison"),
    "Studio": ("widgets.studio", "Studio"),
    "MaskCanvas": ("widgets.mask_canvas", "MaskCanvas"),
    "MaskPainter": ("widgets.mask_painter", "MaskPainter"),
    "TracePlayer": ("widgets.trace_player", "TracePlayer"),
    "cache": ("cache", None),
    "registry": ("registry", None),
    "devices": ("devices", None),
    "steps": ("steps", None),
    "tiny": ("tiny", None),
    "teach": ("teach", None),
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'imagegen_nb' has no attribute {name!r}")
    module_name, attr = _LAZY[name]
    module = importlib.import_module(f".{module_name}", __name__)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover
    from . import cache, devices, registry, steps, teach, tiny
    from .arguments import limits
    from .comparisons import Comparison, compare
    from .devices import set_device, set_threads
    from .display import grid
    from .errors import RecipeError
    from .lora_training import train_lora
    from .many import generate_many
    from .preprocessors import preprocess
    from .recipes import Recipe, recipe, save
    from .registry import models
    from .steps import Run
    from .tasks import control, edit, generate, inpaint, regenerate
    from .traces import Trace, trace
    from .widgets.mask_canvas import MaskCanvas
    from .widgets.mask_painter import MaskPainter
    from .widgets.studio import Studio
    from .widgets.trace_player import TracePlayer
    from .workflows import hires_fix, outpaint
