"""Small pieces the widgets share: PNG bytes for Image widgets, display sizes, the pixelated style, error text."""

from __future__ import annotations

import html
import io
import traceback

from PIL import Image

PIXELATED_CLASS = "ig-pixelated"
# Browsers smooth enlarged pictures; the built-in model's 64x64 ones should show their pixels as squares.
PIXELATED_CSS = (f"<style>.{PIXELATED_CLASS}, .{PIXELATED_CLASS} img, .{PIXELATED_CLASS} canvas "
                 "{image-rendering: pixelated;}</style>")

# Errors whose message is written for the user (bad input, unknown model, out of memory): shown without traceback.
_USER_ERRORS = (ValueError, TypeError, FileNotFoundError, ImportError)


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def uploaded_picture(files) -> Image.Image | None:
    """The picture a FileUpload's `value` holds (its first file), decoded; None when it holds none. A file PIL
    cannot read is a ValueError naming it."""
    if not files:
        return None
    try:
        picture = Image.open(io.BytesIO(bytes(files[0]["content"])))
        picture.load()
    except Exception as err:
        raise ValueError(f"{files[0].get('name', 'upload')}: not a picture PIL can read ({err})") from None
    return picture


def display_width(size: tuple[int, int], small: int = 256, large: int = 512) -> int:
    """CSS width to show a picture of `size` at: small ones (the built-in model's 64x64) enlarged by a whole
    factor to about `small`, big ones shrunk to `large`. Only the shown size changes, never the pixels sent."""
    width, side = size[0], max(size)
    if side <= small // 2:
        return width * (small // side)
    return min(width, round(width * large / side))


def is_user_error(err: BaseException) -> bool:
    from ..errors import OutOfMemoryError

    return isinstance(err, (*_USER_ERRORS, OutOfMemoryError))


def error_html(err: BaseException) -> str:
    """A readable message for the panel: the error's type and text; a traceback only for unexpected errors."""
    head = (f'<div style="color:#b00020;white-space:pre-wrap"><b>{html.escape(type(err).__name__)}</b>: '
            f"{html.escape(str(err))}</div>")
    if is_user_error(err):
        return head
    tb = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    return head + f"<details><summary>traceback</summary><pre>{html.escape(tb)}</pre></details>"
