"""Notebook widgets, thin views over the task functions: `Studio` (a panel that collects the arguments of
`ig.generate` / `edit` / `inpaint` / `control` and calls them), `MaskCanvas` (paint an inpainting mask),
`MaskPainter` (the same where ipycanvas cannot render) and `TracePlayer` (step through a recorded denoising run).

They need ipywidgets 8 (ipycanvas for `MaskCanvas`, anywidget for `MaskPainter`); `import imagegen_nb` does not
import them: the classes load on first use (`ig.Studio`). In Google Colab, importing this package turns on Colab's
custom widget manager, without which third-party widgets such as ipycanvas's do not render there.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["MaskCanvas", "MaskPainter", "Studio", "TracePlayer"]

_LAZY = {"Studio": "studio", "MaskCanvas": "mask_canvas", "MaskPainter": "mask_painter",
         "TracePlayer": "trace_player"}


def _enable_colab_widgets() -> None:
    """Colab renders only its built-in widgets unless the custom widget manager is on; elsewhere do nothing."""
    try:
        from google.colab import output  # type: ignore[import-not-found]
    except ImportError:
        return
    output.enable_custom_widget_manager()


_enable_colab_widgets()


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'imagegen_nb.widgets' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover
    from .mask_canvas import MaskCanvas
    from .mask_painter import MaskPainter
    from .studio import Studio
    from .trace_player import TracePlayer
