"""The four tasks: generate, edit (image-to-image), inpaint and control (ControlNet). Each checks its inputs, gets
its pipeline from the shared cache, runs it, and returns pictures that carry their recipe.

>>> import imagegen_nb as ig
>>> image = ig.generate("a red circle to the left of a blue square", seed=0)
>>> image.size
(64, 64)
"""

from __future__ import annotations

import contextvars
import inspect
import math
from contextlib import contextmanager
from typing import Any

from PIL import Image

from . import adapters, arguments, devices, inputs, prompt_weights, recipes, registry, schedulers
from . import cache as _cache
from . import style as _style
from ._version import __version__
from .display import ImageList, enlarge_when_small
from .errors import OutOfMemoryError, RecipeError
from .recipes import Recipe, attach
from .steps import ProgressBar, Run, watch

# The arguments every task function names itself; anything else is passed to the pipeline, if it takes it.
_OWN = ("prompt", "model", "negative_prompt", "num_inference_steps", "guidance_scale", "width", "height", "seed",
        "num_images", "batch_size", "scheduler", "progress", "run", "dtype", "allow_pickle", "lora",
        "style", "style_scale", "ip_adapter")
_OWN_BY_TASK = {"generate": (), "edit": ("image", "strength"),
                "inpaint": ("image", "mask", "strength", "mask_blur", "resize"),
                "control": ("control_image", "kind", "controlnet", "controlnet_conditioning_scale", "preprocess")}
# Per-picture arguments a recipe holds but no pipeline call takes (they are the task function's own).
_NOT_PIPELINE = ("resize", "kind", "preprocess", "mask_blur", "mask", "controlnet")


def _own_names(task: str) -> tuple[str, ...]:
    own = _OWN + _OWN_BY_TASK[task]
    return own if task != "inpaint" else tuple(n for n in own if n not in ("width", "height"))


def _precheck_pipeline_kwargs(task: str, pipeline_kwargs: dict[str, Any]) -> None:
    """Refuse at once the names no pipeline should get from a user: ones the task sets itself, and the common
    names from other tools (`steps`, `guidance`, ...)."""
    for name in pipeline_kwargs:
        if name in arguments.MANAGED:
            raise TypeError(f"{task}() does not take {name!r}: {arguments.MANAGED[name]}")
        if name in arguments.ALIASES or name in _NOT_PIPELINE:
            raise arguments.unknown_argument(task, name, _own_names(task))


def _check_pipeline_kwargs(task: str, pipe, pipeline_kwargs: dict[str, Any], managed: set[str]) -> dict[str, Any]:
    """Every extra argument must be one the pipeline's `__call__` names (its `**kwargs` swallow typos silently);
    returns the arguments as the recipe records them."""

    params = inspect.signature(type(pipe).__call__).parameters
    accepted = {n for n, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and n != "self"}
    passable = accepted - managed - set(arguments.MANAGED)
    for name in pipeline_kwargs:
        if name not in passable:
            raise arguments.unknown_argument(task, name, set(_own_names(task)) | passable)
    return {name: arguments.recordable(name, value) for name, value in pipeline_kwargs.items()}


def _guidance_applies(family: registry.Family, guidance: float, pipeline_kwargs: dict[str, Any]) -> bool:
    """Whether the call runs a negative (unconditional) branch, so a negative prompt changes the picture."""
    if family.true_cfg:
        return float(pipeline_kwargs.get("true_cfg_scale", 1.0)) > 1
    return guidance > family.guidance_off_at


def _check_negative_prompt(family: registry.Family, negative_prompt, guidance: float, pipeline_kwargs) -> None:
    if negative_prompt is None or _guidance_applies(family, guidance, pipeline_kwargs):
        return
    if family.true_cfg:
        raise ValueError(f"{family.name} models ignore negative_prompt unless true classifier-free guidance is on; "
                         "pass true_cfg_scale=4.0 (or more than 1) with it, which doubles the work per step, or "
                         "drop negative_prompt")
    raise ValueError(f"negative_prompt has no effect at guidance_scale={guidance:g}: {family.name} models run "
                     f"the negative branch only when guidance_scale is more than {family.guidance_off_at:g}; raise "
                     "guidance_scale or drop negative_prompt")


def _prompts(prompt, num_images: int) -> tuple[list[str], bool]:
    if isinstance(prompt, str):
        arguments.text("prompt", prompt)
        return [prompt] * num_images, num_images > 1
    if isinstance(prompt, (list, tuple)) and prompt and all(isinstance(p, str) for p in prompt):
        for p in prompt:
            arguments.text("prompt", p)
        return [p for p in prompt for _ in range(num_images)], True
    raise TypeError(f"prompt must be a string or a non-empty list of strings, not {prompt!r}")


