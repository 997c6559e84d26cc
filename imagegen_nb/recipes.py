"""Recipes: everything needed to make a picture again, carried in `image.info` and in PNG text chunks.

>>> import imagegen_nb as ig
>>> image = ig.generate("a red circle", seed=1)
>>> ig.recipe(image)["seed"]
1
>>> import numpy as np
>>> bool((np.asarray(ig.regenerate(image)) == np.asarray(image)).all())
True
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin

INFO_KEY = "imagegen_nb"  # key in image.info and PNG text chunk holding the recipe as JSON
INPUTS_KEY = "imagegen_nb.inputs"  # key in image.info holding the input pictures of edit/inpaint/control


@dataclass
class Recipe:
    """The arguments that made a picture, named as the task functions name them.

    >>> import imagegen_nb as ig
    >>> r = ig.Recipe.from_dict(ig.recipe(ig.generate("a red circle", seed=4)))
    >>> r.code()
    "ig.generate('a red circle', num_inference_steps=12, guidance_scale=4.0, width=64, height=64, seed=4)"
    """

    task: str
    prompt: str
    model: str | None
    family: str
    seed: int
    num_inference_steps: int
    guidance_scale: float
    width: int
    height: int
    negative_prompt: str | None = None
    strength: float | None = None
    scheduler: str | None = None
    kind: str | None = None  # control: the preprocessor
    controlnet: str | None = None
    controlnet_conditioning_scale: float | None = None
    mask_blur: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # other pipeline keyword arguments
    version: str = ""
    stopped_at: int | None = None  # set when a run was stopped before its last step

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> Recipe:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def parameters(self) -> str:
        """The recipe as an AUTOMATIC1111-style `parameters` string, which many image tools read."""
        lines = [self.prompt]
        if self.negative_prompt:
            lines.append(f"Negative prompt: {self.negative_prompt}")
        opts = [f"Steps: {self.num_inference_steps}", f"Sampler: {self.scheduler or 'default'}",
                f"CFG scale: {self.guidance_scale}", f"Seed: {self.seed}", f"Size: {self.width}x{self.height}",
                f"Model: {self.model or 'tiny'}"]
        if self.strength is not None:
            opts.append(f"Denoising strength: {self.strength}")
        lines.append(", ".join(opts))
        return "\n".join(lines)

    def call_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of the task function that makes this picture again."""
        kw: dict[str, Any] = dict(model=self.model, negative_prompt=self.negative_prompt,
                                  num_inference_steps=self.num_inference_steps, guidance_scale=self.guidance_scale,
                                  width=self.width, height=self.height, seed=self.seed, scheduler=self.scheduler)
        if self.task == "edit":
            kw["strength"] = self.strength
        if self.task == "inpaint":  # the size is the image's
            del kw["width"], kw["height"]
            kw.update(strength=self.strength, mask_blur=self.mask_blur)
        if self.task == "control":
            kw.update(kind=self.kind, controlnet=self.controlnet,
                      controlnet_conditioning_scale=self.controlnet_conditioning_scale)
        kw.update(self.extra)
        return kw

    def code(self) -> str:
        """A line of Python that makes the picture again (inputs of edit/inpaint/control named as variables)."""
        args = [repr(self.prompt)]
        inputs = {"edit": ["image"], "inpaint": ["image", "mask"], "control": ["control_image"]}.get(self.task, [])
        args = inputs + args
        for k, v in self.call_kwargs().items():
            if v is not None:
                args.append(f"{k}={v!r}")
        return f"ig.{self.task}({', '.join(args)})"


def attach(image: Image.Image, recipe: Recipe, inputs: dict[str, Image.Image] | None = None) -> Image.Image:
    """Store the recipe (and the input pictures, in memory only) in `image.info`."""
    image.info[INFO_KEY] = recipe.to_json()
    if inputs:
        image.info[INPUTS_KEY] = inputs
    return image


