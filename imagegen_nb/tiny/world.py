"""The shapes world: a seeded generator of 64x64 pictures of flat shapes and the captions that describe them.

Every caption comes from a small grammar that covers the categories of the GenEval benchmark (single object,
colors, counting, two objects, position, attribute binding), so what the built-in model gets right or wrong here
carries over to the way real text-to-image models are measured.

>>> from imagegen_nb.tiny import world
>>> scene = world.sample_scene(seed=0)
>>> image = world.render(scene)
>>> image.size
(64, 64)
>>> isinstance(world.caption(scene, seed=0), str)
True
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

SIZE = 64  # pixels per side of every picture in the world

# Saturated, far-apart colours, so a checker can name each pixel by its nearest palette entry.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "orange": (245, 140, 20),
    "yellow": (240, 225, 30),
    "green": (30, 170, 50),
    "cyan": (30, 200, 220),
    "blue": (30, 60, 220),
    "purple": (140, 40, 190),
    "pink": (245, 130, 200),
}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": (245, 245, 245),
    "gray": (128, 128, 128),
    "black": (15, 15, 15),
}
SHAPES = ("circle", "square", "triangle")
# Shapes the world can draw that no caption of the grammar names, so the built-in model never saw them: material for
# teaching it a new word with a LoRA (`imagegen_nb.tiny.stars`). Not in `vocabulary()`: its tokenizer reads them as
# <unk>.
NEW_SHAPES = ("star",)
STAR_INNER = 0.5  # a star's inner radius as a share of its outer one: chunky points, which 16x16 latents can hold
SIZES = {"small": 7, "large": 12}  # radius of the shape's bounding circle, in pixels
RELATIONS = ("left of", "right of", "above", "below")
NUMBERS = {2: "two", 3: "three", 4: "four"}

# Colour x shape pairs that never appear in training, so evaluation can show what the model makes of them.
HELD_OUT: frozenset[tuple[str, str]] = frozenset({("purple", "triangle"), ("orange", "circle"), ("cyan", "square")})

CATEGORIES = ("single_object", "colors", "counting", "two_object", "position", "color_attr")


@dataclass(frozen=True)
class Shape:
    """One shape of a scene: what it is, its colour, and where (centre and bounding radius, in pixels)."""

    shape: str
    color: str
    x: float
    y: float
    r: float

    @property
    def size(self) -> str:
        return "large" if self.r >= (SIZES["small"] + SIZES["large"]) / 2 else "small"


@dataclass(frozen=True)
class Scene:
    """A picture's content: a background colour, its shapes, and the category of caption it was drawn for."""

    background: str
    shapes: tuple[Shape, ...]
    category: str = "single_object"
    relation: str | None = None  # for "position": how shapes[0] relates to shapes[1]
    extra: dict = field(default_factory=dict, compare=False)


def vocabulary() -> list[str]:
    """Every word the grammar can write, in a fixed order (the tokenizer's vocabulary)."""
    words = ["a", "an", "and", "on", "background", "the", "of", "to", "left", "right", "above", "below", "with"]
    words += list(COLORS) + [b for b in BACKGROUNDS if b not in COLORS] + list(SIZES)
    words += list(SHAPES) + [plural(s) for s in SHAPES] + list(NUMBERS.values())
    seen: set[str] = set()
    return [w for w in words if not (w in seen or seen.add(w))]


def plural(shape: str) -> str:
    return shape + "s"


def allowed(color: str, shape: str, *, training: bool) -> bool:
    return not (training and (color, shape) in HELD_OUT)


def place_apart(rng: random.Random, radii: list[float]) -> list[tuple[float, float]]:
    """Centres for shapes of the given radii, inside the frame and apart from each other."""
    for _ in range(100):  # greedy placement can paint itself into a corner: start over
        out: list[tuple[float, float]] = []
        for r in radii:
            for _ in range(50):
                x, y = rng.uniform(r + 2, SIZE - r - 2), rng.uniform(r + 2, SIZE - r - 2)
                if all(math.hypot(x - px, y - py) > 1.2 * (r + pr) + 3 for (px, py), pr in zip(out, radii)):
                    out.append((x, y))
                    break
            else:
                break
        if len(out) == len(radii):
            return out
    raise RuntimeError(f"could not place {len(radii)} shapes without overlap")


def _color_shape(rng: random.Random, training: bool) -> tuple[str, str]:
    while True:
        c, s = rng.choice(list(COLORS)), rng.choice(SHAPES)
        if allowed(c, s, training=training):
            return c, s


def random_radius(rng: random.Random, size: str | None = None) -> float:
    size = size or rng.choice(list(SIZES))
    return SIZES[size] + rng.uniform(-1.0, 1.0)


