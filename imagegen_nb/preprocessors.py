"""Control maps: turn a picture into the conditioning image a ControlNet of that kind expects.

Kinds and what each needs (all maps are RGB pictures of the input's size):

| kind | map | needs |
|---|---|---|
| "canny" | thin white Canny edges on black | OpenCV |
| "scribble" | thick white strokes on black (Canny edges of the blurred picture, dilated) | OpenCV |
| "lineart" | white lines on black where the picture has dark lines or dark sides of edges | OpenCV |
| "softedge" | soft edge strength, 0..255 (smoothed Sobel gradient magnitude, like HED/PiDiNet output) | OpenCV |
| "depth" | relative depth, near = bright, 0..255 | transformers and a depth-estimation model |
| "pose" | OpenPose body skeletons on black | controlnet-aux (the `pose` extra) and OpenPose body weights |
| "segmentation" | each shape in its kind's flat colour on black (`world.SEGMENT_COLORS`) | a shapes-world picture |
| "none" | the picture itself | nothing |

The depth and pose estimators are models: each is loaded once per (weights, device) and kept until `clear`.
Which weights they use is set with `set_estimator(kind, source)` (a Hub id or a local folder), read with
`estimator(kind)`; `ig.preprocess(image, kind, estimator=...)` overrides it for one call.
"""

from __future__ import annotations

import os
import threading

import numpy as np
from PIL import Image

__all__ = ["DEFAULT_ESTIMATORS", "KINDS", "canny", "clear", "depth", "estimator", "lineart", "pose", "preprocess",
           "scribble", "segmentation", "set_estimator", "softedge"]

KINDS = ("canny", "scribble", "lineart", "softedge", "depth", "pose", "segmentation", "none")

# The weights the model-based kinds load unless `set_estimator` names others
DEFAULT_ESTIMATORS = {
    "depth": "Intel/dpt-hybrid-midas",  # MiDaS v3 DPT-Hybrid: relative inverse depth (near = large)
    "pose": "lllyasviel/Annotators",  # holds body_pose_model.pth, the OpenPose body model ControlNet used
}
POSE_WEIGHTS = "body_pose_model.pth"  # the file a pose folder or Hub repo must hold

_estimators: dict[str, str] = dict(DEFAULT_ESTIMATORS)  # kind -> the Hub id or folder in use
_loaded: dict[tuple[str, str, str], object] = {}  # (kind, source, device) -> the loaded estimator
_lock = threading.RLock()
loads = 0  # how many estimators were loaded (a warm call loads none)


# -- choosing and keeping the estimators ----------------------------------------------------------------------
def _check_source(kind: str, source) -> str:
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if not isinstance(source, str) or not source:
        raise TypeError(f"the {kind} estimator must be a Hub id or a local folder (a string), not "
                        f"{type(source).__name__} {source!r}")
    return source


def set_estimator(kind: str, source: str | os.PathLike | None = None) -> None:
    """Use `source` (a Hub id or a local folder) as the model behind `kind` ("depth" or "pose"); None restores the
    default (`DEFAULT_ESTIMATORS`). `ig.control` and `ig.preprocess` use it from the next call on.

    A depth source is anything transformers' depth-estimation pipeline loads (DPT/MiDaS, Depth Anything, ...: a
    model that predicts relative inverse depth, so near is bright). A pose source is a folder or Hub repo holding
    OpenPose's body_pose_model.pth.

    >>> from imagegen_nb import preprocessors
    >>> preprocessors.set_estimator("depth", "depth-anything/Depth-Anything-V2-Small-hf")
    >>> preprocessors.estimator("depth")
    'depth-anything/Depth-Anything-V2-Small-hf'
    >>> preprocessors.set_estimator("depth")  # back to the default
    >>> preprocessors.estimator("depth")
    'Intel/dpt-hybrid-midas'
    """
    from .arguments import choice

    choice("kind", kind, tuple(DEFAULT_ESTIMATORS), what="estimator kind")
    value = DEFAULT_ESTIMATORS[kind] if source is None else _check_source(kind, source)
    with _lock:
        _estimators[kind] = value


