"""Two workflows every web UI offers, made of the task functions: outpainting (extend a picture beyond its
borders) and a hires fix (a larger picture by upscaling and refining). Each returns the last task's picture, with
that task's recipe and inputs, so `ig.regenerate` makes it again.

>>> import imagegen_nb as ig
>>> base = ig.generate("a red circle", seed=0)
>>> wide = ig.outpaint(base, "a red circle and a blue square", right=32, seed=0)
>>> wide.size, ig.recipe(wide)["task"]
((96, 64), 'inpaint')
>>> big = ig.hires_fix("a red circle", seed=0, num_inference_steps=4)
>>> big.size, ig.recipe(big)["task"], ig.recipe(big)["strength"]
((128, 128), 'edit', 0.3)
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from . import arguments, inputs, registry, tasks
from .recipes import recipe

__all__ = ["hires_fix", "outpaint"]

FILLS = ("edge", "mirror", "gray")  # what the new margins hold before they are painted (the model sees it)
UPSCALERS = {"lanczos": Image.LANCZOS, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST}


def outpaint(image, prompt, *, left: int = 0, right: int = 0, top: int = 0, bottom: int = 0, fill: str = "edge",
             **inpaint_kwargs):
    """Extend `image` by `left`/`right`/`top`/`bottom` pixels and paint the new margins with `ig.inpaint`: the
    picture is padded (`fill`: "edge" repeats its border pixels, "mirror" reflects it, "gray" is flat grey), a mask
    covers the margins, and inpaint repaints them (its `strength`, default 1.0, and `mask_blur` as usual; the
    original pixels outside the blurred seam come back exactly). The padded size must suit the model (multiples of
    its size factor). Other keyword arguments go to `ig.inpaint`.

    >>> import imagegen_nb as ig
    >>> tall = ig.outpaint(ig.generate("a red circle", seed=1), "a red circle", bottom=16, seed=1)
    >>> tall.size
    (64, 80)
    """
    picture = inputs.to_image(image)
    margins = {name: arguments.integer(name, value, low=0, high=4096) for name, value in
               (("left", left), ("right", right), ("top", top), ("bottom", bottom))}
    if not any(margins.values()):
        raise ValueError("outpaint needs a margin to paint: give left=, right=, top= or bottom= (pixels)")
    fill = arguments.choice("fill", fill, FILLS, what="fill")
    w, h = picture.size
    width, height = w + margins["left"] + margins["right"], h + margins["top"] + margins["bottom"]
    _, family = registry.resolve(inpaint_kwargs.get("model"), allow_pickle=inpaint_kwargs.get("allow_pickle", False))
    factor = family.size_factor
    if width % factor or height % factor:
        raise ValueError(f"the outpainted picture would be {width}x{height}, but {family.name} models need sides "
                         f"that are multiples of {factor}; change the margins so that width and height are")
    pad = ((margins["top"], margins["bottom"]), (margins["left"], margins["right"]), (0, 0))
    pixels = np.asarray(picture)
    if fill == "gray":
        padded = np.pad(pixels, pad, mode="constant", constant_values=128)
    else:
        padded = np.pad(pixels, pad, mode="edge" if fill == "edge" else "reflect")
    mask = np.ones((height, width), bool)
    mask[margins["top"]:margins["top"] + h, margins["left"]:margins["left"] + w] = False
    return tasks.inpaint(Image.fromarray(padded), mask, prompt, **inpaint_kwargs)


def hires_fix(prompt, *, scale: float = 2.0, strength: float = 0.3, upscaler: str = "lanczos", seed=None,
              **generate_kwargs):
    """A picture `scale` times larger than the model's size: `ig.generate` at its size, the picture upscaled
    (`upscaler`: "lanczos", "bicubic" or "nearest"), then `ig.edit` at `strength` on the large picture with the same
    prompt and seed, which redraws the detail that upscaling blurs (AUTOMATIC1111's "Hires. fix"). A higher
    `strength` redraws more: the built-in model, trained at 64x64 only, starts inventing shapes at 128x128 from
    about 0.5; models trained at several sizes take 0.5 to 0.7. Other keyword arguments go to both calls
    (`width`/`height` to the first).

    >>> import imagegen_nb as ig
    >>> ig.hires_fix("a blue square", scale=1.5, seed=2, num_inference_steps=4).size
    (96, 96)
    """
    scale = arguments.number("scale", scale, low=1.0, high=8.0)
    upscaler = arguments.choice("upscaler", upscaler, tuple(UPSCALERS), what="upscaler")
    if isinstance(prompt, list) or generate_kwargs.get("num_images", 1) != 1:
        raise ValueError("hires_fix makes one picture: give one prompt and num_images=1 (call it once per picture)")
    size = {k: generate_kwargs.pop(k) for k in ("width", "height") if k in generate_kwargs}
    base = tasks.generate(prompt, seed=seed, **size, **generate_kwargs)
    _, family = registry.resolve(generate_kwargs.get("model"), allow_pickle=generate_kwargs.get("allow_pickle", False))
    factor = family.size_factor
    width = max(factor, round(base.width * scale / factor) * factor)
    height = max(factor, round(base.height * scale / factor) * factor)
    large = base.resize((width, height), UPSCALERS[upscaler])
    return tasks.edit(large, prompt, strength=strength, seed=recipe(base)["seed"], **generate_kwargs)