def _relation_scene(rng: random.Random, background: str, relation: str, training: bool) -> Scene:
    (c1, s1), (c2, s2) = _color_shape(rng, training), _color_shape(rng, training)
    while (c2, s2) == (c1, s1):
        c2, s2 = _color_shape(rng, training)
    r1, r2 = random_radius(rng), random_radius(rng)
    # Place along the relation's axis first: the first shape clearly on the named side, then across it.
    lo, hi = (r1, r2) if relation in ("left of", "above") else (r2, r1)
    gap = rng.uniform(lo + hi + 4, SIZE - 4 - lo - hi)
    a_lo = rng.uniform(lo + 2, SIZE - hi - 2 - gap)
    a1, a2 = (a_lo, a_lo + gap) if relation in ("left of", "above") else (a_lo + gap, a_lo)
    m = max(r1, r2) + 2
    b1 = rng.uniform(m, SIZE - m)
    b2 = min(max(b1 + rng.uniform(-0.6, 0.6) * gap, m), SIZE - m)
    if relation in ("left of", "right of"):
        x1, y1, x2, y2 = a1, b1, a2, b2
    else:
        x1, y1, x2, y2 = b1, a1, b2, a2
    return Scene(background, (Shape(s1, c1, x1, y1, r1), Shape(s2, c2, x2, y2, r2)), "position", relation)


CATEGORY_WEIGHTS = (10, 15, 20, 10, 30, 15)  # how often each of CATEGORIES is drawn when none is named


def sample_scene(seed: int | None = None, *, category: str | None = None, training: bool = True,
                 rng: random.Random | None = None, weights: Sequence[float] = CATEGORY_WEIGHTS) -> Scene:
    """A random scene of the given GenEval category (drawn with `weights`, one per CATEGORIES, if None).

    With `training=True` the held-out colour x shape pairs never appear.
    """
    rng = rng or random.Random(seed)
    if len(weights) != len(CATEGORIES):
        raise ValueError(f"weights has {len(weights)} entries; pass one per category: {', '.join(CATEGORIES)}")
    category = category or rng.choices(CATEGORIES, weights=weights)[0]
    background = rng.choice(list(BACKGROUNDS))
    if category in ("single_object", "colors"):
        c, s = _color_shape(rng, training)
        r = random_radius(rng)
        ((x, y),) = place_apart(rng, [r])
        return Scene(background, (Shape(s, c, x, y, r),), category)
    if category == "counting":
        n = rng.choice(list(NUMBERS))
        c, s = _color_shape(rng, training)
        radii = [random_radius(rng, "small") for _ in range(n)] if n > 2 else [random_radius(rng) for _ in range(n)]
        pts = place_apart(rng, radii)
        return Scene(background, tuple(Shape(s, c, x, y, r) for (x, y), r in zip(pts, radii)), category)
    if category in ("two_object", "color_attr"):
        (c1, s1), (c2, s2) = _color_shape(rng, training), _color_shape(rng, training)
        while s2 == s1 or (category == "color_attr" and c2 == c1):
            c2, s2 = _color_shape(rng, training)
        radii = [random_radius(rng), random_radius(rng)]
        pts = place_apart(rng, radii)
        shapes = (Shape(s1, c1, *pts[0], radii[0]), Shape(s2, c2, *pts[1], radii[1]))
        return Scene(background, shapes, category)
    if category == "position":
        return _relation_scene(rng, background, rng.choice(RELATIONS), training)
    raise ValueError(f"unknown category {category!r}; choose one of {', '.join(CATEGORIES)}")


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _noun(s: Shape, *, color: bool, size: bool) -> str:
    words = ([s.size] if size else []) + ([s.color] if color else []) + [s.shape]
    return f"{article(words[0])} {' '.join(words)}"


def caption(scene: Scene, seed: int | None = None, *, rng: random.Random | None = None, full: bool = False) -> str:
    """A caption that is true of the scene, from the grammar of the scene's category.

    Optional words (size, background, colour where the category leaves it out) are added at random, unless
    `full=False` and no `rng`/`seed` is given, in which case the category's plain form is written.
    """
    plain = rng is None and seed is None
    rng = rng or random.Random(seed)

    def maybe(p: float) -> bool:
        return full or (not plain and rng.random() < p)

    shapes, cat = scene.shapes, scene.category
    if cat in ("single_object", "colors"):
        text = _noun(shapes[0], color=cat == "colors" or maybe(0.5), size=maybe(0.3))
    elif cat == "counting":
        s = shapes[0]
        color = f"{s.color} " if maybe(0.5) else ""
        text = f"{NUMBERS[len(shapes)]} {color}{plural(s.shape)}"
    elif cat in ("two_object", "color_attr"):
        color = cat == "color_attr" or maybe(0.3)
        text = f"{_noun(shapes[0], color=color, size=False)} and {_noun(shapes[1], color=color, size=False)}"
    elif cat == "position":
        rel = scene.relation if scene.relation in ("above", "below") else f"to the {scene.relation}"
        text = f"{_noun(shapes[0], color=True, size=False)} {rel} {_noun(shapes[1], color=True, size=False)}"
    else:
        raise ValueError(f"unknown category {cat!r}")
    if maybe(0.25):
        text += f" on {article(scene.background)} {scene.background} background"
    return text