def estimator(kind: str) -> str:
    """The Hub id or folder the `kind` ("depth" or "pose") preprocessor loads its model from."""
    from .arguments import choice

    choice("kind", kind, tuple(DEFAULT_ESTIMATORS), what="estimator kind")
    return _estimators[kind]


def clear() -> None:
    """Unload the depth and pose estimators (they load again on their next use)."""
    with _lock:
        _loaded.clear()
    from .cache import free_memory

    free_memory()


def _device() -> str:
    from . import devices

    return devices.current().device


def _get(kind: str, source: str, load):
    """The estimator for (kind, source) on the current device, loaded by `load(source, device)` the first time."""
    global loads
    device = _device()
    key = (kind, source, device)
    with _lock:
        if key not in _loaded:
            _loaded[key] = load(source, device)
            loads += 1
        return _loaded[key]


# -- model-free kinds (OpenCV) --------------------------------------------------------------------------------
def _cv2():
    try:
        import cv2
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("this control map needs OpenCV: pip install 'imagegen-nb[control]' "
                          "(or opencv-python-headless)") from err
    return cv2


def _rgb_array(image) -> np.ndarray:
    arr = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)
    return np.ascontiguousarray(arr, dtype=np.uint8)


def _gray(image) -> np.ndarray:
    return _cv2().cvtColor(_rgb_array(image), _cv2().COLOR_RGB2GRAY)


def _to_rgb(channel: np.ndarray) -> Image.Image:
    return Image.fromarray(np.stack([channel.astype(np.uint8)] * 3, axis=-1))


def canny(image, low_threshold: int = 100, high_threshold: int = 200) -> Image.Image:
    """Canny edges of `image` as a white-on-black RGB picture of the same size (OpenCV)."""
    edges = _cv2().Canny(_gray(image), low_threshold, high_threshold)
    return _to_rgb(edges)


def scribble(image, thickness: int | None = None) -> Image.Image:
    """Thick white strokes on black, as scribble ControlNets expect: the Canny edges of the picture blurred (so
    texture gives no strokes), dilated to `thickness` pixels (default: 1/64 of the shorter side, at least 3)."""
    cv2 = _cv2()
    gray = _gray(image)
    if thickness is None:
        thickness = max(3, min(gray.shape) // 64)
    if not isinstance(thickness, int) or isinstance(thickness, bool) or thickness < 1:
        raise ValueError(f"thickness must be a whole number of pixels >= 1, not {thickness!r}")
    thickness |= 1  # an odd kernel keeps the strokes centred on the edges
    edges = cv2.Canny(cv2.GaussianBlur(gray, (5, 5), 0), 50, 150)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (thickness, thickness))
    return _to_rgb(cv2.dilate(edges, kernel))


def lineart(image, sigma: float | None = None) -> Image.Image:
    """White lines on black (what lllyasviel/control_v11p_sd15_lineart takes), without a model: how much darker
    each grey pixel is than its Gaussian-blurred surroundings (the "lineart standard" method, on brightness), so
    dark strokes of a drawing and the dark side of each edge become lines, scaled so a typical line is about 127.
    `sigma` (default: 6 px per 512 px of the shorter side, at least 1) sets how wide a stroke still counts as a
    line."""
    cv2 = _cv2()
    gray = _gray(image).astype(np.float32)
    if sigma is None:
        sigma = max(1.0, 6.0 * min(gray.shape) / 512)
    if not isinstance(sigma, (int, float)) or isinstance(sigma, bool) or not sigma > 0:
        raise ValueError(f"sigma must be a positive number of pixels, not {sigma!r}")
    blurred = cv2.GaussianBlur(gray, (0, 0), float(sigma))
    darker = (blurred - gray).clip(0, 255)  # > 0 where a pixel is darker than its surroundings
    strong = darker[darker > 8]
    scale = max(16.0, float(np.median(strong))) if strong.size else 16.0
    return _to_rgb((darker / scale * 127).clip(0, 255))


