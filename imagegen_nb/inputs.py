"""Images, masks and control maps in every form users pass them, and the errors for the ones we cannot use."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter


def open_file(path, name: str = "image") -> Image.Image:
    """A picture file opened and decoded, with errors that name the argument (and a size check before decoding)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{name}: no file at {str(path)!r}")
    try:
        image = Image.open(path)
    except Exception as err:  # PIL raises many kinds for a file it cannot read
        raise ValueError(f"{name}: {str(path)!r} is not an image PIL can read ({type(err).__name__})") from None
    _check_pixels(image.width, image.height, name)
    try:
        image.load()
    except Exception as err:
        raise ValueError(f"{name}: {str(path)!r} is damaged: PIL could not decode it ({err})") from None
    return image


def _check_pixels(width: int, height: int, name: str) -> None:
    from .arguments import limits

    if width * height > limits.max_input_pixels:
        raise ValueError(f"{name} is {width}x{height} ({width * height / 1e6:.0f} megapixels): the limit is "
                         f"{limits.max_input_pixels} pixels (ig.limits.max_input_pixels); resize it first, or "
                         f"raise the limit on purpose: ig.limits.max_input_pixels = {width * height}")


def to_image(image, name: str = "image") -> Image.Image:
    """An RGB PIL image from a PIL image of any mode, a path, or a numpy array (H, W), (H, W, 3|4) of uint8,
    uint16 or 0-1 floats. RGBA is composited on white, L and P are converted: diffusion models take RGB. 16-bit,
    32-bit and float pictures (modes I;16, I, F) are scaled to 0-255, not clipped."""
    if isinstance(image, (str, os.PathLike)):
        image = open_file(image, name)
    elif isinstance(image, np.ndarray):
        image = _array_to_pil(image, name)
    elif not isinstance(image, Image.Image):
        raise TypeError(f"{name} must be a PIL image, a numpy array or a path, not {type(image).__name__}")
    if image.width == 0 or image.height == 0:
        raise ValueError(f"{name} is empty ({image.width}x{image.height})")
    _check_pixels(image.width, image.height, name)
    image = _to_8bit(image, name)
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, (255, 255, 255))
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return image.convert("RGB")