def flip_horizontal(scene: Scene) -> Scene:
    """The mirror image of a scene, with left and right swapped in its relation."""
    swap = {"left of": "right of", "right of": "left of"}
    shapes = tuple(Shape(s.shape, s.color, SIZE - s.x, s.y, s.r) for s in scene.shapes)
    return Scene(scene.background, shapes, scene.category, swap.get(scene.relation or "", scene.relation))


def _polygon(s: Shape) -> list[tuple[float, float]] | None:
    if s.shape == "square":
        h = s.r / math.sqrt(2) * 1.15  # a square a little larger than inscribed, so areas look alike
        return [(s.x - h, s.y - h), (s.x + h, s.y - h), (s.x + h, s.y + h), (s.x - h, s.y + h)]
    if s.shape == "triangle":
        h = s.r
        return [(s.x, s.y - h), (s.x + h, s.y + h * 0.8), (s.x - h, s.y + h * 0.8)]
    if s.shape == "star":
        return star_polygon(s.x, s.y, s.r * 1.15)
    return None


def star_polygon(x: float, y: float, outer: float) -> list[tuple[float, float]]:
    """A five-pointed star pointing up: ten corners, alternately `outer` and `STAR_INNER * outer` from its centre."""
    corners = []
    for k in range(10):
        radius = outer if k % 2 == 0 else outer * STAR_INNER
        angle = -math.pi / 2 + k * math.pi / 5
        corners.append((x + radius * math.cos(angle), y + radius * math.sin(angle)))
    return corners


def draw_shape(draw: ImageDraw.ImageDraw, s: Shape, fill) -> None:
    """Draw one shape with `fill` (a colour of the image's mode) on a PIL drawing, as `render` does."""
    poly = _polygon(s)
    if poly is None:
        draw.ellipse([s.x - s.r, s.y - s.r, s.x + s.r, s.y + s.r], fill=fill)
    else:
        draw.polygon(poly, fill=fill)


def render(scene: Scene) -> Image.Image:
    """Draw a scene as a 64x64 RGB picture (no anti-aliasing: flat colours with crisp edges)."""
    image = Image.new("RGB", (SIZE, SIZE), BACKGROUNDS[scene.background])
    draw = ImageDraw.Draw(image)
    for s in scene.shapes:
        draw_shape(draw, s, COLORS[s.color])
    return image


# The classes of a segmentation map (`segmentation`): one flat colour per kind of shape, on black, as semantic
# segmentation ControlNets read a class palette (ADE20K's, for SD 1.5's)
SEGMENT_COLORS: dict[str, tuple[int, int, int]] = {
    "circle": (220, 20, 60), "square": (20, 200, 120), "triangle": (40, 100, 255), "star": (255, 200, 0)}


def segmentation(scene: Scene) -> Image.Image:
    """A scene's segmentation map: each shape's area in its kind's flat colour (`SEGMENT_COLORS`) on black. It says
    where each shape goes and what it is, not its colour: that is the prompt's to say.

    >>> im = segmentation(Scene("white", (Shape("square", "red", 32, 32, 10),), "single_object"))
    >>> im.getpixel((32, 32)), im.getpixel((2, 2))
    ((20, 200, 120), (0, 0, 0))
    """
    image = Image.new("RGB", (SIZE, SIZE), (0, 0, 0))
    draw = ImageDraw.Draw(image)
    for s in scene.shapes:
        draw_shape(draw, s, SEGMENT_COLORS[s.shape])
    return image


def batch(n: int, seed: int, *, training: bool = True, flip: bool = True,
          weights: Sequence[float] = CATEGORY_WEIGHTS) -> tuple[np.ndarray, list[str], list[Scene]]:
    """`n` pictures as a uint8 array (n, 64, 64, 3), their captions and their scenes; the same for the same seed.
    `weights` sets how often each of CATEGORIES appears."""
    rng = random.Random(seed)
    images, captions, scenes = [], [], []
    for _ in range(n):
        scene = sample_scene(rng=rng, training=training, weights=weights)
        if flip and rng.random() < 0.5:
            scene = flip_horizontal(scene)
        images.append(np.asarray(render(scene)))
        captions.append(caption(scene, rng=rng))
        scenes.append(scene)
    return np.stack(images), captions, scenes