def softedge(image, sigma: float | None = None) -> Image.Image:
    """A soft edge-strength map, 0..255, white on black, like HED or PiDiNet output (what softedge ControlNets
    take): the Sobel gradient magnitude of the lightly blurred grey picture, smoothed with a Gaussian of `sigma`
    pixels (default: 1 per 128 px of the shorter side, at least 1) and scaled so the strongest edge is 255."""
    cv2 = _cv2()
    gray = _gray(image).astype(np.float32)
    if sigma is None:
        sigma = max(1.0, min(gray.shape) / 128)
    if not isinstance(sigma, (int, float)) or isinstance(sigma, bool) or not sigma > 0:
        raise ValueError(f"sigma must be a positive number of pixels, not {sigma!r}")
    gray = cv2.GaussianBlur(gray, (0, 0), 1.0)
    magnitude = np.hypot(cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3))
    magnitude = cv2.GaussianBlur(magnitude, (0, 0), float(sigma))
    top = float(magnitude.max())
    return _to_rgb(np.zeros_like(magnitude) if top < 1e-6 else np.round(magnitude / top * 255))


# -- model-based kinds ----------------------------------------------------------------------------------------
def _load_depth(source: str, device: str):
    import transformers

    from .cache import quiet_diffusers

    with quiet_diffusers():  # no loading bars or authors' warnings in a notebook
        return transformers.pipeline("depth-estimation", model=source, device=device)


def depth(image, estimator: str | os.PathLike | None = None) -> Image.Image:
    """Relative depth of `image` as an RGB picture of its size, near = bright, min-max scaled to 0..255 (all black
    for a flat prediction), as depth ControlNets expect. `estimator` (default: `estimator("depth")`) is a Hub id or
    folder that transformers' depth-estimation pipeline loads; it must predict relative inverse depth (DPT/MiDaS,
    Depth Anything), not metric distance, whose far would be bright."""
    from .errors import ModelNotFoundError
    from .inputs import to_image

    image = to_image(image, "image")
    source = _estimators["depth"] if estimator is None else _check_source("depth", estimator)
    try:
        pipe = _get("depth", source, _load_depth)
    except Exception as err:
        where = f"the folder {source}" if os.path.isdir(source) else f"the {source} model from the Hugging Face Hub"
        raise ModelNotFoundError(
            f"the depth preprocessor needs {where}, which could not be loaded ({type(err).__name__}); "
            "connect to the Hub, choose another estimator with ig.preprocessors.set_estimator('depth', "
            "'hub-id-or-folder'), or make the depth map yourself and pass it with preprocess=False") from None
    import torch

    with torch.no_grad():
        predicted = pipe(image)["predicted_depth"]
    d = predicted.detach().float().cpu().numpy().squeeze()
    span = float(d.max() - d.min())
    scaled = np.zeros_like(d) if span < 1e-12 else (d - d.min()) / span * 255
    out = _to_rgb(np.round(scaled))
    return out if out.size == image.size else out.resize(image.size, Image.BILINEAR)


def _load_pose(source: str, device: str):
    try:
        from controlnet_aux import OpenposeDetector
        from controlnet_aux.open_pose import Body
    except ImportError as err:
        raise ImportError(f"the pose preprocessor needs controlnet-aux, which could not be imported ({err}): "
                          "pip install 'imagegen-nb[pose]' (with your torch pinned: controlnet-aux needs the "
                          "torchvision built for it)") from err
    if os.path.isdir(source):
        weights = os.path.join(source, POSE_WEIGHTS)
        if not os.path.isfile(weights):
            raise FileNotFoundError(f"the pose folder {source} has no {POSE_WEIGHTS}")
    else:
        from huggingface_hub import hf_hub_download

        weights = hf_hub_download(source, POSE_WEIGHTS)
    body = Body(weights)  # torch.load with weights_only: a state dict, no pickled code
    body.to(device)
    return OpenposeDetector(body)


