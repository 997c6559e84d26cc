"""Comparison grids: one picture per combination of argument values, drawn as a labelled grid (AUTOMATIC1111's
X/Y/Z plot). Any task argument given as a list is an axis; the pictures are the task functions' own, with recipes.
(Named, like `traces` for `ig.trace`, so that importing the module never hides the function `ig.compare`.)

>>> import imagegen_nb as ig
>>> grid = ig.compare("a red circle", seed=[0, 1], guidance_scale=[2.0, 6.0], num_inference_steps=4)
>>> grid.shape, [name for name, _ in grid.axes]
((2, 2), ['seed', 'guidance_scale'])
>>> ig.recipe(grid.cells[1, 0])["seed"], ig.recipe(grid.cells[1, 0])["guidance_scale"]
(1, 2.0)
"""

from __future__ import annotations

import io
import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from . import arguments, registry, tasks
from .display import png_base64

__all__ = ["Comparison", "compare"]

MAX_AXES = 3  # X (columns), Y (rows), Z (one grid per value)
INPUTS = {"generate": (), "edit": ("image",), "inpaint": ("image", "mask"), "control": ("control_image",)}
# Arguments that are never an axis: the task's inputs, and what concerns the whole grid rather than one cell.
NOT_AXES = ("image", "mask", "control_image", "run", "progress", "batch_size", "allow_pickle", "dtype")
MIN_CELL = 128  # cells are drawn enlarged (nearest neighbour) to at least this many pixels a side
FONT_SIZE = 13
PAD = 4  # pixels around label text
MAX_LEFT = 200  # widest the row-label strip gets; longer labels wrap


@dataclass(repr=False)
class Comparison:
    """A comparison grid. `axes` is [(name, values), ...] in X, Y, Z order; `cells[i, j, k]` is the picture made
    with the i-th X value, j-th Y value and k-th Z value (an object array with one dimension per axis), carrying
    its recipe; `images` holds one labelled grid per Z value (`image` is the first). It shows inline as the grids.

    Each grid is `left + columns * cell_width * scale` pixels wide and `top + rows * cell_height * scale` high:
    the cells enlarged `scale` times with crisp pixels, below a strip `top` pixels high with the Z value and the
    X values, and right of a strip `left` pixels wide with the Y values.

    >>> import imagegen_nb as ig
    >>> grid = ig.compare("a red circle", seed=[0, 1, 2], num_inference_steps=4)
    >>> grid.shape, grid.scale, grid.image.size == (grid.left + 3 * 64 * grid.scale, grid.top + 64 * grid.scale)
    ((3,), 2, True)
    """

    axes: list[tuple[str, list]]
    cells: Any  # numpy object array of PIL images
    images: list[Image.Image] = field(default_factory=list)
    scale: int = 1
    left: int = 0
    top: int = 0

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.cells.shape)

    @property
    def image(self) -> Image.Image:
        return self.images[0]

    def __repr__(self) -> str:
        axes = ", ".join(f"{name} x {len(values)}" for name, values in self.axes) or "no axes"
        return f"Comparison({axes}; {self.cells.size} pictures)"

    def _repr_html_(self) -> str:
        return "<div>" + "".join(f'<img src="data:image/png;base64,{png_base64(im)}" style="margin:2px"/>'
                                 for im in self.images) + "</div>"

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        _stack(self.images).save(buf, format="PNG")
        return buf.getvalue()


