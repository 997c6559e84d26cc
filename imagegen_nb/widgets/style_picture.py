"""The Studio's style reference: a picture whose look the next run takes (`style=` of the task functions), its
`style_scale` and the IP-Adapter that reads it (`ip_adapter`, empty for the model family's default).

>>> from PIL import Image
>>> from imagegen_nb.widgets.style_picture import StylePicture
>>> box = StylePicture()
>>> box.values()
{}
>>> box.set_values({"style": Image.new("RGB", (64, 64), "gray"), "style_scale": 0.4})
>>> sorted(box.values()), box.values()["style_scale"], box.label.value
(['ip_adapter', 'style', 'style_scale'], 0.4, 'style picture: 64x64')
>>> box.clear(); box.values()
{}
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
from PIL import Image

from .. import arguments, inputs, registry, style
from ._common import PIXELATED_CLASS, display_width, error_html, png_bytes, uploaded_picture

_EMPTY = "<i>no style picture: upload one, or send one from the gallery</i>"


class StylePicture(widgets.VBox):
    """A style picture with its upload and clear buttons, the `style_scale` slider and the `ip_adapter` box."""

    NAMES = ("style", "style_scale", "ip_adapter")  # the task-function arguments it holds

    def __init__(self, *, on_error: Callable[[BaseException], Any] | None = None):
        self.image: Image.Image | None = None
        self.message = widgets.HTML()
        self._on_error = on_error or (lambda err: setattr(self.message, "value", error_html(err)))
        self.view = widgets.Image(format="png", layout={"width": "64px", "display": "none"})
        self.view.add_class(PIXELATED_CLASS)
        self.label = widgets.HTML(_EMPTY)
        self.upload = widgets.FileUpload(accept="image/*", multiple=False, description="Upload style")
        self.upload.observe(self._uploaded, names="value")
        self.clear_button = widgets.Button(description="No style", icon="times", layout={"width": "110px"})
        self.clear_button.on_click(lambda _: self.clear())
        self.style_scale = widgets.FloatSlider(description="style_scale", min=0.0, max=style.MAX_SCALE, step=0.05,
                                               value=registry.FAMILIES[registry.BUILTIN].default_style_scale,
                                               continuous_update=False, style={"description_width": "initial"},
                                               layout={"width": "100%"})
        self.ip_adapter = widgets.Text(description="ip_adapter", layout={"width": "100%"},
                                       placeholder="the family's IP-Adapter, or a .safetensors file",
                                       style={"description_width": "initial"})
        super().__init__([widgets.HBox([self.view, widgets.VBox([self.label, widgets.HBox(
            [self.upload, self.clear_button])])]), self.style_scale, self.ip_adapter, self.message])

    def set(self, image) -> None:
        """Use `image` (any form the task functions take) as the style picture."""
        picture = inputs.to_image(image, "style")
        self.image = picture
        self.view.value = png_bytes(picture)
        self.view.layout.width = f"{min(64, display_width(picture.size, 64, 64))}px"
        self.view.layout.display = None
        self.label.value = f"style picture: {picture.width}x{picture.height}"

    def clear(self) -> None:
        """No style picture: the next run is the prompt's alone."""
        self.image = None
        self.view.layout.display = "none"
        self.label.value = _EMPTY

    def apply_family(self, family: registry.Family) -> None:
        self.style_scale.value = family.default_style_scale

    def values(self) -> dict[str, Any]:
        """`style`, `style_scale` and `ip_adapter` as the task functions take them; nothing without a picture."""
        if self.image is None:
            return {}
        return {"style": self.image, "style_scale": self.style_scale.value,
                "ip_adapter": self.ip_adapter.value.strip() or None}

    def set_values(self, values: dict[str, Any]) -> None:
        """Fill the box from the arguments in `values` that are its own (`NAMES`), removing them from `values`."""
        if "style" in values:
            picture = values.pop("style")
            self.clear() if picture is None else self.set(picture)
        if values.get("style_scale") is not None:
            scale = arguments.number("style_scale", values.pop("style_scale"), low=0, high=style.MAX_SCALE)
            self.style_scale.value = scale
        values.pop("style_scale", None)
        if "ip_adapter" in values:
            adapter = values.pop("ip_adapter")
            if adapter is not None and not isinstance(adapter, (str, os.PathLike)):
                raise TypeError(f"ip_adapter must be a path or a Hub file id, not {type(adapter).__name__}")
            self.ip_adapter.value = "" if adapter is None else os.fspath(adapter)

    def _uploaded(self, change) -> None:
        try:
            picture = uploaded_picture(change["new"])
            if picture is not None:
                self.set(picture)
        except Exception as err:
            self._on_error(err)