def pose(image, estimator: str | os.PathLike | None = None) -> Image.Image:
    """OpenPose body skeletons found in `image`, drawn on black as an RGB picture of its size (what openpose
    ControlNets take; hands and face are not drawn). `estimator` (default: `estimator("pose")`) is a Hub id or
    folder holding body_pose_model.pth. Needs controlnet-aux (`pip install 'imagegen-nb[pose]'`)."""
    from .errors import ModelNotFoundError
    from .inputs import to_image

    image = to_image(image, "image")
    source = _estimators["pose"] if estimator is None else _check_source("pose", estimator)
    try:
        detector = _get("pose", source, _load_pose)
    except ImportError:
        raise
    except Exception as err:
        where = f"the folder {source}" if os.path.isdir(source) else f"the {source} weights from the Hugging Face Hub"
        raise ModelNotFoundError(
            f"the pose preprocessor needs {POSE_WEIGHTS} from {where}, which could not be loaded "
            f"({type(err).__name__}); connect to the Hub, choose another folder with "
            "ig.preprocessors.set_estimator('pose', 'hub-id-or-folder'), or make the pose map yourself and pass it "
            "with preprocess=False") from None
    return detector(image).convert("RGB").resize(image.size, Image.BILINEAR)


def segmentation(image) -> Image.Image:
    """The shapes world's segmentation map of `image`, a picture of that world: each shape the world's checker
    finds, in its kind's flat colour on black. Other pictures are refused (a photograph's segments need a
    segmentation model; pass such a map with `preprocess=False`)."""
    from .tiny.checker import segmentation_map

    return segmentation_map(image)


def preprocess(image, kind: str = "canny", *, estimator: str | os.PathLike | None = None) -> Image.Image:
    """The control map `ig.control` would make from `image` for a ControlNet of `kind` (one of `KINDS`).

    "canny", "scribble", "lineart" and "softedge" use OpenCV alone and run offline; "depth" uses transformers'
    depth-estimation pipeline and "pose" controlnet-aux's OpenPose body model, whose weights come from the Hub or a
    local folder: `estimator=` names them for this call, `ig.preprocessors.set_estimator(kind, source)` for every
    call (`ig.control` included). Each estimator loads once and is kept. "segmentation" reads a picture of the
    shapes world with its checker. "none" returns the picture itself.

    >>> import imagegen_nb as ig
    >>> from PIL import Image, ImageDraw
    >>> im = Image.new("RGB", (64, 64), "white"); ImageDraw.Draw(im).rectangle([20, 20, 44, 44], fill="red")
    >>> edges = ig.preprocess(im, "canny")
    >>> edges.size, edges.getpixel((0, 0)), edges.getpixel((30, 19))
    ((64, 64), (0, 0, 0), (255, 255, 255))
    >>> strokes = ig.preprocess(im, "scribble")
    >>> strokes.getpixel((30, 20)), strokes.getpixel((32, 32))
    ((255, 255, 255), (0, 0, 0))
    """
    from .arguments import choice
    from .inputs import to_image

    choice("kind", kind, KINDS, what="control kind")
    if estimator is not None and kind not in DEFAULT_ESTIMATORS:
        raise ValueError(f"estimator= is only for kind='depth' or 'pose', not kind={kind!r}")
    image = to_image(image, "control_image")
    if kind == "none":
        return image
    if kind == "depth":
        return depth(image, estimator)
    if kind == "pose":
        return pose(image, estimator)
    return {"canny": canny, "scribble": scribble, "lineart": lineart, "softedge": softedge,
            "segmentation": segmentation}[kind](image)
