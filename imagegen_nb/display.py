"""How results show in a notebook: a list of pictures as one grid, and the built-in model's 64x64 pictures
enlarged with crisp pixels. Only the display changes: the pixels the functions return stay as they are."""

from __future__ import annotations

import base64
import io
import math

from PIL import Image

PIXELATED_WIDTH = 256  # CSS pixels a built-in-model picture is shown at


def png_base64(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _html_img(image: Image.Image, width: int | None, title: str = "") -> str:
    style = f"width:{width}px;image-rendering:pixelated;" if width else ""
    return (f'<img src="data:image/png;base64,{png_base64(image)}" style="{style}margin:2px" '
            f'title="{title}" alt="{title}"/>')


class PixelImage(Image.Image):
    """A PIL image that displays enlarged with nearest-neighbour scaling (in HTML, `image-rendering: pixelated`;
    in PNG, a nearest-neighbour enlargement made only for display)."""

    def _repr_html_(self) -> str:
        return _html_img(self, PIXELATED_WIDTH)

    def _repr_png_(self) -> bytes:
        scale = max(1, PIXELATED_WIDTH // max(self.size))
        buf = io.BytesIO()
        self.resize((self.width * scale, self.height * scale), Image.NEAREST).save(buf, format="PNG")
        return buf.getvalue()


def enlarge_when_small(image: Image.Image) -> Image.Image:
    """Make a small picture (the built-in models' 64 px) display enlarged with crisp pixels, as a `PixelImage`;
    larger ones are left as they are. The picture itself is not resized."""
    if max(image.size) <= 128 and type(image) is Image.Image:
        image.__class__ = PixelImage
    return image


def grid(images: list[Image.Image], cols: int | None = None) -> Image.Image:
    """The pictures side by side in rows of `cols` (default: a near-square grid), on white.

    >>> import imagegen_nb as ig
    >>> ig.grid(ig.generate("a red circle", seed=0, num_images=3), cols=3).size
    (192, 64)
    """
    if not images:
        raise ValueError("grid needs at least one image")
    cols = cols or math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / cols)
    w, h = max(i.width for i in images), max(i.height for i in images)
    out = Image.new("RGB", (cols * w, rows * h), "white")
    for k, im in enumerate(images):
        out.paste(im.convert("RGB"), ((k % cols) * w, (k // cols) * h))
    return out


class ImageList(list):
    """A list of pictures that shows as a grid in a notebook."""

    def _repr_html_(self) -> str:
        if not self:
            return "<em>no images</em>"
        small = max(max(i.size) for i in self) <= 128
        width = PIXELATED_WIDTH // 2 if small else min(256, self[0].width)
        return "<div>" + "".join(_html_img(i, width, f"seed {_seed(i)}") for i in self) + "</div>"

    def _repr_png_(self) -> bytes | None:
        if not self:
            return None
        g = grid(list(self))
        if max(max(i.size) for i in self) <= 128:
            g = g.resize((g.width * 2, g.height * 2), Image.NEAREST)
        buf = io.BytesIO()
        g.save(buf, format="PNG")
        return buf.getvalue()


def _seed(image: Image.Image) -> str:
    import json

    text = image.info.get("imagegen_nb")
    return str(json.loads(text).get("seed")) if text else "?"
