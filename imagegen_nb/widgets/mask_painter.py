"""Paint an inpainting mask where ipycanvas cannot render: an anywidget whose drawing code travels with the widget
itself (no frontend extension to install, nothing fetched from a CDN), for VS Code offline, Voila or any frontend
without the ipycanvas extension.
"""

from __future__ import annotations

import base64
import io
import warnings

import anywidget
import numpy as np
import traitlets
from PIL import Image

from .. import inputs
from .mask_canvas import MASK_ALPHA, MASK_RGB

_PNG_URL = "data:image/png;base64,"

# The canvas holds the mask at the picture's own resolution (CSS enlarges it, pixels as squares); a stroke paints
# opaque MASK_RGB, the eraser clears, and each finished stroke sends the canvas back as a PNG, whose alpha is the
# mask. Python sets `mask_png` to redraw it (a loaded or cleared mask).
_ESM = """
function render({ model, el }) {
  const wrap = document.createElement("div");
  wrap.className = "ig-mask-painter";
  wrap.style.cssText = "position: relative; display: inline-block; border: 1px solid #bbb; line-height: 0";
  const picture = document.createElement("img");
  const canvas = document.createElement("canvas");
  for (const node of [picture, canvas]) node.style.imageRendering = "pixelated";
  canvas.style.cssText += "; position: absolute; left: 0; top: 0; cursor: crosshair; touch-action: none";
  canvas.style.opacity = String(model.get("overlay_opacity"));
  wrap.append(picture, canvas);
  const tools = document.createElement("div");
  tools.style.cssText = "margin-top: 4px; display: flex; gap: 4px; align-items: center";
  const button = (label, onclick) => {
    const b = document.createElement("button");
    b.textContent = label; b.className = "jupyter-button"; b.onclick = onclick; tools.append(b); return b;
  };
  const choose = (name) => () => { model.set("tool", name); model.save_changes(); };
  const brush = button("Brush", choose("brush"));
  const eraser = button("Eraser", choose("eraser"));
  button("Clear", () => { ctx.clearRect(0, 0, canvas.width, canvas.height); send(); });
  const label = document.createElement("span");
  label.textContent = "brush size"; label.style.marginLeft = "8px";
  tools.append(label);
  const size = document.createElement("input");
  size.type = "range"; size.min = "1"; size.title = "brush diameter, in the picture's pixels";
  size.oninput = () => { model.set("brush_size", Number(size.value)); model.save_changes(); };
  tools.append(size);
  el.append(wrap, tools);
  const ctx = canvas.getContext("2d");
  let last = null, sent = "";

  function layout() {
    const w = model.get("width"), h = model.get("height"), shown = model.get("display_width");
    canvas.width = w; canvas.height = h;
    for (const node of [picture, canvas]) {
      node.style.width = shown + "px"; node.style.height = (shown * h / w) + "px";
    }
    picture.src = model.get("picture");
    size.max = String(Math.max(2, Math.floor(Math.max(w, h) / 2)));
    load();
  }
  function load() {
    const url = model.get("mask_png");
    if (url === sent) return;  // our own stroke coming back
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    if (!url) return;
    const image = new Image();
    image.onload = () => { ctx.clearRect(0, 0, canvas.width, canvas.height); ctx.drawImage(image, 0, 0); };
    image.src = url;
  }
  function tool() {
    const erasing = model.get("tool") === "eraser";
    brush.style.fontWeight = erasing ? "normal" : "bold"; eraser.style.fontWeight = erasing ? "bold" : "normal";
    size.value = String(model.get("brush_size"));
  }
  function point(event) {  // canvas pixels are picture pixels
    const box = canvas.getBoundingClientRect();
    return [(event.clientX - box.left) * canvas.width / box.width,
            (event.clientY - box.top) * canvas.height / box.height];
  }
  function paint(p0, p1) {
    ctx.globalCompositeOperation = model.get("tool") === "eraser" ? "destination-out" : "source-over";
    ctx.strokeStyle = ctx.fillStyle = model.get("color");
    ctx.lineWidth = model.get("brush_size"); ctx.lineCap = "round";
    ctx.beginPath(); ctx.moveTo(p0[0], p0[1]); ctx.lineTo(p1[0], p1[1]); ctx.stroke();
  }
  function send() {
    sent = canvas.toDataURL("image/png");
    model.set("mask_png", sent); model.save_changes();
  }
  canvas.addEventListener("pointerdown", (e) => {
    last = point(e); paint(last, last); canvas.setPointerCapture(e.pointerId);
  });
  canvas.addEventListener("pointermove", (e) => { if (last) { const p = point(e); paint(last, p); last = p; } });
  const end = () => { if (last) { last = null; send(); } };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  model.on("change:mask_png", load);
  model.on("change:tool", tool);
  model.on("change:brush_size", tool);
  for (const name of ["picture", "width", "height", "display_width"]) model.on("change:" + name, layout);
  layout(); tool();
}
export default { render };
"""