def compare(prompt, *, task: str = "generate", **kwargs) -> Comparison:
    """Make one picture per combination of the arguments given as lists, and show them as a labelled grid.

    Any task-function argument given as a list is an axis: `seed=[0, 1, 2]`, `guidance_scale=[2, 4, 8]`,
    `num_inference_steps=[4, 12]`, `scheduler=["ddim", "euler_a"]`, `model=[...]`, `strength=[0.4, 0.8]`, a list
    of prompts, and `prompt_sr=["red", "blue", "green"]` (AUTOMATIC1111's "prompt S/R": the first word is found in
    the prompt and replaced by each of the words in turn, the first one included). At most three axes, in the order
    given: X (columns), Y (rows) and Z (one grid per value); an axis of one value is fine. Other arguments hold for
    every cell. `task=` picks "generate", "edit", "inpaint" or "control", whose inputs are passed by name
    (`image=`, `mask=`, `control_image=`). Without a seed axis every cell has the same seed (`seed=`, or one
    drawn at random).

    Every cell's arguments are checked before any picture is made. Cells that differ only in seed or prompt share
    pipeline calls, batched as `batch_size=` says (the task functions' default: one picture per call on the CPU,
    so each cell is bit-identical to the picture made alone with its arguments; `batch_size="auto"` batches them).

    >>> import imagegen_nb as ig
    >>> grid = ig.compare("a red circle", prompt_sr=["red", "blue"], num_inference_steps=4, seed=1)
    >>> [ig.recipe(im)["prompt"] for im in grid.cells]
    ['a red circle', 'a blue circle']
    """
    if task not in registry.TASKS:
        raise ValueError(f"task must be one of {', '.join(registry.TASKS)}, not {task!r}")
    for name in ("num_images", "task"):
        if name in kwargs:
            raise TypeError(f"compare() does not take {name!r}: it makes one picture per cell (give seed=[...] "
                            "for several seeds)")
    missing = [name for name in INPUTS[task] if name not in kwargs]
    if missing:
        raise ValueError(f"task={task!r} needs {' and '.join(f'{n}=' for n in missing)}")
    axes, prompt_sr = _axes(prompt, kwargs)
    if len(axes) > MAX_AXES:
        raise ValueError(f"compare takes at most {MAX_AXES} axes (X, Y and Z), not {len(axes)}: "
                         f"{', '.join(name for name, _ in axes)}; give the others one value")
    shared = {k: v for k, v in kwargs.items() if k not in dict(axes)}
    if "seed" not in dict(axes) and shared.get("seed") is None:
        shared["seed"] = arguments.seeds(None, 1)[0]  # one seed for every cell, so only the axes differ
    function = getattr(tasks, task)

    # 1. Every cell's arguments, checked before any work.
    cells = {}
    for index in itertools.product(*(range(len(values)) for _, values in axes)):
        cell = dict(shared, prompt=prompt)
        for (name, values), i in zip(axes, index):
            if name == "prompt_sr":
                cell["prompt"] = prompt.replace(prompt_sr, values[i])
            else:
                cell[name] = values[i]
        cells[index] = cell
    with tasks.checking_only():
        for cell in cells.values():
            function(**cell)

    # 2. Cells that differ only in prompt and seed share pipeline calls (batched as batch_size says).
    groups: dict[tuple, list[tuple]] = {}
    for index, cell in cells.items():
        groups.setdefault(_call_key(cell), []).append(index)
    pictures = np.empty(tuple(len(values) for _, values in axes), dtype=object)
    run = shared.get("run")
    for members in groups.values():
        first = cells[members[0]]
        call = {k: v for k, v in first.items() if k not in ("prompt", "seed")}
        made = function(prompt=[cells[i]["prompt"] for i in members], seed=[cells[i]["seed"] for i in members],
                        **call)
        for index, picture in zip(members, made):
            pictures[index] = picture
        if run is not None and run.stop_requested:
            break
    return _draw(axes, pictures)


def _axes(prompt, kwargs: dict[str, Any]) -> tuple[list[tuple[str, list]], str | None]:
    """The axes in the order given (a list of prompts first), and the word prompt S/R replaces."""
    axes: list[tuple[str, list]] = []
    if isinstance(prompt, (list, tuple)):
        axes.append(("prompt", list(prompt)))
    elif not isinstance(prompt, str):
        raise TypeError(f"prompt must be a string or a list of strings, not {type(prompt).__name__}")
    prompt_sr = None
    for name, value in kwargs.items():
        if not isinstance(value, (list, tuple)):
            continue
        if name in NOT_AXES:
            raise TypeError(f"{name} cannot be an axis of a comparison: give one value for the whole grid")
        if not value:
            raise ValueError(f"the {name} axis has no values; give at least one")
        if name == "prompt_sr":
            if not isinstance(prompt, str):
                raise ValueError("prompt_sr replaces a word of one prompt: give prompt as a string")
            if not all(isinstance(v, str) for v in value):
                raise TypeError(f"prompt_sr must be a list of strings, not {value!r}")
            prompt_sr = value[0]
            if not prompt_sr or prompt_sr not in prompt:
                raise ValueError(f"prompt_sr's first entry {prompt_sr!r} is not in the prompt {prompt!r}: it is the "
                                 "word each entry replaces")
        axes.append((name, list(value)))
    if "prompt_sr" in kwargs and prompt_sr is None:
        raise TypeError(f"prompt_sr must be a list of words, the first one found in the prompt, not "
                        f"{kwargs['prompt_sr']!r}")
    kwargs.pop("prompt_sr", None)
    return axes, prompt_sr


