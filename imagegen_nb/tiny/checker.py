"""Read a picture of the shapes world back into shapes: colour segmentation, connected components, overlap with each
ideal shape, centroids for position. It grades generated pictures against their prompts, as GenEval does for real
models with an object detector.

>>> from imagegen_nb.tiny import world, checker
>>> scene = world.sample_scene(seed=3, category="colors")
>>> found = checker.detect(world.render(scene))
>>> [(d.color, d.shape) for d in found] == [(s.color, s.shape) for s in scene.shapes]
True
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from PIL import Image

from . import world

MIN_AREA = 25  # pixels: smaller blobs are edge blends or noise, not shapes (the smallest shape covers about 60)
# A blob is only a circle, square or triangle if it overlaps that ideal shape this well (intersection over union).
# Ground-truth renders score at least 0.94 and the built-in VAE's round trips at least 0.83; two shapes run
# together, a smear or a half-drawn shape score lower, and are "unknown", as a detector would not name them.
MIN_IOU = 0.75
_PALETTE_NAMES = list(world.COLORS)
_PALETTE = np.array([world.COLORS[c] for c in _PALETTE_NAMES], dtype=np.float32)
_BG_NAMES = list(world.BACKGROUNDS)
_BG = np.array([world.BACKGROUNDS[c] for c in _BG_NAMES], dtype=np.float32)


@dataclass(frozen=True)
class Detection:
    """A shape found in a picture."""

    color: str
    shape: str
    x: float  # centroid, pixels
    y: float
    area: int


def _components(mask: np.ndarray) -> list[np.ndarray]:
    """4-connected components of a boolean mask, as arrays of (row, col) indices."""
    seen = np.zeros_like(mask, dtype=bool)
    out = []
    h, w = mask.shape
    for r0, c0 in zip(*np.nonzero(mask)):
        if seen[r0, c0]:
            continue
        stack, pixels = [(r0, c0)], []
        seen[r0, c0] = True
        while stack:
            r, c = stack.pop()
            pixels.append((r, c))
            for rr, cc in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
                if 0 <= rr < h and 0 <= cc < w and mask[rr, cc] and not seen[rr, cc]:
                    seen[rr, cc] = True
                    stack.append((rr, cc))
        out.append(np.array(pixels))
    return out


def _templates(y: np.ndarray, x: np.ndarray, area: int, cy: float, cx: float) -> dict[str, np.ndarray]:
    """The world's three shapes drawn with a blob's area and centroid, as boolean masks over the grid `y, x`."""
    r = np.sqrt(area / np.pi)
    h = np.sqrt(area) / 2
    # The world's triangle points up: apex (0, -t), base corners (+-t, 0.8t); area 1.8 t^2, centroid 0.2t below
    # its centre. Inside = below both slanted sides and above the base.
    t = np.sqrt(area / 1.8)
    ty, tx = y - (cy - 0.2 * t), np.abs(x - cx)
    # The star (world.NEW_SHAPES): ten triangles of sides R and inner*R at 36 degrees, area 5 inner R^2 sin 36.
    outer = np.sqrt(area / (5 * world.STAR_INNER * np.sin(np.pi / 5)))
    return {
        "circle": (x - cx) ** 2 + (y - cy) ** 2 <= r**2,
        "square": (np.abs(x - cx) <= h) & (np.abs(y - cy) <= h),
        "triangle": (ty <= 0.8 * t) & (tx <= (ty + t) / 1.8),
        "star": _inside(world.star_polygon(cx, cy, outer), y, x),
    }


def _inside(polygon: list[tuple[float, float]], y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Which grid points lie inside a polygon of (x, y) corners (even-odd rule, one edge at a time)."""
    inside = np.zeros(x.shape, dtype=bool)
    for (x1, y1), (x2, y2) in zip(polygon, polygon[1:] + polygon[:1]):
        crosses = (y1 > y) != (y2 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            at = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
        inside ^= crosses & (x < at)
    return inside


def _shape_of(pixels: np.ndarray) -> str:
    """Circle, square, triangle or star: the world's shape that, drawn with the blob's area and centroid, overlaps the
    blob best (intersection over union); "unknown" if even the best overlaps less than MIN_IOU. Uses every pixel,
    so a softened corner or a one-pixel halo along an edge does not flip the answer the way a bounding-box measure
    would."""
    rows, cols = pixels[:, 0], pixels[:, 1]
    pad = int(np.sqrt(len(pixels))) + 2  # room for a template that reaches past the blob
    top, left = rows.min() - pad, cols.min() - pad
    y, x = np.mgrid[top: rows.max() + pad + 1, left: cols.max() + pad + 1].astype(np.float32)
    blob = np.zeros(y.shape, dtype=bool)
    blob[rows - top, cols - left] = True
    templates = _templates(y, x, len(pixels), float(rows.mean()), float(cols.mean()))
    iou = {name: (blob & m).sum() / (blob | m).sum() for name, m in templates.items()}
    best = max(iou, key=iou.get)
    return best if iou[best] >= MIN_IOU else "unknown"


def background(image: Image.Image) -> str:
    """The named background colour nearest to the median of the picture's border."""
    arr = np.asarray(image.convert("RGB"), dtype=np.float32)
    border = np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]])
    med = np.median(border, axis=0)
    return _BG_NAMES[int(np.argmin(((_BG - med) ** 2).sum(1)))]


