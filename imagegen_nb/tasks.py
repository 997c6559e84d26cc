"""The four tasks: generate, edit (image-to-image), inpaint and control (ControlNet). Each checks its inputs, gets
its pipeline from the shared cache, runs it, and returns pictures that carry their recipe.

>>> import imagegen_nb as ig
>>> image = ig.generate("a red circle to the left of a blue square", seed=0)
>>> image.size
(64, 64)
"""

from __future__ import annotations

import random
from typing import Any

from PIL import Image

from . import cache as _cache
from . import inputs, registry, schedulers
from .display import ImageList, mark
from .errors import OutOfMemoryError
from .recipes import Recipe, attach
from .steps import Run, watch


def _version() -> str:
    from . import __version__

    return __version__


def _check_common(num_inference_steps, guidance_scale, strength=None) -> None:
    if not isinstance(num_inference_steps, int) or num_inference_steps < 1:
        raise ValueError(f"num_inference_steps must be an integer of at least 1, not {num_inference_steps!r}")
    if guidance_scale < 0:
        raise ValueError(f"guidance_scale must be 0 or more (0 or 1 turns guidance off), not {guidance_scale!r}")
    if strength is not None and not 0 < strength <= 1:
        raise ValueError(f"strength must be in (0, 1] (how far down the noise schedule the edit starts; "
                         f"1 ignores the image), not {strength!r}")


def _seeds(seed: int | None, n: int) -> list[int]:
    if seed is None:
        seed = random.SystemRandom().randrange(2**32)
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, not {seed!r}")
    return [seed + i for i in range(n)]


def _prompts(prompt, num_images: int) -> tuple[list[str], bool]:
    if isinstance(prompt, str):
        prompts = [prompt] * num_images
        return prompts, num_images > 1
    if isinstance(prompt, (list, tuple)) and prompt and all(isinstance(p, str) for p in prompt):
        return [p for p in prompt for _ in range(num_images)], True
    raise TypeError(f"prompt must be a string or a non-empty list of strings, not {prompt!r}")


def _run(task: str, prompt, *, model, seed, num_images, num_inference_steps, guidance_scale, width, height,
         negative_prompt, scheduler, progress, run: Run | None, dtype, allow_pickle, controlnet=None,
         call: dict[str, Any], recipe_extra: dict[str, Any], inputs_kept: dict[str, Image.Image] | None,
         size_from: Image.Image | None, post=None, pipeline_kwargs: dict[str, Any]):
    """The part all four tasks share: pipeline from the cache, checks, one pipeline call per image, recipes."""
    import torch

    shared = _cache.shared
    _, family = registry.resolve(model, allow_pickle=allow_pickle)
    family.check_task(task)
    steps = family.default_steps if num_inference_steps is None else num_inference_steps
    guidance = family.default_guidance if guidance_scale is None else float(guidance_scale)
    _check_common(steps, guidance, call.get("strength"))
    if size_from is not None and width is None and height is None:
        width, height = inputs.fit_size(size_from, family.size_factor)
    width = family.default_size if width is None else width
    height = family.default_size if height is None else height
    inputs.check_size(width, height, family.size_factor, family.name)
    schedulers.check(scheduler, family)
    prompts, as_list = _prompts(prompt, num_images)
    seeds = _seeds(seed, len(prompts))
    scheduler_name = scheduler or family.default_scheduler

    with shared.lock:
        entry, pipe = shared.pipeline(model, task, controlnet=controlnet, dtype=dtype, allow_pickle=allow_pickle)
        previous = schedulers.swap(pipe, scheduler_name)
        images = []
        try:
            for p, s in zip(prompts, seeds):
                kwargs = dict(family.call_kwargs, **call, **pipeline_kwargs)
                # A CPU generator per image: the same seed gives the same noise on every device, and each image
                # of a batch can be made again alone.
                if negative_prompt is not None:
                    kwargs["negative_prompt"] = negative_prompt
                kwargs.update(prompt=p, num_inference_steps=steps,
                              guidance_scale=guidance, width=width, height=height,
                              generator=torch.Generator("cpu").manual_seed(s))
                pipe.set_progress_bar_config(disable=progress is False, delay=0 if progress else 1.0, leave=False)
                with watch(pipe, run, total=_expected_steps(steps, call.get("strength"))):
                    out = _call(pipe, kwargs, s)
                image = out.images[0]
                if post is not None:
                    image = post(image)
                recipe = Recipe(task=task, prompt=p, model=None if entry.name == registry.BUILTIN else entry.name,
                                family=family.name, seed=s, num_inference_steps=steps, guidance_scale=guidance,
                                width=width, height=height, negative_prompt=negative_prompt,
                                strength=call.get("strength"), scheduler=scheduler, controlnet=controlnet,
                                version=_version(), extra=_recordable(pipeline_kwargs), **recipe_extra)
                if run is not None and run.stopped:
                    recipe.stopped_at = run.steps_done
                images.append(mark(attach(image, recipe, inputs_kept), family.name))
                if run is not None and run.stop_requested:
                    break
        finally:
            if previous is not None:
                pipe.scheduler = previous
            pipe.set_progress_bar_config(disable=True)
    result = ImageList(images) if as_list else images[0]
    if run is not None:
        run.result = result
    return result