def _png_url(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return _PNG_URL + base64.b64encode(buf.getvalue()).decode("ascii")


class MaskPainter(anywidget.AnyWidget):
    """A mask painter over `image` that needs no canvas extension: brush, eraser, brush size and clear, drawn by
    code that travels with the widget (anywidget), so it works where `ig.MaskCanvas` shows nothing (VS Code
    offline, a frontend without the ipycanvas extension, Voila without it).

    `painter.mask` is a mode "L" PIL image of the picture's size, 255 where the picture is to be repainted, and
    `ig.inpaint(image, painter, prompt)` takes the painter itself. The browser paints at the picture's own
    resolution and sends the mask when each stroke ends; setting `painter.mask` (any form `ig.inpaint` takes)
    shows it there.

    >>> import imagegen_nb as ig
    >>> import numpy as np
    >>> from PIL import Image
    >>> painter = ig.MaskPainter(Image.new("RGB", (64, 64), "white"))
    >>> painter.display_width  # shown 4x, pixels as squares
    256
    >>> area = np.zeros((64, 64), bool); area[10:20, 30:50] = True
    >>> painter.mask = area  # as if painted
    >>> painter.mask.size, painter.mask.getpixel((40, 15)), painter.mask.getpixel((5, 5))
    ((64, 64), 255, 0)
    """

    _esm = _ESM
    picture = traitlets.Unicode(help="the picture, as a PNG data URL").tag(sync=True)
    width = traitlets.Int(help="the picture's width in pixels").tag(sync=True)
    height = traitlets.Int(help="the picture's height in pixels").tag(sync=True)
    display_width = traitlets.Int(help="the CSS width it is shown at").tag(sync=True)
    mask_png = traitlets.Unicode("", help="the painted mask as a PNG data URL (its alpha is the mask)").tag(sync=True)
    tool = traitlets.Enum(("brush", "eraser"), "brush").tag(sync=True)
    brush_size = traitlets.Int(8, help="brush diameter in the picture's pixels").tag(sync=True)
    color = traitlets.Unicode("rgb({}, {}, {})".format(*MASK_RGB)).tag(sync=True)
    overlay_opacity = traitlets.Float(MASK_ALPHA / 255).tag(sync=True)

    def __init__(self, image, brush_size: int | None = None, *, mask=None, mask_blur: float | None = None,
                 **kwargs):
        from ._common import display_width

        self.image = inputs.to_image(image)
        w, h = self.image.size
        if brush_size is None:
            brush_size = max(1, min(w, h) // 8)
        if not isinstance(brush_size, int) or isinstance(brush_size, bool) or brush_size < 1:
            raise ValueError(f"brush_size must be at least 1 (pixels of the picture), not {brush_size!r}")
        if mask_blur is not None and (not isinstance(mask_blur, (int, float)) or mask_blur < 0):
            raise ValueError(f"mask_blur must be 0 or more (pixels), not {mask_blur!r}")
        #: the soft edge `ig.inpaint` pastes its result through (None: its default for the picture's size)
        self.mask_blur = mask_blur
        self._mask = np.zeros((h, w), dtype=bool)
        super().__init__(picture=_png_url(self.image.convert("RGB")), width=w, height=h,
                         display_width=display_width((w, h)), brush_size=brush_size, **kwargs)
        if mask is not None:
            self.mask = mask

    @property
    def mask(self) -> Image.Image:
        """The painted mask: mode "L", the picture's size, 255 = repaint."""
        return Image.fromarray(self._mask.astype(np.uint8) * 255)

    @mask.setter
    def mask(self, value) -> None:
        self._mask = np.asarray(inputs.to_mask(value, self.image.size)) > 127
        self._show()

    @property
    def mask_array(self) -> np.ndarray:
        """The mask as a bool array of shape (height, width)."""
        return self._mask.copy()

    def clear(self) -> None:
        """Remove all paint."""
        self._mask = np.zeros_like(self._mask)
        self._show()

    def _show(self) -> None:
        rgba = np.zeros((*self._mask.shape, 4), np.uint8)
        rgba[self._mask] = (*MASK_RGB, 255)
        self.mask_png = "" if not self._mask.any() else _png_url(Image.fromarray(rgba, "RGBA"))

    @traitlets.observe("mask_png")
    def _from_browser(self, change) -> None:
        url = change["new"]
        if not url:
            self._mask = np.zeros_like(self._mask)
            return
        try:  # what the browser sends is data to check, like any picture
            if not url.startswith(_PNG_URL):
                raise ValueError("not a PNG data URL")
            with Image.open(io.BytesIO(base64.b64decode(url[len(_PNG_URL):], validate=True))) as png:
                if png.format != "PNG" or png.size != self.image.size:
                    raise ValueError(f"a {png.format} of {png.size}, not a PNG of {self.image.size}")
                alpha = np.asarray(png.convert("RGBA"))[:, :, 3]
        except Exception as err:
            warnings.warn(f"MaskPainter ignored a mask it could not read ({err}); the previous mask is kept",
                          stacklevel=2)
            return
        self._mask = alpha > 127