def look(image: Image.Image) -> tuple[str, str | None]:
    """A picture's look, as a style reference carries it: its background, and the colour covering most of its
    shapes (None when it shows none).

    >>> from imagegen_nb.tiny import world
    >>> look(world.render(world.sample_scene(seed=1, category="colors")))
    ('white', 'orange')
    """
    areas: dict[str, int] = {}
    for d in detect(image):
        areas[d.color] = areas.get(d.color, 0) + d.area
    return background(image), (max(areas, key=areas.get) if areas else None)


def _labels(image: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """Each pixel's nearest colour among the palette and the backgrounds (an index into palette + backgrounds),
    and its distance to it, at the world's size."""
    arr = np.asarray(image.convert("RGB").resize((world.SIZE, world.SIZE), Image.NEAREST), dtype=np.float32)
    colors = np.concatenate([_PALETTE, _BG])
    dist = ((arr[:, :, None, :] - colors[None, None]) ** 2).sum(-1)
    return dist.argmin(-1), np.sqrt(dist.min(-1))


def _blobs(label: np.ndarray):
    """(colour name, pixels) of every blob of one palette colour large enough to be a shape."""
    for i, name in enumerate(_PALETTE_NAMES):
        for pixels in _components(label == i):
            if len(pixels) >= MIN_AREA:
                yield name, pixels


def detect(image: Image.Image) -> list[Detection]:
    """Every shape in the picture, left to right (by centroid).

    Each pixel is named by its nearest colour among the palette and the background; pixels of one palette colour
    that touch form a shape.
    """
    label, _ = _labels(image)
    found = [Detection(name, _shape_of(pixels), float(pixels[:, 1].mean()), float(pixels[:, 0].mean()),
                       len(pixels)) for name, pixels in _blobs(label)]
    return sorted(found, key=lambda d: d.x)


FLAT_DISTANCE = 60.0  # RGB distance within which a pixel counts as one of the world's colours
MIN_FLAT_SHARE = 0.9  # a picture of the world has at least this share of such pixels (anti-aliased edges aside)


def segmentation_map(image: Image.Image) -> Image.Image:
    """The segmentation map of a picture of the shapes world (`world.segmentation` of the scene it shows): each
    shape the checker finds, in its kind's flat colour on black (shapes it cannot name are left out). A picture
    that is not of the world's flat colours (a photograph) is an error: its segments would mean nothing.

    >>> scene = world.sample_scene(seed=3, category="two_object")
    >>> import numpy as np
    >>> bool((np.asarray(segmentation_map(world.render(scene))) == np.asarray(world.segmentation(scene))).mean() > 0.97)
    True
    """
    label, distance = _labels(image)
    flat = float((distance <= FLAT_DISTANCE).mean())
    if flat < MIN_FLAT_SHARE:
        raise ValueError(f"this picture is not of the shapes world's flat colours (only {flat:.0%} of its pixels are "
                         "near one), so the world's segmentation cannot read it; pass a segmentation map you made "
                         "with preprocess=False (world.SEGMENT_COLORS: one flat colour per kind of shape, on black)")
    out = np.zeros((world.SIZE, world.SIZE, 3), dtype=np.uint8)
    for _, pixels in _blobs(label):
        kind = _shape_of(pixels)
        if kind in world.SEGMENT_COLORS:
            out[pixels[:, 0], pixels[:, 1]] = world.SEGMENT_COLORS[kind]
    result = Image.fromarray(out)
    return result if image.size == result.size else result.resize(image.size, Image.NEAREST)


# --- Grading a picture against a prompt of the world's grammar --------------------------------------------------

_NUM = {v: k for k, v in world.NUMBERS.items()}
_COLOR = "|".join(world.COLORS)
_SHAPE = "|".join(world.SHAPES + world.NEW_SHAPES)
_OBJ = rf"an? (?:(?:small|large) )?(?:({_COLOR}) )?({_SHAPE})"


@dataclass(frozen=True)
class Spec:
    """What a prompt asks for: objects as (colour or None, shape), a count, and a relation between two objects."""

    objects: tuple[tuple[str | None, str], ...]
    count: int | None = None
    relation: str | None = None


def parse(prompt: str) -> Spec:
    """The requirements of a prompt written in the world's grammar (see `world.caption`)."""
    text = re.sub(r" on an? \w+ background$", "", prompt.strip().lower())
    if m := re.fullmatch(rf"(two|three|four) (?:({_COLOR}) )?({_SHAPE})s", text):
        return Spec(((m[2], m[3]),), count=_NUM[m[1]])
    if m := re.fullmatch(rf"{_OBJ} (to the left of|to the right of|above|below) {_OBJ}", text):
        return Spec(((m[1], m[2]), (m[4], m[5])), relation=m[3].removeprefix("to the "))
    if m := re.fullmatch(rf"{_OBJ} and {_OBJ}", text):
        return Spec(((m[1], m[2]), (m[3], m[4])))
    if m := re.fullmatch(_OBJ, text):
        return Spec(((m[1], m[2]),))
    raise ValueError(f"prompt {prompt!r} is not in the shapes world's grammar")


def _matches(d: Detection, want: tuple[str | None, str]) -> bool:
    return d.shape == want[1] and (want[0] is None or d.color == want[0])


def grade(image: Image.Image, prompt: str) -> bool:
    """Whether the picture shows what the prompt asks for, by GenEval's rules for its category.

    Counting needs exactly that many matching shapes; the other categories need each named object present
    (and, for a relation, the first object's centroid on the named side of the second's).
    """
    spec = parse(prompt)
    found = detect(image)
    if spec.count is not None:
        return sum(_matches(d, spec.objects[0]) for d in found) == spec.count
    hits = [[d for d in found if _matches(d, want)] for want in spec.objects]
    if not all(hits):
        return False
    if spec.relation is None:
        # Two objects of the same description need two distinct shapes.
        return len(spec.objects) == 1 or spec.objects[0] != spec.objects[1] or len(hits[0]) >= 2
    a, b = max(hits[0], key=lambda d: d.area), max(hits[1], key=lambda d: d.area)
    dx, dy = a.x - b.x, a.y - b.y
    return {"left of": dx < 0, "right of": dx > 0, "above": dy < 0, "below": dy > 0}[spec.relation]


def same_layout(image: Image.Image, scene: world.Scene, caption: str, tolerance: float = 4.0) -> bool:
    """Whether a picture made from a control map of `scene` puts the scene's shapes where the map says: as many
    shapes, and each of the scene's with a found one of its kind within `tolerance` pixels of its centre, and of
    its colour where `caption` names colours (a map carries no colour, so a caption that leaves it open, "two
    circles", lets the model choose it).

    >>> from imagegen_nb.tiny import world
    >>> scene = world.sample_scene(seed=2, category="counting")
    >>> same_layout(world.render(scene), scene, world.caption(scene))
    True
    """
    named = any(colour is not None for colour, _ in parse(caption).objects)
    found, truth = detect(image), detect(world.render(scene))
    return len(found) == len(truth) and all(
        any(d.shape == t.shape and (d.color == t.color or not named) and abs(d.x - t.x) <= tolerance
            and abs(d.y - t.y) <= tolerance for d in found) for t in truth)