def _check_size(width, height, family: registry.Family) -> tuple[int, int]:
    width = arguments.integer("width", width, low=1)
    height = arguments.integer("height", height, low=1)
    inputs.check_size(width, height, family.size_factor, family.name)
    largest = arguments.limits.max_side_factor * family.default_size
    if max(width, height) > largest:
        raise ValueError(
            f"{width}x{height} is more than {arguments.limits.max_side_factor}x the {family.default_size} px "
            f"{family.name} models are made for (at most {largest} px a side; ig.limits.max_side_factor); "
            f"to go past it on purpose: ig.limits.max_side_factor = {-(-max(width, height) // family.default_size)}")
    return width, height


def _check_strength(strength, steps: int) -> float:
    strength = arguments.number("strength", strength, low=0, high=1, low_open=True,
                                hint=" (how far down the noise schedule the edit starts; 1 ignores the image)")
    if int(steps * strength) < 1:
        raise ValueError(f"strength={strength:g} with num_inference_steps={steps} runs no denoising step "
                         f"(int({steps} x {strength:g}) = 0); raise strength to at least {1 / steps:.3g} or "
                         f"num_inference_steps to at least {math.ceil(1 / strength)}")
    return strength


def _check_run(run) -> Run | None:
    if run is not None and not isinstance(run, Run):
        raise TypeError(f"run must be an ig.Run or None, not {type(run).__name__}")
    return run


# Pictures per pipeline call chosen by `batch_size="auto"` on the CPU, for pictures of up to CPU_BATCH_PIXELS / 8
# pixels (the built-in model's 64x64 gains 1.6-1.9x per picture at 8 and nothing more at 16; benchmarks/batch.py);
# larger pictures get proportionally fewer, since a big model's batch of one already keeps the CPU busy.
CPU_BATCH = 8
CPU_BATCH_PIXELS = CPU_BATCH * 256 * 256
GPU_MAX_BATCH = 16  # the most pictures one GPU call makes when the size comes from free memory
# Pipelines that draw per picture from the global RNG as well as from our generators (SD3's ControlNet samples the
# control map's VAE posterior): in a batch those draws come from one stream, so a picture would differ from the
# same picture made alone by more than rounding. An automatic batch size makes them one at a time.
_GLOBAL_RNG_PIPELINES = ("StableDiffusion3ControlNetPipeline",)


_CHECK_ONLY = contextvars.ContextVar("imagegen_nb_check_only", default=False)


@contextmanager
def checking_only():
    """Inside this block the task functions check every argument as usual and return None, without loading a
    pipeline or making a picture: how `ig.compare` refuses a bad value in any cell before it makes the first."""
    token = _CHECK_ONLY.set(True)
    try:
        yield
    finally:
        _CHECK_ONLY.reset(token)


def _seeds(seed, n: int) -> list[int]:
    """One seed per picture: `seed`, `seed + 1`, ... from an int (random when None), or a list of one each."""
    if isinstance(seed, (list, tuple)):
        if len(seed) != n:
            raise ValueError(f"seed is a list of {len(seed)} seeds for {n} pictures; give one seed per picture, or "
                             "one int (the pictures then get seed, seed + 1, ...)")
        return [arguments.integer("seed", s, low=0, high=arguments.MAX_SEED) for s in seed]
    return arguments.seeds(seed, n)


def _check_batch_size(batch_size) -> int | str | None:
    if batch_size is None or (isinstance(batch_size, str) and batch_size == "auto"):
        return batch_size
    if isinstance(batch_size, str):
        raise ValueError(f"batch_size must be None, 'auto' or a whole number of pictures per pipeline call, not "
                         f"{batch_size!r}")
    return arguments.integer("batch_size", batch_size, low=1, high=arguments.limits.max_images, limit="max_images")