def _to_8bit(image: Image.Image, name: str) -> Image.Image:
    """Deep greyscale pictures as mode L, scaled: PIL's own convert clips 16-bit values at 255 (almost white)."""
    if not (image.mode.startswith("I") or image.mode == "F"):
        return image
    values = np.asarray(image, dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    if image.mode.startswith("I;16"):
        top = 65535.0
    elif image.mode == "F":
        top = 1.0 if values.min() >= 0 and values.max() <= 1 else None
        if top is None:
            raise ValueError(f"{name} is a float picture with values in [{values.min():.3g}, {values.max():.3g}]; "
                             "scale it to [0, 1] first")
    else:  # 32-bit integers: PNG stores 16-bit greyscale this way
        if values.min() < 0 or values.max() > 65535:
            raise ValueError(f"{name} is a 32-bit picture with values in [{values.min():.0f}, {values.max():.0f}]; "
                             "scale it to 0-65535 (16-bit) or 0-255 first")
        top = 65535.0
    return Image.fromarray(np.round(values / top * 255).astype(np.uint8), mode="L")


def _array_to_pil(arr: np.ndarray, name: str) -> Image.Image:
    if arr.size == 0:
        raise ValueError(f"{name} is an empty array (shape {arr.shape})")
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
        raise ValueError(f"{name} array must be (H, W), (H, W, 3) or (H, W, 4), not shape {arr.shape}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} array holds NaN or infinite values")
        if arr.min() < 0 or arr.max() > 1:
            raise ValueError(f"{name} float array must hold values in [0, 1], got [{arr.min():.3g}, {arr.max():.3g}]")
        arr = np.round(arr * 255).astype(np.uint8)
    elif arr.dtype == np.uint16:  # 16-bit pictures (from PNG or TIFF readers): scale, do not clip
        arr = np.round(arr.astype(np.float64) / 65535 * 255).astype(np.uint8)
    elif arr.dtype != np.uint8:
        if arr.min() < 0 or arr.max() > 255:
            raise ValueError(f"{name} integer array must hold values in [0, 255] (or be uint16 for 16-bit), got "
                             f"[{arr.min()}, {arr.max()}]")
        arr = arr.astype(np.uint8)
    return Image.fromarray(arr)


def to_mask(mask, size: tuple[int, int] | None = None, *, resize: bool = False) -> Image.Image:
    """A mode "L" mask (255 = repaint) from a PIL image of any mode, a numpy array (bool, 0-1 float or 0-255), a
    path, or anything with a `.mask` attribute (such as `ig.MaskCanvas`). RGBA masks use their alpha channel when
    the colour channels are all one value. With `size`, a mask of another size is an error unless `resize=True`."""
    if hasattr(mask, "mask") and not isinstance(mask, (Image.Image, np.ndarray)):
        mask = mask.mask
    if isinstance(mask, np.ndarray):
        pil = _array_to_pil(mask, "mask")
    elif isinstance(mask, (str, os.PathLike)):
        pil = _to_8bit(open_file(mask, "mask"), "mask")
    elif isinstance(mask, Image.Image):
        pil = _to_8bit(mask, "mask")
    else:
        raise TypeError(f"mask must be a PIL image, a numpy array, a path or have a .mask attribute, "
                        f"not {type(mask).__name__}")
    if pil.mode in ("RGBA", "LA"):
        rgb = np.asarray(pil.convert("RGB"))
        pil = pil.getchannel("A") if rgb.min() == rgb.max() else pil.convert("L")
    else:
        pil = pil.convert("L")
    if size is not None and pil.size != tuple(size):
        if not resize:
            raise ValueError(f"mask is {pil.width}x{pil.height} but image is {size[0]}x{size[1]}; "
                             "pass a mask of the same size or resize=True")
        pil = pil.resize(size, Image.NEAREST)
    return pil


def default_mask_blur(size: tuple[int, int]) -> float:
    """`ig.inpaint`'s soft edge when none is asked for: 1/128 of the picture's smaller side, rounded (0 pixels at
    64x64, 4 at 512x512)."""
    return float(max(0, round(min(size) / 128)))


def mask_blur_of(mask) -> float | None:
    """The soft edge a mask's carrier asks for (`ig.MaskCanvas`'s `mask_blur` slider), or None for a plain mask."""
    blur = getattr(mask, "mask_blur", None)
    if isinstance(mask, (Image.Image, np.ndarray)) or blur is None:
        return None
    return float(getattr(blur, "value", blur))


def feather(mask: Image.Image, radius: float) -> Image.Image:
    """The mask with a soft edge of `radius` pixels (Gaussian blur); pixels far outside stay exactly 0."""
    return mask.filter(ImageFilter.GaussianBlur(radius)) if radius > 0 else mask


def paste_back(original: Image.Image, generated: Image.Image, mask: Image.Image) -> Image.Image:
    """`generated` inside the mask, `original` outside it, blended by the mask's grey levels."""
    return Image.composite(generated, original, mask)


def check_size(width: int, height: int, factor: int, family: str) -> None:
    for label, value in (("width", width), ("height", height)):
        if not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"{label} must be a positive integer, not {value!r}")
    if width % factor or height % factor:
        raise ValueError(f"width and height have to be multiples of {factor} for {family} models but are "
                         f"{width} and {height}; try {_round(width, factor)}x{_round(height, factor)}")


def _round(v: int, factor: int) -> int:
    return max(factor, int(round(v / factor)) * factor)


def fit_size(image: Image.Image, factor: int) -> tuple[int, int]:
    """The largest size at most the image's whose sides are multiples of `factor`."""
    return max(factor, image.width // factor * factor), max(factor, image.height // factor * factor)
