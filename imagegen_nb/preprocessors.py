"""Control maps: turn a picture into the conditioning image a ControlNet of that kind expects."""

from __future__ import annotations

import numpy as np
from PIL import Image


def canny(image, low_threshold: int = 100, high_threshold: int = 200) -> Image.Image:
    """Canny edges of `image` as a white-on-black RGB picture of the same size (OpenCV)."""
    try:
        import cv2
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("canny edges need OpenCV: pip install 'imagegen-nb[control]' "
                          "(or opencv-python-headless)") from err
    arr = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)
    gray = cv2.cvtColor(np.ascontiguousarray(arr, dtype=np.uint8), cv2.COLOR_RGB2GRAY)
    edges = cv2.Canny(gray, low_threshold, high_threshold)
    return Image.fromarray(np.stack([edges] * 3, axis=-1))


KINDS = ("canny", "depth", "pose", "none")


def preprocess(image, kind: str = "canny") -> Image.Image:
    """The control map `ig.control` would make from `image` for a ControlNet of `kind`.

    "canny" uses OpenCV; "depth" and "pose" use transformers' depth-estimation pipeline and controlnet-aux's
    OpenPose detector, whose models come from the Hub (so they fail with a clear message offline);
    "none" returns the picture itself.

    >>> import imagegen_nb as ig
    >>> from PIL import Image, ImageDraw
    >>> im = Image.new("RGB", (64, 64), "white"); ImageDraw.Draw(im).rectangle([20, 20, 44, 44], fill="red")
    >>> edges = ig.preprocess(im, "canny")
    >>> edges.size, edges.getpixel((0, 0)), edges.getpixel((30, 19))
    ((64, 64), (0, 0, 0), (255, 255, 255))
    """
    from .arguments import choice
    from .inputs import to_image

    choice("kind", kind, KINDS, what="control kind")
    image = to_image(image, "control_image")
    if kind == "none":
        return image
    if kind == "canny":
        return canny(image)
    if kind == "depth":
        return _depth(image)
    return _pose(image)


def _depth(image: Image.Image) -> Image.Image:
    from .errors import ModelNotFoundError

    try:
        from transformers import pipeline

        estimator = pipeline("depth-estimation", model="Intel/dpt-hybrid-midas")
    except Exception as err:
        raise ModelNotFoundError(
            "the depth preprocessor needs the Intel/dpt-hybrid-midas model from the Hugging Face Hub, which could "
            f"not be loaded ({type(err).__name__}); connect to the Hub, or make the depth map yourself and pass "
            "it with preprocess=False") from None
    return estimator(image)["depth"].convert("RGB")


def _pose(image: Image.Image) -> Image.Image:
    from .errors import ModelNotFoundError

    try:
        from controlnet_aux import OpenposeDetector

        detector = OpenposeDetector.from_pretrained("lllyasviel/Annotators")
    except Exception as err:
        raise ModelNotFoundError(
            "the pose preprocessor needs controlnet-aux (pip install controlnet-aux) and the lllyasviel/Annotators "
            f"weights from the Hugging Face Hub, which could not be loaded ({type(err).__name__}); make the pose "
            "map yourself and pass it with preprocess=False") from None
    return detector(image).convert("RGB").resize(image.size)