def _call_key(cell: dict[str, Any]) -> tuple:
    def key(value):
        try:
            hash(value)
            return value
        except TypeError:
            return id(value)

    return tuple(sorted((k, type(v).__name__, key(v)) for k, v in cell.items() if k not in ("prompt", "seed")))


def _label(name: str, value) -> str:
    from .recipes import model_name

    if name == "model":
        value = model_name(value)
    elif value is None:
        value = "default"
    elif isinstance(value, float):
        value = f"{value:g}"
    return f"{'prompt S/R' if name == 'prompt_sr' else name}: {value}"


def _font(size: int = FONT_SIZE):
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # an older Pillow or one without FreeType: the bitmap font
        return ImageFont.load_default()


def _wrap(text: str, font, width: int) -> list[str]:
    """`text` in lines of at most `width` pixels (a word longer than that is cut)."""
    lines: list[str] = []
    for word in text.split(" "):
        candidate = f"{lines[-1]} {word}" if lines else word
        if lines and font.getlength(candidate) <= width:
            lines[-1] = candidate
            continue
        while font.getlength(word) > width and len(word) > 1:
            cut = max(1, int(len(word) * width / font.getlength(word)))
            lines.append(word[:cut])
            word = word[cut:]
        lines.append(word)
    return lines or [""]


def _draw(axes: list[tuple[str, list]], pictures) -> Comparison:
    font = _font()
    line = font.getbbox("Ag")[3] + 3
    made = [p for p in pictures.flat if p is not None]
    cw, ch = max(p.width for p in made), max(p.height for p in made)
    scale = max(1, math.ceil(MIN_CELL / max(cw, ch)))
    cw, ch = cw * scale, ch * scale
    x_axis, y_axis, z_axis = (axes + [None] * MAX_AXES)[:MAX_AXES]
    nx = len(x_axis[1]) if x_axis else 1
    ny = len(y_axis[1]) if y_axis else 1
    nz = len(z_axis[1]) if z_axis else 1
    headers = [_wrap(_label(x_axis[0], v), font, cw - 2 * PAD) for v in x_axis[1]] if x_axis else []
    rows = [_label(y_axis[0], v) for v in y_axis[1]] if y_axis else []
    left = min(MAX_LEFT, max((int(font.getlength(r)) for r in rows), default=0) + 2 * PAD) if rows else 0
    row_lines = [_wrap(r, font, left - 2 * PAD) for r in rows]
    title = line + 2 * PAD if z_axis else 0
    top = title + (max(len(h) for h in headers) * line + 2 * PAD if headers else 0)
    images = []
    for k in range(nz):
        grid = Image.new("RGB", (left + nx * cw, top + ny * ch), "white")
        draw = ImageDraw.Draw(grid)
        if z_axis:
            draw.text((left + PAD, PAD), _label(z_axis[0], z_axis[1][k]), fill="black", font=font)
        for i, lines in enumerate(headers):
            for n, text in enumerate(lines):
                draw.text((left + i * cw + PAD, title + PAD + n * line), text, fill="black", font=font)
        for j, lines in enumerate(row_lines):
            y0 = top + j * ch + (ch - len(lines) * line) // 2
            for n, text in enumerate(lines):
                draw.text((PAD, y0 + n * line), text, fill="black", font=font)
        for i in range(nx):
            for j in range(ny):
                index = (i, j, k)[:len(axes)]
                picture = pictures[index] if axes else pictures[()]
                if picture is not None:
                    big = picture.convert("RGB").resize((picture.width * scale, picture.height * scale),
                                                        Image.NEAREST)
                    grid.paste(big, (left + i * cw, top + j * ch))
        images.append(grid)
    return Comparison(axes=axes, cells=pictures, images=images, scale=scale, left=left, top=top)


def _stack(images: list[Image.Image]) -> Image.Image:
    """The grids one above the other, on white."""
    if len(images) == 1:
        return images[0]
    out = Image.new("RGB", (max(i.width for i in images), sum(i.height for i in images) + 8 * (len(images) - 1)),
                    "white")
    y = 0
    for im in images:
        out.paste(im, (0, y))
        y += im.height + 8
    return out
