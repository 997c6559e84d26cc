"""The input picture of edit, inpaint and control: shown small beside an upload button, with a mask canvas over it
for inpaint and its control map (`ig.preprocess`) for control.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
from PIL import Image

from .. import inputs
from ._common import PIXELATED_CLASS, PIXELATED_CSS, display_width, error_html, png_bytes, uploaded_picture


class InputPicture(widgets.VBox):
    """The picture a task starts from, with the upload button and a box for its mask canvas.

    `box.set(image)` shows a picture (any form `ig.edit` takes; `box.image` is it as a PIL image) and drops the
    mask canvas of the picture before. `box.open_mask_canvas()` puts a `MaskCanvas` over it (`box.mask_canvas`,
    shown in `box.mask_box`). `box.show_control_map(kind)` shows `ig.preprocess(image, kind)` in `box.control_view`,
    a widget for the owner to place (the Studio shows it beside its `kind` control). An uploaded picture goes to
    `on_upload(picture)`, by default `set`; errors (an upload PIL cannot read, a control map that cannot be made)
    go to `on_error(err)`, by default shown in the box's own message.

    >>> from PIL import Image
    >>> from imagegen_nb.widgets.input_picture import InputPicture
    >>> box = InputPicture()
    >>> box.set(Image.new("RGB", (64, 64), "white")); box.label.value
    'input picture: 64x64'
    >>> box.open_mask_canvas().mask.size
    (64, 64)
    >>> box.show_control_map("none"); len(box.control_view.value) > 0
    True
    """

    def __init__(self, *, on_upload: Callable[[Image.Image], Any] | None = None,
                 on_error: Callable[[BaseException], Any] | None = None):
        self.image: Image.Image | None = None
        self.mask_canvas = None  # a MaskCanvas over the picture, once opened
        self._on_upload = on_upload or self.set
        self.message = widgets.HTML()
        self._on_error = on_error or (lambda err: setattr(self.message, "value", error_html(err)))
        self.view = widgets.Image(format="png", layout={"width": "128px"})
        self.control_view = widgets.Image(format="png", layout={"width": "128px"})
        for view in (self.view, self.control_view):  # pixels as squares; no broken-image icon while empty
            view.add_class(PIXELATED_CLASS)
            view.layout.display = "none"
            view.observe(lambda change, v=view: setattr(v.layout, "display", None if change["new"] else "none"),
                         names="value")
        self.upload = widgets.FileUpload(accept="image/*", multiple=False, description="Upload picture")
        self.upload.observe(self._uploaded, names="value")
        self.label = widgets.HTML("<i>no input picture: send one from the gallery or upload one</i>")
        self.mask_box = widgets.VBox()
        own_message = [self.message, widgets.HTML(PIXELATED_CSS)] if on_error is None else []
        super().__init__([widgets.HBox([self.view, widgets.VBox([self.label, self.upload])]), self.mask_box,
                          *own_message])

    def set(self, image) -> None:
        """Show `image` as the input picture (its mask canvas, if any, is for the picture before: closed)."""
        picture = inputs.to_image(image, "image")
        self.image = picture
        self.view.value = png_bytes(picture)
        self.view.layout.width = f"{min(128, display_width(picture.size, 128, 128))}px"
        self.label.value = f"input picture: {picture.width}x{picture.height}"
        self.mask_canvas = None
        self.mask_box.children = ()

    def open_mask_canvas(self):
        """Put a `MaskCanvas` over the picture, to paint where it should change; returns it."""
        from .mask_canvas import MaskCanvas

        self.mask_canvas = MaskCanvas(self.image)
        self.mask_box.children = (widgets.HTML("paint where the picture should change:"), self.mask_canvas)
        return self.mask_canvas

    def show_control_map(self, kind: str) -> None:
        """Show the control map `ig.preprocess` makes of the picture (nothing before there is a picture)."""
        if self.image is None:
            return
        from ..preprocessors import preprocess

        try:
            cmap = preprocess(self.image, kind)
        except Exception as err:
            self._on_error(err)
            self.control_view.value = b""
            return
        self.control_view.value = png_bytes(cmap)
        self.control_view.layout.width = f"{min(128, display_width(cmap.size, 128, 128))}px"

    def _uploaded(self, change) -> None:
        try:
            picture = uploaded_picture(change["new"])
            if picture is not None:
                self._on_upload(picture)
        except Exception as err:
            self._on_error(err)
