"""MaskPainter, the mask painter that needs no canvas extension: what the browser sends becomes the mask (checked as
data), what Python sets is sent to the browser, and ig.inpaint takes the painter itself."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

pytest.importorskip("anywidget")

import imagegen_nb as ig  # noqa: E402
from imagegen_nb.widgets.mask_canvas import MASK_RGB  # noqa: E402


def url_of(image: Image.Image, fmt: str = "PNG") -> str:
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(buf.getvalue()).decode()


def stroke(size=(64, 48), box=(10, 5, 30, 15)) -> str:
    """What the browser sends after a stroke: the canvas as an RGBA PNG, opaque where painted."""
    canvas = Image.new("RGBA", size, (0, 0, 0, 0))
    ImageDraw.Draw(canvas).rectangle(box, fill=(*MASK_RGB, 255))
    return url_of(canvas)


@pytest.fixture
def picture():
    im = Image.new("RGB", (64, 48), "white")
    ImageDraw.Draw(im).rectangle([40, 20, 60, 40], fill="red")
    return im


def test_the_picture_travels_at_its_own_pixels(picture):
    painter = ig.MaskPainter(picture)
    assert painter.picture.startswith("data:image/png;base64,")
    sent = Image.open(io.BytesIO(base64.b64decode(painter.picture.split(",", 1)[1])))
    assert sent.size == (64, 48) and (np.asarray(sent.convert("RGB")) == np.asarray(picture)).all()
    assert (painter.width, painter.height, painter.display_width) == (64, 48, 256)  # shown 4x
    assert painter.brush_size == 6  # 1/8 of the shorter side
    assert "export default" in painter._esm  # the drawing code travels with the widget


def test_a_stroke_from_the_browser_becomes_the_mask(picture):
    painter = ig.MaskPainter(picture)
    assert not painter.mask_array.any()
    painter.mask_png = stroke()
    m = painter.mask_array
    assert m.shape == (48, 64) and m.sum() == 21 * 11
    assert m[5:16, 10:31].all() and not m[:5].any() and not m[:, 31:].any()
    assert painter.mask.mode == "L" and painter.mask.getpixel((20, 10)) == 255 and painter.mask.getpixel((0, 0)) == 0
    painter.mask_png = ""  # the browser's Clear
    assert not painter.mask_array.any()


@pytest.mark.parametrize("bad, reason", [
    ("javascript:alert(1)", "not a PNG data URL"),
    ("data:image/png;base64,!!!not base64", "base64"),
    (url_of(Image.new("RGBA", (32, 32))), r"not a PNG of \(64, 48\)"),
    (url_of(Image.new("RGB", (64, 48)), "JPEG").replace("image/jpeg", "image/png"), "a JPEG of"),
])
def test_what_the_browser_sends_is_checked_and_a_bad_one_keeps_the_mask(picture, bad, reason):
    painter = ig.MaskPainter(picture)
    painter.mask_png = stroke()
    kept = painter.mask_array
    with pytest.warns(UserWarning, match=f"MaskPainter ignored a mask it could not read .*({reason})"):
        painter.mask_png = bad
    assert (painter.mask_array == kept).all()


def test_a_mask_set_in_python_is_shown_in_the_browser(picture):
    area = np.zeros((48, 64), bool)
    area[20:41, 40:61] = True
    painter = ig.MaskPainter(picture, mask=area)
    assert (painter.mask_array == area).all()
    sent = Image.open(io.BytesIO(base64.b64decode(painter.mask_png.split(",", 1)[1]))).convert("RGBA")
    alpha = np.asarray(sent)[:, :, 3]
    assert ((alpha == 255) == area).all()
    assert tuple(np.asarray(sent)[30, 50, :3]) == MASK_RGB
    painter.clear()
    assert painter.mask_png == "" and not painter.mask_array.any()


def test_inpaint_takes_the_painter_as_its_mask(picture):
    painter = ig.MaskPainter(picture, mask_blur=0)
    painter.mask_png = stroke(box=(0, 0, 31, 47))  # the left half
    out = ig.inpaint(picture, painter, "a blue square", seed=0, num_inference_steps=2)
    a, before = np.asarray(out), np.asarray(picture)
    assert out.size == (64, 48)
    assert (a[:, 32:] == before[:, 32:]).all()  # outside the mask every pixel is kept
    assert (a[:, :32] != before[:, :32]).any()
    assert ig.recipe(out)["mask_blur"] == 0


def test_bad_arguments_name_themselves(picture):
    with pytest.raises(ValueError, match="brush_size must be at least 1"):
        ig.MaskPainter(picture, brush_size=0)
    with pytest.raises(ValueError, match="mask_blur must be 0 or more"):
        ig.MaskPainter(picture, mask_blur=-2)