def recipe(image_or_path) -> dict[str, Any]:
    """The recipe of a picture made by imagegen_nb, from the image itself or a PNG saved with `ig.save`.

    Raises ValueError when the picture carries no recipe.

    >>> import imagegen_nb as ig
    >>> ig.recipe(ig.generate("a blue square", seed=2))["seed"]
    2
    """
    image = _open(image_or_path)
    text = image.info.get(INFO_KEY)
    if text is None:
        raise ValueError("this image carries no imagegen_nb recipe: it was not made by imagegen_nb, or was saved "
                         "without one (use ig.save(image, path) to keep it)")
    return json.loads(text)


def _open(image_or_path) -> Image.Image:
    if isinstance(image_or_path, Image.Image):
        return image_or_path
    if isinstance(image_or_path, (str, os.PathLike)):
        return Image.open(image_or_path)
    raise TypeError(f"expected a PIL image or a path, not {type(image_or_path).__name__}")


def save(image: Image.Image, path: str | os.PathLike) -> Path:
    """Write a picture as PNG with its recipe in text chunks (JSON under "imagegen_nb", and "parameters").

    >>> import imagegen_nb as ig, tempfile, os
    >>> path = ig.save(ig.generate("a blue square", seed=3), os.path.join(tempfile.mkdtemp(), "out.png"))
    >>> ig.recipe(path)["prompt"]
    'a blue square'
    """
    path = Path(path)
    if path.suffix.lower() not in (".png", ""):
        raise ValueError(f"ig.save writes PNG (the format that keeps the recipe), not {path.suffix}; "
                         "use a .png path, or image.save(path) to write without the recipe")
    if path.suffix == "":
        path = path.with_suffix(".png")
    path.parent.mkdir(parents=True, exist_ok=True)
    info = PngImagePlugin.PngInfo()
    text = image.info.get(INFO_KEY)
    if text is not None:
        info.add_text(INFO_KEY, text)
        info.add_text("parameters", Recipe.from_dict(json.loads(text)).parameters())
    image.save(path, pnginfo=info)
    return path


def regenerate(image_or_path, **overrides):
    """Make a picture again from its recipe: bitwise the same on CPU. Keyword arguments override recipe entries.

    Edit, inpaint and control pictures also need their input pictures: images returned in this session carry
    them; for a saved PNG pass them again (`image=`, `mask=`, `control_image=`).

    >>> import imagegen_nb as ig, numpy as np
    >>> image = ig.generate("two green triangles", seed=5)
    >>> bool((np.asarray(ig.regenerate(image)) == np.asarray(image)).all())
    True
    """
    from . import tasks

    image = _open(image_or_path)
    r = Recipe.from_dict(recipe(image))
    kwargs = r.call_kwargs()
    inputs = dict(image.info.get(INPUTS_KEY, {}))
    inputs.update({k: overrides.pop(k) for k in ("image", "mask", "control_image") if k in overrides})
    kwargs.update(overrides)
    unrecorded = [k for k, v in kwargs.items() if isinstance(v, str) and v.startswith("<") and "not recorded" in v]
    if unrecorded:
        raise ValueError(f"this picture was made with {', '.join(unrecorded)} that a recipe cannot hold (a tensor); "
                         f"pass {', '.join(f'{k}=...' for k in unrecorded)} again to ig.regenerate")
    prompt = kwargs.pop("prompt", r.prompt)
    needed = {"edit": ("image",), "inpaint": ("image", "mask"), "control": ("control_image",)}.get(r.task, ())
    missing = [n for n in needed if n not in inputs]
    if missing:
        raise ValueError(f"this {r.task} picture needs its input {' and '.join(missing)} to be made again; "
                         f"pass {', '.join(f'{n}=...' for n in missing)}")
    if r.task == "control":
        kwargs["preprocess"] = False  # the stored control image is already the map
    fn = getattr(tasks, r.task)
    return fn(*[inputs[n] for n in needed], prompt, **kwargs)