def _recordable(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Pipeline keyword arguments as a recipe can hold them (JSON). A tensor such as `latents=` cannot go into a PNG
    text chunk: it is described instead, so the recipe says it was given and must be passed again to remake it."""
    import json

    out: dict[str, Any] = {}
    for key, value in kwargs.items():
        try:
            json.dumps(value)
            out[key] = value
        except (TypeError, ValueError):
            shape = tuple(getattr(value, "shape", ()))
            out[key] = f"<{type(value).__name__} {shape}, not recorded: pass {key}= again>"
    return out


def _expected_steps(steps: int, strength: float | None) -> int:
    return steps if strength is None else max(1, min(steps, int(steps * strength)))


def _call(pipe, kwargs, seed: int):
    import inspect

    import torch

    # SD/SDXL image-to-image take their size from the image and have no width/height (FLUX's and SD3's do).
    size = f"{kwargs.get('width')}x{kwargs.get('height')}"
    params = inspect.signature(type(pipe).__call__).parameters
    for key in ("width", "height"):
        if key not in params:
            kwargs.pop(key, None)
    # Some pipelines draw from the global RNG besides our generator (SD3's ControlNet samples the VAE posterior
    # of the control image): seed it too, inside fork_rng so the user's own random state is left alone.
    cuda = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    try:
        with torch.random.fork_rng(devices=cuda), torch.inference_mode():
            torch.manual_seed(seed)
            return pipe(**kwargs)
    except torch.cuda.OutOfMemoryError:
        _cache._free_memory()
        raise OutOfMemoryError(
            f"the GPU ran out of memory making a {size} image. Try a smaller size, "
            "fewer images, or CPU offload: ig.set_device('cuda', memory='offload') then ig.cache.clear(). "
            "Loaded models are still usable.") from None


def generate(prompt, *, model=None, negative_prompt=None, num_inference_steps=None, guidance_scale=None,
             width=None, height=None, seed=None, num_images=1, scheduler=None, progress=None, run=None,
             dtype=None, allow_pickle=False, **pipeline_kwargs):
    """Make a picture from a prompt (text-to-image).

    `model=None` is the built-in teaching model; any Hub id or local diffusers folder works. Unset arguments take
    the model family's defaults (`ig.models()`). Returns a PIL image, or a list of them (shown as a grid) when
    `num_images > 1` or `prompt` is a list; image `i` of a batch has seed `seed + i`. Each carries its recipe
    (`ig.recipe(image)`). `progress=False` hides the progress bar; `run=ig.Run(...)` listens to every step.

    >>> import imagegen_nb as ig
    >>> images = ig.generate("three green triangles", seed=7, num_images=2)
    >>> [ig.recipe(im)["seed"] for im in images]
    [7, 8]
    """
    return _run("generate", prompt, model=model, seed=seed, num_images=num_images,
                num_inference_steps=num_inference_steps, guidance_scale=guidance_scale, width=width, height=height,
                negative_prompt=negative_prompt, scheduler=scheduler, progress=progress, run=run, dtype=dtype,
                allow_pickle=allow_pickle, call={}, recipe_extra={}, inputs_kept=None, size_from=None,
                pipeline_kwargs=pipeline_kwargs)


def edit(image, prompt, *, strength=0.6, model=None, negative_prompt=None, num_inference_steps=None,
         guidance_scale=None, width=None, height=None, seed=None, num_images=1, scheduler=None, progress=None,
         run=None, dtype=None, allow_pickle=False, **pipeline_kwargs):
    """Change a picture towards a prompt (image-to-image): noise it `strength` of the way down the schedule and
    denoise from there. `strength=1` ignores the picture; small values keep more of it.

    The output has the input's size (rounded down to the family's size factor) unless width/height are given.
    RGBA, L and P pictures are converted to RGB (transparency becomes white).

    >>> import imagegen_nb as ig
    >>> red = ig.generate("a red square", seed=1)
    >>> ig.edit(red, "a blue square", strength=0.7, seed=1).size
    (64, 64)
    """
    init = inputs.to_image(image)
    _, family = registry.resolve(model, allow_pickle=allow_pickle)
    w, h = (width, height) if width is not None and height is not None else inputs.fit_size(init, family.size_factor)
    init = init.resize((w, h), Image.LANCZOS) if init.size != (w, h) else init
    return _run("edit", prompt, model=model, seed=seed, num_images=num_images,
                num_inference_steps=num_inference_steps, guidance_scale=guidance_scale, width=w, height=h,
                negative_prompt=negative_prompt, scheduler=scheduler, progress=progress, run=run, dtype=dtype,
                allow_pickle=allow_pickle, call={"image": init, "strength": strength}, recipe_extra={},
                inputs_kept={"image": init}, size_from=None, pipeline_kwargs=pipeline_kwargs)


def inpaint(image, mask, prompt, *, strength=1.0, mask_blur=None, resize=False, model=None, negative_prompt=None,
            num_inference_steps=None, guidance_scale=None, seed=None, num_images=1, scheduler=None,
            progress=None, run=None, dtype=None, allow_pickle=False, **pipeline_kwargs):
    """Repaint where the mask is white (diffusers' convention) and keep every other pixel exactly as it was.

    `mask` may be a PIL image of any mode, a numpy array (bool, 0-1 float or 0-255), or anything with a `.mask`
    attribute such as `ig.MaskCanvas`. A mask of another size is an error unless `resize=True`. The result is
    pasted onto the original through the mask feathered by `mask_blur` pixels (default: 1/128 of the smaller
    side), because the model's VAE round trip would otherwise change pixels outside the mask too.

    >>> import imagegen_nb as ig, numpy as np
    >>> base = ig.generate("a red circle on a white background", seed=2)
    >>> mask = np.zeros((64, 64), bool); mask[:, 32:] = True
    >>> out = ig.inpaint(base, mask, "a blue square", seed=2)
    >>> bool((np.asarray(out)[:, :28] == np.asarray(base)[:, :28]).all())
    True
    """
    init = inputs.to_image(image)
    m = inputs.to_mask(mask, init.size, resize=resize)
    _, family = registry.resolve(model, allow_pickle=allow_pickle)
    size = inputs.fit_size(init, family.size_factor)
    if size != init.size:
        raise ValueError(f"image is {init.width}x{init.height}, but {family.name} models need sides that are "
                         f"multiples of {family.size_factor}; crop or resize it to {size[0]}x{size[1]}")
    blur = max(0.0, round(min(init.size) / 128)) if mask_blur is None else float(mask_blur)
    soft = inputs.feather(m, blur)
    return _run("inpaint", prompt, model=model, seed=seed, num_images=num_images,
                num_inference_steps=num_inference_steps, guidance_scale=guidance_scale, width=init.width,
                height=init.height, negative_prompt=negative_prompt, scheduler=scheduler, progress=progress,
                run=run, dtype=dtype, allow_pickle=allow_pickle,
                call={"image": init, "mask_image": m, "strength": strength}, recipe_extra={"mask_blur": blur},
                inputs_kept={"image": init, "mask": m}, size_from=None,
                post=lambda generated: inputs.paste_back(init, generated.resize(init.size), soft),
                pipeline_kwargs=pipeline_kwargs)


def control(control_image, prompt, *, kind="canny", controlnet=None, controlnet_conditioning_scale=1.0,
            preprocess=True, model=None, negative_prompt=None, num_inference_steps=None, guidance_scale=None,
            width=None, height=None, seed=None, num_images=1, scheduler=None, progress=None, run=None, dtype=None,
            allow_pickle=False, **pipeline_kwargs):
    """Generate a picture that follows a control map (ControlNet): edges, depth or pose of `control_image`.

    With `preprocess=True` the map is made from the picture by `ig.preprocess(control_image, kind)`; with False
    (or `kind="none"`) the picture is used as the map. `controlnet=None` takes the family's default ControlNet
    for `kind` (the built-in model ships one for "canny").

    >>> import imagegen_nb as ig
    >>> from PIL import Image, ImageDraw
    >>> sketch = Image.new("RGB", (64, 64), "black"); ImageDraw.Draw(sketch).ellipse([16, 16, 48, 48], fill="white")
    >>> ig.control(sketch, "a red circle", kind="canny", seed=0).size
    (64, 64)
    """
    from .preprocessors import KINDS
    from .preprocessors import preprocess as make_map

    if kind not in KINDS:
        raise ValueError(f"unknown control kind {kind!r}; choose one of {', '.join(KINDS)}")
    src = inputs.to_image(control_image, "control_image")
    cmap = make_map(src, kind) if preprocess and kind != "none" else src
    _, family = registry.resolve(model, allow_pickle=allow_pickle)
    if controlnet is None:
        if kind == "none":
            raise ValueError("kind='none' needs controlnet= naming the ControlNet the map is for")
        if kind not in family.controlnets:
            known = ", ".join(family.controlnets) or "none"
            raise ValueError(f"{family.name} has no default ControlNet for kind={kind!r} (known: {known}); "
                             "pass controlnet='hub-id-or-folder'")
        controlnet = family.controlnets[kind]
    controlnet_conditioning_scale = float(controlnet_conditioning_scale)
    if controlnet_conditioning_scale < 0:
        raise ValueError(f"controlnet_conditioning_scale must be 0 or more, not {controlnet_conditioning_scale}")
    w, h = (width, height) if width is not None and height is not None else inputs.fit_size(cmap, family.size_factor)
    cmap = cmap.resize((w, h), Image.NEAREST) if cmap.size != (w, h) else cmap
    return _run("control", prompt, model=model, seed=seed, num_images=num_images,
                num_inference_steps=num_inference_steps, guidance_scale=guidance_scale, width=w, height=h,
                negative_prompt=negative_prompt, scheduler=scheduler, progress=progress, run=run, dtype=dtype,
                allow_pickle=allow_pickle, controlnet=controlnet,
                call={family.control_image_arg: cmap, "controlnet_conditioning_scale": controlnet_conditioning_scale},
                recipe_extra={"kind": kind, "controlnet_conditioning_scale": controlnet_conditioning_scale},
                inputs_kept={"control_image": cmap}, size_from=None, pipeline_kwargs=pipeline_kwargs)
