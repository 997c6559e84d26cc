"""Paint an inpainting mask over a picture: a canvas that only shows the mask, which lives in Python at the
picture's full resolution and is up to date the moment a stroke ends.
"""

from __future__ import annotations

import math

import ipywidgets as widgets
import numpy as np
from ipycanvas import MultiCanvas, hold_canvas
from PIL import Image

from .. import inputs
from ._common import PIXELATED_CLASS, PIXELATED_CSS

TOOLS = ("brush", "eraser", "rectangle")
UNDO_LIMIT = 50  # masks kept for undo
MASK_RGB = (255, 0, 90)  # colour of the painted area on screen
MASK_ALPHA = 140  # its opacity (0-255), so the picture shows through


class MaskCanvas(widgets.VBox):
    """A mask painter over `image`: brush, eraser and rectangle tools, brush size, undo, clear, invert, mask blur.

    `canvas.mask` is a mode "L" PIL image of the picture's size, 255 where the picture is to be repainted
    (diffusers' convention), so `ig.inpaint(image, canvas, prompt)` takes the canvas itself as the mask.
    The mask is a numpy array changed in the mouse handlers: nothing is read back from the browser.

    Args:
        image: the picture (a PIL image, a numpy array or a path, as `ig.inpaint` takes it).
        brush_size: brush diameter in the picture's pixels (default: 1/8 of the shorter side).
        mask: a mask to start from (any form `ig.inpaint` takes); default empty.
        mask_blur: the soft edge, in pixels, that `ig.inpaint` pastes its result through (its `mask_blur`; default
            `ig.inpaint`'s own for the picture's size). `canvas.mask` stays the hard painted mask; the overlay
            shows the blurred one, and `ig.inpaint(image, canvas, prompt)` and the Studio hand the slider's value
            to `ig.inpaint`.
        max_display: pictures with a longer side above this many pixels are shown scaled down to it; the mask
            keeps the picture's full resolution.
        min_display: smaller pictures (the built-in model's 64x64) are shown enlarged by a whole factor to about
            this size, pixels as squares.

    In Google Colab, `import imagegen_nb.widgets` (which `ig.MaskCanvas` does) calls
    `google.colab.output.enable_custom_widget_manager()`, without which the canvas does not show there. Where
    ipycanvas cannot render (VS Code offline, a frontend without its extension), `ig.MaskPainter` does the same job
    with code that travels with the widget. Where no widget shows (a static viewer), make the mask in code, pass it to
    `ig.inpaint`: a numpy bool array (`mask = np.zeros((h, w), bool); mask[y0:y1, x0:x1] = True`) or a PIL image;
    or assign one to `canvas.mask`, or paint from code with `canvas.mouse_down/mouse_move/mouse_up`.

    >>> import imagegen_nb as ig
    >>> from PIL import Image
    >>> canvas = ig.MaskCanvas(Image.new("RGB", (64, 64), "white"), brush_size=8)
    >>> canvas.display_size  # shown 6x; mouse coordinates are canvas pixels
    (384, 384)
    >>> canvas.mouse_down(60, 60); canvas.mouse_move(120, 60); canvas.mouse_up(120, 60)
    >>> canvas.mask.size, canvas.mask.getpixel((15, 10)), canvas.mask.getpixel((15, 40))
    ((64, 64), 255, 0)
    """

    def __init__(self, image, brush_size: int | None = None, *, mask=None, mask_blur: float | None = None,
                 max_display: int = 512, min_display: int = 384):
        self.image = inputs.to_image(image)
        w, h = self.image.size
        side = max(w, h)
        if side > max_display:
            scale = max_display / side
        elif side < min_display:
            scale = max(1, min_display // side)
        else:
            scale = 1
        self.display_size = (max(1, round(w * scale)), max(1, round(h * scale)))
        if brush_size is None:
            brush_size = max(1, min(w, h) // 8)
        if brush_size < 1:
            raise ValueError(f"brush_size must be at least 1 (pixels of the picture), not {brush_size!r}")
        if mask_blur is None:
            mask_blur = inputs.default_mask_blur(self.image.size)
        elif not isinstance(mask_blur, (int, float)) or mask_blur < 0:
            raise ValueError(f"mask_blur must be 0 or more (pixels), not {mask_blur!r}")

        self._mask = np.zeros((h, w), dtype=bool)
        if mask is not None:
            self._mask = np.asarray(inputs.to_mask(mask, (w, h))) > 127
        self._history: list[np.ndarray] = []
        self._last: tuple[float, float] | None = None  # previous point of the stroke in progress (picture px)
        self._rect_start: tuple[float, float] | None = None  # corner of the rectangle being dragged (picture px)

        # -- controls --------------------------------------------------------------------------------------
        self.tool = widgets.ToggleButtons(options=[("Brush", "brush"), ("Eraser", "eraser"),
                                                   ("Rectangle", "rectangle")], value="brush",
                                          style={"button_width": "80px"}, tooltips=[
                                              "paint the area to repaint", "remove paint",
                                              "drag to paint a rectangle"])
        self.brush_size = widgets.IntSlider(value=int(brush_size), min=1, max=max(int(brush_size), side // 2, 2),
                                            description="brush size", continuous_update=False)
        self.mask_blur = widgets.FloatSlider(value=float(mask_blur), min=0.0,
                                             max=max(float(mask_blur), side / 8, 1.0), step=0.5,
                                             description="mask_blur", continuous_update=False)
        self.undo_button = widgets.Button(description="Undo", icon="undo", layout={"width": "80px"})
        self.clear_button = widgets.Button(description="Clear", layout={"width": "80px"})
        self.invert_button = widgets.Button(description="Invert", layout={"width": "80px"})
        self.info = widgets.Label()
        self.undo_button.on_click(lambda _: self.undo())
        self.clear_button.on_click(lambda _: self.clear())
        self.invert_button.on_click(lambda _: self.invert())
        self.mask_blur.observe(lambda _: self._draw_mask(), names="value")

        # -- canvas: picture, mask overlay, and a top layer for the cursor that also receives the events -----
        dw, dh = self.display_size
        self.canvas = MultiCanvas(3, width=dw, height=dh, layout={"width": f"{dw}px", "height": f"{dh}px"})
        self.canvas.add_class(PIXELATED_CLASS)
        self.canvas.on_mouse_down(self.mouse_down)
        self.canvas.on_mouse_move(self.mouse_move)
        self.canvas.on_mouse_up(self.mouse_up)
        self.canvas.on_mouse_out(self._mouse_out)
        self.canvas.on_client_ready(self.redraw)

        super().__init__([widgets.HTML(PIXELATED_CSS), self.tool,
                          widgets.HBox([self.brush_size, self.mask_blur]),
                          widgets.HBox([self.undo_button, self.clear_button, self.invert_button, self.info]),
                          # the border on a box around the canvas: on the canvas it would shift mouse coordinates
                          widgets.Box([self.canvas], layout={"border": "1px solid #bbb", "width": "fit-content"})])
        self.redraw()

    # -- the mask -------------------------------------------------------------------------------------------
    @property
    def mask(self) -> Image.Image:
        """The painted mask as a mode "L" image of the picture's size: 255 = repaint, 0 = keep. Hard-edged:
        `ig.inpaint` softens it by `mask_blur` when it pastes its result back."""
        return Image.fromarray(self._mask.astype(np.uint8) * 255, mode="L")

    @mask.setter
    def mask(self, value) -> None:
        self._push()
        self._mask = np.asarray(inputs.to_mask(value, self.image.size)) > 127
        self._draw_mask()

    @property
    def mask_array(self) -> np.ndarray:
        """The painted mask as a bool array (H, W) (a copy)."""
        return self._mask.copy()

    def clear(self) -> None:
        """Remove all paint (undoable)."""
        self._push()
        self._mask[:] = False
        self._draw_mask()

    def invert(self) -> None:
        """Swap painted and unpainted (undoable)."""
        self._push()
        self._mask = ~self._mask
        self._draw_mask()

    def undo(self) -> None:
        """Go back to the mask before the last stroke, rectangle, clear, invert or assignment."""
        if self._history:
            self._mask = self._history.pop()
            self._draw_mask()

    def _push(self) -> None:
        self._history.append(self._mask.copy())
        del self._history[:-UNDO_LIMIT]

    # -- mouse handlers (coordinates in canvas pixels, as ipycanvas sends them) -------------------------------
    def _to_picture(self, x: float, y: float) -> tuple[float, float]:
        w, h = self.image.size
        dw, dh = self.display_size
        return min(max(x * w / dw, 0.0), float(w)), min(max(y * h / dh, 0.0), float(h))

    def mouse_down(self, x: float, y: float) -> None:
        """Start a stroke (brush, eraser) or a rectangle at canvas point (x, y)."""
        p = self._to_picture(x, y)
        if self.tool.value == "rectangle":
            self._rect_start = p
            return
        self._push()
        self._last = p
        self._paint_segment(p, p, self.tool.value == "brush")

    def mouse_move(self, x: float, y: float) -> None:
        """Continue the stroke or rectangle; without one, show the brush outline."""
        p = self._to_picture(x, y)
        if self._last is not None:
            self._paint_segment(self._last, p, self.tool.value == "brush")
            self._last = p
        elif self._rect_start is not None:
            self._draw_rectangle_outline(self._rect_start, p)
        elif self.tool.value != "rectangle":
            self._draw_cursor(x, y)

    def mouse_up(self, x: float, y: float) -> None:
        """End the stroke or rectangle at (x, y): from here on `mask` includes it."""
        p = self._to_picture(x, y)
        if self._last is not None:
            self._paint_segment(self._last, p, self.tool.value == "brush")
            self._last = None
            if self.mask_blur.value > 0:
                self._draw_mask()
        elif self._rect_start is not None:
            start, self._rect_start = self._rect_start, None
            self._push()
            self._fill_rectangle(start, p)
            self.canvas[2].clear()

    def _mouse_out(self, x: float, y: float) -> None:
        if self._last is not None or self._rect_start is not None:
            self.mouse_up(x, y)
        self.canvas[2].clear()

    # -- painting into the array ----------------------------------------------------------------------------
    def _paint_segment(self, p0: tuple[float, float], p1: tuple[float, float], value: bool) -> None:
        """Set every pixel whose centre lies within brush_size / 2 of the segment p0-p1 (a round brush)."""
        h, w = self._mask.shape
        r = self.brush_size.value / 2
        (x0, y0), (x1, y1) = p0, p1
        left, right = max(0, math.floor(min(x0, x1) - r)), min(w, math.ceil(max(x0, x1) + r) + 1)
        top, bottom = max(0, math.floor(min(y0, y1) - r)), min(h, math.ceil(max(y0, y1) + r) + 1)
        if left < right and top < bottom:
            ys, xs = np.mgrid[top:bottom, left:right] + 0.5
            dx, dy = x1 - x0, y1 - y0
            length2 = dx * dx + dy * dy
            t = np.zeros_like(xs) if length2 == 0 else np.clip(((xs - x0) * dx + (ys - y0) * dy) / length2, 0, 1)
            hit = (xs - x0 - t * dx) ** 2 + (ys - y0 - t * dy) ** 2 <= r * r
            self._mask[top:bottom, left:right][hit] = value
        for px, py in (p0, p1):  # the pixel under the pointer, so that a 1-pixel brush always leaves a mark
            self._mask[min(int(py), h - 1), min(int(px), w - 1)] = value
        self._draw_mask((left, top, right, bottom))

    def _fill_rectangle(self, p0: tuple[float, float], p1: tuple[float, float]) -> None:
        """Paint every pixel the rectangle with corners p0 and p1 touches."""
        h, w = self._mask.shape
        left, right = math.floor(min(p0[0], p1[0])), math.ceil(max(p0[0], p1[0]))
        top, bottom = math.floor(min(p0[1], p1[1])), math.ceil(max(p0[1], p1[1]))
        left, top = min(left, w - 1), min(top, h - 1)
        right, bottom = max(right, left + 1), max(bottom, top + 1)
        self._mask[top:bottom, left:right] = True
        self._draw_mask((left, top, right, bottom))

    # -- drawing on the canvas (display only) ---------------------------------------------------------------
    def redraw(self, *_) -> None:
        """Draw the picture and the mask again (a new browser view of the widget starts blank)."""
        dw, dh = self.display_size
        shown = self.image
        if shown.size != (dw, dh):
            shown = shown.resize((dw, dh), Image.NEAREST if dw > self.image.width else Image.LANCZOS)
        rgba = np.asarray(shown.convert("RGBA"))  # RGBA goes to the browser as PNG (RGB would go as JPEG)
        with hold_canvas():
            self.canvas[0].clear()
            self.canvas[0].put_image_data(rgba, 0, 0)
            self._draw_mask()

    def _draw_mask(self, box: tuple[int, int, int, int] | None = None) -> None:
        """Show the mask over the picture pixels in `box` (left, top, right, bottom; default all) of the picture."""
        h, w = self._mask.shape
        dw, dh = self.display_size
        left, top, right, bottom = box or (0, 0, w, h)
        dl, dr = max(0, math.floor(left * dw / w)), min(dw, math.ceil(right * dw / w))
        dt, db = max(0, math.floor(top * dh / h)), min(dh, math.ceil(bottom * dh / h))
        if dl >= dr or dt >= db:
            return
        # each canvas pixel shows the picture pixel its centre falls in
        ix = np.minimum(((np.arange(dl, dr) + 0.5) * w / dw).astype(int), w - 1)
        iy = np.minimum(((np.arange(dt, db) + 0.5) * h / dh).astype(int), h - 1)
        if box is None and self.mask_blur.value > 0:  # the soft edge inpaint will paste through
            soft = inputs.feather(self.mask, float(self.mask_blur.value))
            alpha = np.asarray(soft, dtype=np.float32)[np.ix_(iy, ix)] / 255 * MASK_ALPHA
        else:
            alpha = self._mask[np.ix_(iy, ix)] * float(MASK_ALPHA)
        layer = self.canvas[1]
        with hold_canvas():
            layer.clear_rect(dl, dt, dr - dl, db - dt)
            if alpha.any():
                rgba = np.empty((db - dt, dr - dl, 4), dtype=np.uint8)
                rgba[..., :3] = MASK_RGB
                rgba[..., 3] = np.round(alpha).astype(np.uint8)
                layer.put_image_data(rgba, dl, dt)
        share = self._mask.mean() * 100
        self.info.value = f"mask: {share:.1f}% of {w}x{h} px"

    def _draw_cursor(self, x: float, y: float) -> None:
        layer = self.canvas[2]
        radius = self.brush_size.value / 2 * self.display_size[0] / self.image.width
        with hold_canvas():
            layer.clear()
            layer.stroke_style = "#222"
            layer.line_width = 1
            layer.stroke_circle(x, y, max(radius, 1))

    def _draw_rectangle_outline(self, p0: tuple[float, float], p1: tuple[float, float]) -> None:
        layer = self.canvas[2]
        sx, sy = self.display_size[0] / self.image.width, self.display_size[1] / self.image.height
        x, y = min(p0[0], p1[0]) * sx, min(p0[1], p1[1]) * sy
        with hold_canvas():
            layer.clear()
            layer.stroke_style = "#222"
            layer.line_width = 1
            layer.stroke_rect(x, y, abs(p1[0] - p0[0]) * sx, abs(p1[1] - p0[1]) * sy)