def _chunk_size(batch_size, entry, pipe, family: registry.Family, width: int, height: int, n: int) -> int:
    """Pictures per pipeline call: `batch_size` itself, or for None / "auto" one chosen for the device.

    None is 1 on the CPU, where a picture made in a batch differs in its last bits from the same picture made
    alone (batched matrix products round differently), and "auto" elsewhere. "auto" on the CPU is CPU_BATCH for
    small pictures, fewer for large ones; on a GPU, as many as fit the free memory beside the weights, reckoning
    each picture's activations as `devices.HEADROOM - 1` (30%) of the weights at the model's default size, scaled
    by the picture's pixels (the room the memory policy already keeps for one picture).
    """
    from . import devices

    if isinstance(batch_size, int):
        return min(batch_size, n)
    if type(pipe).__name__ in _GLOBAL_RNG_PIPELINES:
        return 1
    device = entry.placement.device
    if device == "cpu" or str(device).startswith("mps"):
        if batch_size is None:
            return 1
        return max(1, min(CPU_BATCH, n, CPU_BATCH_PIXELS // (width * height)))
    free = devices.free_gpu_bytes(device)
    if free is None:
        return 1
    per_picture = (devices.HEADROOM - 1) * max(entry.nbytes, 1) * width * height / family.default_size**2
    return max(1, min(GPU_MAX_BATCH, n, int(0.8 * free / per_picture)))


def _input_size(image: Image.Image, width, height, family: registry.Family) -> tuple[int, int]:
    """The output size of a task that starts from a picture (edit, control), checked against the family's
    limits: the picture's own (rounded down to the family's size factor) or the one asked for; one side given
    alone keeps the picture's aspect ratio."""
    factor = family.size_factor
    if width is None and height is None:
        width, height = inputs.fit_size(image, factor)
    elif height is None:
        width = arguments.integer("width", width, low=1)
        height = max(factor, round(width * image.height / image.width) // factor * factor)
    elif width is None:
        height = arguments.integer("height", height, low=1)
        width = max(factor, round(height * image.width / image.height) // factor * factor)
    return _check_size(width, height, family)


def _resized(image: Image.Image, size: tuple[int, int], resample) -> Image.Image:
    return image.resize(size, resample) if image.size != size else image


def _make_pictures(task: str, prompt, *, model, seed, num_images, num_inference_steps, guidance_scale, width, height,
         negative_prompt, scheduler, progress, run: Run | None, dtype, allow_pickle, controlnet=None, lora=None,
         style=None, style_scale=None, ip_adapter=None, batch_size=None, call: dict[str, Any],
         recipe_extra: dict[str, Any],
         inputs_kept: dict[str, Image.Image] | None, post=None, pipeline_kwargs: dict[str, Any],
         family: registry.Family | None = None):
    """The part all four tasks share: checks, pipeline from the cache, batched pipeline calls, recipes.
    `family` is the model's, when the task has already resolved it (and checked `pipeline_kwargs` by name)."""
    import torch

    # 1. Check every argument before any work, so nothing unchecked reaches a pipeline or a recipe.
    shared = _cache.shared
    if family is None:
        _precheck_pipeline_kwargs(task, pipeline_kwargs)
        _, family = registry.resolve(model, allow_pickle=allow_pickle)
    family.check_task(task)
    steps = family.default_steps if num_inference_steps is None else num_inference_steps
    steps = arguments.integer("num_inference_steps", steps, low=1, high=arguments.limits.max_steps,
                              limit="max_steps")
    guidance = family.default_guidance if guidance_scale is None else guidance_scale
    guidance = arguments.number("guidance_scale", guidance, low=0,
                                hint=" (0 turns guidance off; the family's default is "
                                     f"{family.default_guidance:g})")
    if "strength" in call:
        call["strength"] = _check_strength(call["strength"], steps)
    width = family.default_size if width is None else width
    height = family.default_size if height is None else height
    width, height = _check_size(width, height, family)
    schedulers.check(scheduler, family)
    negative_prompt = arguments.text("negative_prompt", negative_prompt, optional=True)
    num_images = arguments.integer("num_images", num_images, low=1, high=arguments.limits.max_images,
                                   limit="max_images")
    prompts, as_list = _prompts(prompt, num_images)
    if len(prompts) > arguments.limits.max_images:
        raise ValueError(f"{len(prompt)} prompts x num_images={num_images} is {len(prompts)} pictures: "
                         f"{arguments.limit_hint('max_images', len(prompts))}")
    seeds = _seeds(seed, len(prompts))
    batch_size = _check_batch_size(batch_size)
    progress = arguments.flag("progress", progress, optional=True)
    allow_pickle = arguments.flag("allow_pickle", allow_pickle)
    loras = adapters.check(lora, allow_pickle=allow_pickle)  # files found and hashed; loaded at the call
    style_ref = _style.check(style, style_scale, ip_adapter, family, allow_pickle=allow_pickle)
    run = _check_run(run)
    _check_negative_prompt(family, negative_prompt, guidance, pipeline_kwargs)
    weighted = [p for p in [*prompts, negative_prompt or ""] if not prompt_weights.is_plain(p)]
    if weighted and family.pipeline not in prompt_weights.PIPELINES:
        raise ValueError(f"prompt weighting ({weighted[0]!r}) works with {', '.join(prompt_weights.PIPELINES)} "
                         f"models (the built-in U-Net, SD 1.x, SD-Turbo), not {family.name}; write the prompt "
                         "without brackets, or pass prompt_embeds= yourself")
    scheduler_name = scheduler or family.default_scheduler
    kept = {k: _detached(v) for k, v in (inputs_kept or {}).items()}
    if style_ref is not None:
        kept["style"] = _detached(style_ref.image)
    if _CHECK_ONLY.get():
        return None

    with shared.lock:
        # 2. The pipeline from the shared cache; the extra arguments checked against what it really takes.
        entry, pipe = shared.pipeline(model, task, controlnet=controlnet, dtype=dtype, allow_pickle=allow_pickle)
        # (the family's own call_kwargs may be overridden; what the task sets from its own arguments may not)
        managed = set(call) | {"num_inference_steps", "guidance_scale", "width", "height", "negative_prompt"}
        recorded_extra = _check_pipeline_kwargs(task, pipe, pipeline_kwargs, managed)
        previous = schedulers.swap(pipe, scheduler_name)
        images = []
        automatic = not isinstance(batch_size, int)
        chunk = _chunk_size(batch_size, entry, pipe, family, width, height, len(prompts))
        # The console bar listens to the run like every other view (diffusers' own counts model calls: PNDM's 4
        # steps read 5)
        per_call = _expected_steps(steps, call.get("strength"))
        bar = None
        if progress is not False:
            run = run if run is not None else Run()
            bar = ProgressBar(per_call * math.ceil(len(prompts) / chunk), delay=0 if progress else 1.0)
            run.add(bar)
        try:
            # 3. Batched pipeline calls, `chunk` pictures each, one CPU generator per picture: the same seed gives
            # the same noise on every device and in every batch.
            k = 0
            while k < len(prompts):
                size = min(chunk, len(prompts) - k)
                batch_prompts, batch_seeds = prompts[k:k + size], seeds[k:k + size]
                kwargs = dict(family.call_kwargs, **call, **pipeline_kwargs)
                if negative_prompt is not None:
                    kwargs["negative_prompt"] = negative_prompt
                if size > 1 and task in ("edit", "inpaint"):
                    # one input picture (and mask) per picture, so each generator draws its own VAE sample
                    kwargs.update({name: [kwargs[name]] * size for name in ("image", "mask_image") if name in kwargs})
                generators = [torch.Generator("cpu").manual_seed(s) for s in batch_seeds]
                # (a copy: Z-Image's pipeline writes its chat template into the list it is given)
                kwargs.update(prompt=list(batch_prompts) if size > 1 else batch_prompts[0], num_inference_steps=steps,
                              guidance_scale=guidance, width=width, height=height,
                              generator=generators if size > 1 else generators[0])
                if family.pipeline in prompt_weights.PIPELINES and any(
                        not prompt_weights.is_plain(p) or prompt_weights.too_long(pipe, p)
                        for p in [*batch_prompts, negative_prompt or ""]):
                    # weights, or more words than one window: the states are made here (prompt_weights)
                    if kwargs.get("clip_skip"):
                        raise ValueError("clip_skip= does not combine with prompt weighting or prompts longer than "
                                         "the text encoder's window yet; drop one of them")
                    positive, negative = prompt_weights.prompt_embeds(pipe, list(batch_prompts), negative_prompt)
                    del kwargs["prompt"]
                    kwargs.pop("negative_prompt", None)
                    kwargs.update(prompt_embeds=positive, negative_prompt_embeds=negative)
                pipe.set_progress_bar_config(disable=True)
                try:
                    with watch(pipe, run, total=per_call), adapters.applied(pipe, entry, loras), \
                            _style.applied(pipe, entry, style_ref, allow_pickle=allow_pickle) as style_kwargs, \
                            devices.threads_for(entry.placement, entry.nbytes):
                        out = _call(pipe, {**kwargs, **style_kwargs}, batch_seeds[0], size)
                except OutOfMemoryError:
                    if not automatic or size == 1:
                        raise
                    chunk = size // 2  # an automatic size that did not fit: halve it and make this batch again
                    continue
                for j, (p, s, image) in enumerate(zip(batch_prompts, batch_seeds, out.images)):
                    if post is not None:
                        image = post(image)
                    # 4. The recipe: what was asked, what it ran with, and the batch it was made in.
                    recipe = Recipe(task=task, prompt=p,
                                    model=None if entry.name == registry.BUILTIN else entry.name,
                                    family=family.name, seed=s, num_inference_steps=steps, guidance_scale=guidance,
                                    width=width, height=height, negative_prompt=negative_prompt,
                                    strength=call.get("strength"), scheduler=scheduler, controlnet=controlnet,
                                    version=__version__, extra=recorded_extra,
                                    sampler=type(pipe.scheduler).__name__, dtype=_cache.dtype_of(pipe),
                                    loras=[lo.record() for lo in loras],
                                    style=None if style_ref is None else style_ref.record(),
                                    batch=_batch_record(j, batch_prompts, batch_seeds) if size > 1 else None,
                                    prompt_weights=None if prompt_weights.is_plain(p) else [
                                        [text, weight] for text, weight in prompt_weights.parse(p)],
                                    **recipe_extra)
                    if run is not None and run.stopped:
                        recipe.stopped_at = run.steps_done
                    images.append(enlarge_when_small(attach(image, recipe, kept)))
                k += size
                if run is not None and run.stop_requested:
                    break
        finally:
            if previous is not None:
                pipe.scheduler = previous
            if bar is not None:
                bar.close()
                run.listeners.remove(bar)
    result = ImageList(images) if as_list else images[0]
    if run is not None:
        run.result = result
    return result


def _batch_record(index: int, prompts: list[str], seeds: list[int]) -> dict[str, Any]:
    """What a recipe keeps of the batch a picture was made in: its place, and every picture's prompt and seed."""
    return {"index": index, "prompts": list(prompts), "seeds": list(seeds)}


def _detached(image: Image.Image) -> Image.Image:
    """A copy of an input picture without its own `info`: a result keeps its inputs for `regenerate`, and an
    input's info would keep that picture's inputs alive in turn, down a whole chain of edits."""
    copy = image.copy()
    copy.info = {}
    return copy


def _expected_steps(steps: int, strength: float | None) -> int:
    return steps if strength is None else max(1, min(steps, int(steps * strength)))


def _call(pipe, kwargs, seed: int, pictures: int = 1):
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
        _cache.free_memory()
        what = f"{pictures} {size} images at once" if pictures > 1 else f"a {size} image"
        raise OutOfMemoryError(
            f"the GPU ran out of memory making {what}. Try a smaller size, fewer images, a smaller batch_size, "
            "or CPU offload: ig.set_device('cuda', memory='offload') then ig.cache.clear(). Loaded models are "
            "still usable.") from None


def generate(prompt, *, model=None, negative_prompt=None, num_inference_steps=None, guidance_scale=None,
             width=None, height=None, seed=None, num_images=1, batch_size=None, scheduler=None, progress=None,
             run=None, dtype=None, allow_pickle=False, lora=None, style=None, style_scale=None,
             ip_adapter=None, **pipeline_kwargs):
    """Make a picture from a prompt (text-to-image).

    `model=None` is the built-in teaching model; any Hub id or local diffusers folder works. Unset arguments take
    the model family's defaults (`ig.models()`). Returns a PIL image, or a list of them (shown as a grid) when
    `num_images > 1` or `prompt` is a list; image `i` of a batch has seed `seed + i` (or `seed[i]`, for a list
    of one seed per picture). Each carries its recipe
    (`ig.recipe(image)`). `progress=False` hides the progress bar; `run=ig.Run(...)` listens to every step.
    `batch_size=` is how many pictures one pipeline call makes (all four tasks take it): None is 1 on the CPU
    (every picture bit-identical to the same picture made alone) and "auto" on a GPU; "auto" on the CPU makes up
    to 8 small pictures at a time. A batched picture's recipe records its batch, so `ig.regenerate` remakes it
    exactly (docs/tasks/generate.md, "Batches").
    `lora=` applies LoRAs for this call (all four tasks take it): a path, or `{"a.safetensors": 0.8, "b": 0.4}`.
    `style=` (a picture) carries its look into the picture through an IP-Adapter, `style_scale=` strongly or
    lightly, `ip_adapter=` naming one other than the family's (all four tasks; docs/style.md).
    Other keyword arguments go to the diffusers pipeline if it takes them (`eta=`, `guidance_rescale=`, ...);
    a name it does not take is a TypeError.

    >>> import imagegen_nb as ig
    >>> images = ig.generate("three green triangles", seed=7, num_images=2)
    >>> [ig.recipe(im)["seed"] for im in images]
    [7, 8]
    """
    if (width is None) != (height is None):
        given, missing = ("width", "height") if height is None else ("height", "width")
        raise TypeError(f"generate() got {given}= without {missing}=: give both (or neither, for the model's "
                        "default size); a picture made from text has no aspect ratio to keep")
    return _make_pictures("generate", prompt, model=model, seed=seed, num_images=num_images, batch_size=batch_size,
                num_inference_steps=num_inference_steps, guidance_scale=guidance_scale, width=width, height=height,
                negative_prompt=negative_prompt, scheduler=scheduler, progress=progress, run=run, dtype=dtype,
                allow_pickle=allow_pickle, lora=lora, style=style, style_scale=style_scale, ip_adapter=ip_adapter,
                call={}, recipe_extra={}, inputs_kept=None,
                pipeline_kwargs=pipeline_kwargs)


def edit(image, prompt, *, strength=0.6, model=None, negative_prompt=None, num_inference_steps=None,
         guidance_scale=None, width=None, height=None, seed=None, num_images=1, batch_size=None, scheduler=None,
         progress=None, run=None, dtype=None, allow_pickle=False, lora=None, style=None, style_scale=None,
         ip_adapter=None, **pipeline_kwargs):
    """Change a picture towards a prompt (image-to-image): noise it `strength` of the way down the schedule and
    denoise from there. `strength=1` ignores the picture; small values keep more of it.

    The output has the input's size (rounded down to the family's size factor) unless width/height are given;
    one of them alone keeps the picture's aspect ratio. RGBA, L and P pictures are converted to RGB
    (transparency becomes white).

    >>> import imagegen_nb as ig
    >>> red = ig.generate("a red square", seed=1)
    >>> ig.edit(red, "a blue square", strength=0.7, seed=1).size
    (64, 64)
    """
    _precheck_pipeline_kwargs("edit", pipeline_kwargs)
    init = inputs.to_image(image)
    _, family = registry.resolve(model, allow_pickle=allow_pickle)
    init = _resized(init, _input_size(init, width, height, family), Image.LANCZOS)
    return _make_pictures("edit", prompt, model=model, seed=seed, num_images=num_images, batch_size=batch_size,
                num_inference_steps=num_inference_steps, guidance_scale=guidance_scale, width=init.width,
                height=init.height, negative_prompt=negative_prompt, scheduler=scheduler, progress=progress,
                run=run, dtype=dtype, allow_pickle=allow_pickle, lora=lora, style=style, style_scale=style_scale,
                ip_adapter=ip_adapter,
                call={"image": init, "strength": strength}, recipe_extra={}, inputs_kept={"image": init},
                pipeline_kwargs=pipeline_kwargs, family=family)


def inpaint(image, mask, prompt, *, strength=1.0, mask_blur=None, resize=False, model=None, negative_prompt=None,
            num_inference_steps=None, guidance_scale=None, seed=None, num_images=1, batch_size=None,
            scheduler=None, progress=None, run=None, dtype=None, allow_pickle=False, lora=None, style=None,
            style_scale=None, ip_adapter=None, **pipeline_kwargs):
    """Repaint where the mask is white (diffusers' convention) and keep every other pixel exactly as it was.

    `mask` may be a PIL image of any mode, a numpy array (bool, 0-1 float or 0-255), or anything with a `.mask`
    attribute such as `ig.MaskCanvas`. A mask of another size is an error unless `resize=True`. The result is
    pasted onto the original through the mask blurred by `mask_blur` pixels (default: a mask canvas's own
    `mask_blur` slider, else 1/128 of the smaller side), because the model's VAE round trip would otherwise change
    pixels outside the mask too.

    >>> import imagegen_nb as ig, numpy as np
    >>> base = ig.generate("a red circle on a white background", seed=2)
    >>> mask = np.zeros((64, 64), bool); mask[:, 32:] = True
    >>> out = ig.inpaint(base, mask, "a blue square", seed=2)
    >>> bool((np.asarray(out)[:, :28] == np.asarray(base)[:, :28]).all())
    True
    """
    if "width" in pipeline_kwargs or "height" in pipeline_kwargs:
        raise TypeError("inpaint() takes its size from the image: resize the image (and mask) instead of passing "
                        "width/height")
    _precheck_pipeline_kwargs("inpaint", pipeline_kwargs)
    init = inputs.to_image(image)
    resize = arguments.flag("resize", resize)
    m = inputs.to_mask(mask, init.size, resize=resize)
    _, family = registry.resolve(model, allow_pickle=allow_pickle)
    size = inputs.fit_size(init, family.size_factor)
    if size != init.size:
        raise ValueError(f"image is {init.width}x{init.height}, but {family.name} models need sides that are "
                         f"multiples of {family.size_factor}; crop or resize it to {size[0]}x{size[1]}")
    _check_size(init.width, init.height, family)
    if mask_blur is None:  # a mask canvas hands on its own soft edge
        mask_blur = inputs.mask_blur_of(mask)
    blur = inputs.default_mask_blur(init.size) if mask_blur is None else arguments.number(
        "mask_blur", mask_blur, low=0, high=min(init.size), hint=" (pixels of soft edge around the mask)")
    soft = inputs.feather(m, blur)
    return _make_pictures("inpaint", prompt, model=model, seed=seed, num_images=num_images, batch_size=batch_size,
                num_inference_steps=num_inference_steps, guidance_scale=guidance_scale, width=init.width,
                height=init.height, negative_prompt=negative_prompt, scheduler=scheduler, progress=progress,
                run=run, dtype=dtype, allow_pickle=allow_pickle, lora=lora, style=style, style_scale=style_scale,
                ip_adapter=ip_adapter,
                call={"image": init, "mask_image": m, "strength": strength}, recipe_extra={"mask_blur": blur},
                inputs_kept={"image": init, "mask": m},
                post=lambda generated: inputs.paste_back(init, generated.resize(init.size), soft),
                pipeline_kwargs=pipeline_kwargs, family=family)


def control(control_image, prompt, *, kind="canny", controlnet=None, controlnet_conditioning_scale=1.0,
            preprocess=True, model=None, negative_prompt=None, num_inference_steps=None, guidance_scale=None,
            width=None, height=None, seed=None, num_images=1, batch_size=None, scheduler=None, progress=None,
            run=None, dtype=None, allow_pickle=False, lora=None, style=None, style_scale=None,
            ip_adapter=None, **pipeline_kwargs):
    """Generate a picture that follows a control map (ControlNet): edges, depth or pose of `control_image`.

    With `preprocess=True` the map is made from the picture by `ig.preprocess(control_image, kind)`; with False
    (or `kind="none"`) the picture is used as the map. `controlnet=None` takes the family's default ControlNet
    for `kind` (the built-in model ships one for "canny"). The map goes into the recipe (and the PNG `ig.save`
    writes), so the picture can be made again from its file alone.

    >>> import imagegen_nb as ig
    >>> from PIL import Image, ImageDraw
    >>> sketch = Image.new("RGB", (64, 64), "black"); ImageDraw.Draw(sketch).ellipse([16, 16, 48, 48], fill="white")
    >>> ig.control(sketch, "a red circle", kind="canny", seed=0).size
    (64, 64)
    """
    from .preprocessors import KINDS
    from .preprocessors import preprocess as make_map

    _precheck_pipeline_kwargs("control", pipeline_kwargs)
    arguments.choice("kind", kind, KINDS, what="control kind")
    preprocess = arguments.flag("preprocess", preprocess)
    src = inputs.to_image(control_image, "control_image")
    _, family = registry.resolve(model, allow_pickle=allow_pickle)
    if controlnet is None:
        if kind == "none":
            raise ValueError("kind='none' needs controlnet= naming the ControlNet the map is for")
        if kind not in family.controlnets:
            known = ", ".join(family.controlnets) or "none"
            raise ValueError(f"{family.name} has no default ControlNet for kind={kind!r} (known: {known}); "
                             "pass controlnet='hub-id-or-folder'")
        controlnet = family.controlnets[kind]
    elif not isinstance(controlnet, str):
        raise TypeError(f"controlnet must be a Hub id or folder (a string), not {type(controlnet).__name__}")
    controlnet_conditioning_scale = arguments.number("controlnet_conditioning_scale", controlnet_conditioning_scale,
                                                     low=0, hint=" (0 turns the ControlNet off; 1 is full)")
    size = _input_size(src, width, height, family)
    cmap = _resized(make_map(src, kind) if preprocess and kind != "none" else src, size, Image.NEAREST)
    return _make_pictures("control", prompt, model=model, seed=seed, num_images=num_images, batch_size=batch_size,
                num_inference_steps=num_inference_steps, guidance_scale=guidance_scale, width=cmap.width,
                height=cmap.height,
                negative_prompt=negative_prompt, scheduler=scheduler, progress=progress, run=run, dtype=dtype,
                allow_pickle=allow_pickle, controlnet=controlnet, lora=lora, style=style, style_scale=style_scale,
                ip_adapter=ip_adapter,
                call={family.control_image_arg: cmap, "controlnet_conditioning_scale": controlnet_conditioning_scale},
                recipe_extra={"kind": kind, "controlnet_conditioning_scale": controlnet_conditioning_scale,
                              "preprocess": bool(preprocess and kind != "none")},
                inputs_kept={"control_image": cmap}, pipeline_kwargs=pipeline_kwargs, family=family)


def regenerate(image_or_path, **overrides):
    """Make a picture again from its recipe: bitwise the same on CPU. Keyword arguments override recipe entries.

    The recipe is data, never authority: it may set only the generation parameters a recipe records, each checked
    like a call argument (a damaged or tampered recipe is a `RecipeError`). A picture whose run was stopped is
    made again stopped at the same step. LoRAs are applied again from the files the recipe names, which must still
    have the hashes it recorded (`lora=` overrides them). Edit and inpaint pictures need their input pictures:
    images returned in this session carry them; for a saved PNG pass them again (`image=`, `mask=`). A control
    picture's PNG carries its control map; `control_image=` takes the original picture instead, preprocessed as
    the first time. A picture made in a batch is made again in the same batch (its recipe records the batch's
    prompts and seeds and its place in it), since only that is bit-identical; `batch_size=1` makes it alone instead.

    >>> import imagegen_nb as ig, numpy as np
    >>> image = ig.generate("two green triangles", seed=5)
    >>> bool((np.asarray(ig.regenerate(image)) == np.asarray(image)).all())
    True
    """
    image = recipes.open_picture(image_or_path)
    r = recipes.read(image)
    asked = set(overrides)
    kwargs = r.call_kwargs()
    needed = registry.TASK_INPUTS[r.task]
    valid = set(kwargs) | set(_own_names(r.task)) | set(needed) | set(r.extra)
    for name in overrides:
        if name not in valid:
            raise arguments.unknown_argument("regenerate", name, valid - {"run", "progress"} | {"run", "progress"})
    given = {k: overrides.pop(k) for k in needed if k in overrides}
    if r.loras and "lora" not in overrides:
        kwargs["lora"] = adapters.verify(r.loras)  # each file still there, with the hash the recipe recorded
    kept = recipes.inputs_of(image)
    if r.style and "style" in overrides and overrides["style"] is None:  # made again without the style
        del overrides["style"], kwargs["style_scale"], kwargs["ip_adapter"]
    elif r.style:
        kwargs["style"] = _style_again(r.style, overrides.pop("style", kept.get("style")))
    if r.task == "control" and "control_image" not in given and "control_image" in kept:
        kwargs["preprocess"] = False  # the stored picture is already the map
    inputs_ = {**kept, **given}
    kwargs.update(overrides)
    unrecorded = [k for k, v in kwargs.items() if isinstance(v, str) and v.startswith("<") and "not recorded" in v]
    if unrecorded:
        raise ValueError(f"this picture was made with {', '.join(unrecorded)} that a recipe cannot hold (a tensor); "
                         f"pass {', '.join(f'{k}=...' for k in unrecorded)} again to ig.regenerate")
    prompt = kwargs.pop("prompt", r.prompt)
    missing = [n for n in needed if n not in inputs_]
    if missing:
        raise ValueError(f"this {r.task} picture needs its input {' and '.join(missing)} to be made again; "
                         f"pass {', '.join(f'{n}=...' for n in missing)}")
    task = {"generate": generate, "edit": edit, "inpaint": inpaint, "control": control}[r.task]
    index = None
    if r.batch is not None and not asked & {"prompt", "seed", "batch_size", "num_images"}:
        # A picture made in a batch comes out bit-identical only from the same batch (batched matrix products
        # round differently): make the batch again, the same prompts and seeds in the same call, and pick it out.
        index = r.batch["index"]
        if (r.batch["prompts"][index], r.batch["seeds"][index]) != (r.prompt, r.seed):
            raise RecipeError("this picture's recipe is damaged: its prompt and seed are not those of its place in "
                              "its batch")
        prompt = list(r.batch["prompts"])
        kwargs.update(seed=list(r.batch["seeds"]), num_images=1, batch_size=len(prompt))
    if r.stopped_at is not None and "run" not in kwargs:
        result = _stopped(task, [inputs_[n] for n in needed], prompt, kwargs, r.stopped_at)
    else:
        result = task(*[inputs_[n] for n in needed], prompt, **kwargs)
        _warn_if_dtype_differs(r, result)
    return result if index is None else result[index]


def _style_again(record: dict[str, Any], picture):
    """The style picture to make a picture again with: the one it carries, or the one passed. A different picture
    than the recipe's makes a different picture, so it is a warning, not silence."""
    import warnings

    if picture is None:
        raise ValueError("this picture was made with style= and its style picture is not in the file (a saved PNG "
                         "keeps the recipe, not the reference picture); pass style=... to ig.regenerate")
    given = _style.picture_hash(inputs.to_image(picture, "style"))
    if given != record["hash"]:
        warnings.warn(f"this style picture is not the one the recipe recorded (hash {given}, the recipe says "
                      f"{record['hash']}), so the picture will differ", stacklevel=3)
    return picture


def _stopped(task, args, prompt, kwargs, stopped_at: int):
    """Make a stopped picture again: the same run, stopped after the same number of steps."""
    run = Run()

    def stop(run, step):
        if step.index + 1 >= stopped_at:
            run.stop()

    run.add(stop)
    return task(*args, prompt, run=run, **kwargs)


def _warn_if_dtype_differs(r: Recipe, result) -> None:
    import warnings

    first = result[0] if isinstance(result, list) else result
    now = recipes.read(first).dtype
    if r.dtype and now and r.dtype != now:
        warnings.warn(f"this picture was made at {r.dtype} and made again at {now}, so pixels may differ; pass "
                      f"dtype={r.dtype!r} to match", stacklevel=3)


def default(task: str, name: str):
    """A task function's own default for one of its arguments: the signatures are the one owner of defaults, and
    the CLI and the Studio ask them.

    >>> from imagegen_nb import tasks
    >>> tasks.default("edit", "strength"), tasks.default("control", "kind")
    (0.6, 'canny')
    """
    parameter = _SIGNATURES[arguments.choice("task", task, registry.TASKS)].parameters.get(name)
    if parameter is None or parameter.default is inspect.Parameter.empty:
        raise TypeError(f"{task}() has no argument {name!r} with a default")
    return parameter.default


# read once, from the functions as defined (a test or a user may wrap the module's names later)
_SIGNATURES = {task: inspect.signature(globals()[task]) for task in registry.TASKS}
