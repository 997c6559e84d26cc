"""Recipes: everything needed to make a picture again, carried in `image.info` and in PNG text chunks.

A recipe is data, never authority: reading one checks every field like a call argument, and it can set only the
generation parameters it records (never `allow_pickle`, a dtype or a number of pictures).

>>> import imagegen_nb as ig
>>> image = ig.generate("a red circle", seed=1)
>>> ig.recipe(image)["seed"]
1
>>> import numpy as np
>>> bool((np.asarray(ig.regenerate(image)) == np.asarray(image)).all())
True
"""

from __future__ import annotations

import base64
import io
import json
import keyword
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin

from . import arguments
from .errors import RecipeError
from .registry import BUILTIN_IP_ADAPTER, TASK_INPUTS, TASKS

INFO_KEY = "imagegen_nb"  # key in image.info and PNG text chunk holding the recipe as JSON
INPUTS_KEY = "imagegen_nb.inputs"  # key in image.info holding the input pictures of edit/inpaint/control
CONTROL_MAP_KEY = "imagegen_nb.control_map"  # PNG text chunk: the control map as a base64 PNG

# diffusers scheduler class -> the sampler name AUTOMATIC1111 writes (and tools that read its metadata expect)
A1111_SAMPLERS = {
    "DDIMScheduler": "DDIM", "DDPMScheduler": "DDPM", "PNDMScheduler": "PLMS", "EulerDiscreteScheduler": "Euler",
    "EulerAncestralDiscreteScheduler": "Euler a", "DPMSolverMultistepScheduler": "DPM++ 2M",
    "DPMSolverSinglestepScheduler": "DPM++ SDE", "UniPCMultistepScheduler": "UniPC", "LCMScheduler": "LCM",
    "HeunDiscreteScheduler": "Heun", "LMSDiscreteScheduler": "LMS", "KDPM2DiscreteScheduler": "DPM2",
    "KDPM2AncestralDiscreteScheduler": "DPM2 a", "FlowMatchEulerDiscreteScheduler": "Euler",
}
# What a recipe's `extra` (the pipeline arguments it records) may never set: the task functions' own controls.
NOT_EXTRA = {"allow_pickle", "dtype", "num_images", "run", "progress", "model", "prompt", "seed", "scheduler",
             "generator", "num_images_per_prompt", "output_type", "callback_on_step_end", "callback", "image",
             "mask", "mask_image", "control_image", "return_dict", "resize", "preprocess", "controlnet",
             "style", "style_scale", "ip_adapter", "ip_adapter_image", "ip_adapter_image_embeds", "lora"}


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
    preprocess: bool | None = None  # control: whether the map was made from the picture (False: it was the map)
    sampler: str | None = None  # the diffusers scheduler class that ran (the model's own when scheduler is None)
    dtype: str | None = None  # the precision the pipeline ran at; regenerate warns when it differs
    loras: list[dict[str, Any]] = field(default_factory=list)  # each LoRA: name, path, weight, hash (adapters.Lora)
    # A picture made in a batched pipeline call: its place in the batch ("index"), and the prompts and seeds of all
    # the batch's pictures ("prompts", "seeds"), which remaking it bit for bit needs. None: made alone.
    batch: dict[str, Any] | None = None
    # A prompt with A1111 weighting: its (text, weight) segments as they were read (prompt_weights.parse); made
    # again from the prompt itself, this is what a reader sees
    prompt_weights: list[list[Any]] | None = None
    # style=: the reference picture's hash, the scale and the IP-Adapter as named (style.Style.record); the picture
    # itself travels with the image in memory, like edit's input
    style: dict[str, Any] | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, allow_nan=False)

    @classmethod
    def from_dict(cls, data) -> Recipe:
        """A recipe from its JSON form, every field checked; a `RecipeError` says what is damaged."""
        if not isinstance(data, dict):
            raise RecipeError(f"this picture's recipe is damaged: it should be a JSON object, not "
                              f"{type(data).__name__}")
        missing = [f.name for f in fields(cls) if f.name in _REQUIRED and f.name not in data]
        if missing:
            raise RecipeError(f"this picture's recipe is damaged: it has no {', '.join(missing)}")
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        try:
            return cls(**{k: _check_field(k, v) for k, v in known.items()})
        except (TypeError, ValueError) as err:
            if isinstance(err, RecipeError):
                raise
            raise RecipeError(f"this picture's recipe is damaged: {err}") from None

    def parameters(self) -> str:
        """The recipe as an AUTOMATIC1111-style `parameters` string, which many image tools read."""
        # A1111 writes each LoRA into the prompt as <lora:name:weight>, and their hashes in "Lora hashes".
        # (an embedding is a word of the prompt already; A1111 lists its hash in "TI hashes")
        loras = [lo for lo in self.loras if lo.get("kind", "lora") == "lora"]
        embeddings = [lo for lo in self.loras if lo.get("kind") == "embedding"]
        lines = [" ".join([self.prompt, *(f"<lora:{lo['name']}:{lo['weight']:g}>" for lo in loras)])]
        if self.negative_prompt:
            lines.append(f"Negative prompt: {self.negative_prompt}")
        sampler = A1111_SAMPLERS.get(self.sampler or "", self.sampler or "Default")
        opts = [f"Steps: {self.num_inference_steps}", f"Sampler: {sampler}",
                f"CFG scale: {self.guidance_scale:g}", f"Seed: {self.seed}", f"Size: {self.width}x{self.height}"]
        model_hash = weights_hash(self.model)
        if model_hash:
            opts.append(f"Model hash: {model_hash}")
        opts.append(f"Model: {model_name(self.model)}")
        if self.strength is not None:
            opts.append(f"Denoising strength: {self.strength:g}")
        if self.task == "control":
            opts.append(f"ControlNet: \"preprocessor: {self.kind}, model: {model_name(self.controlnet)}, "
                        f"weight: {self.controlnet_conditioning_scale:g}\"")
        if self.batch is not None:  # as A1111 writes a batch
            opts.append(f"Batch size: {len(self.batch['prompts'])}, Batch pos: {self.batch['index']}")
        if loras:
            opts.append('Lora hashes: "' + ", ".join(f"{lo['name']}: {lo['hash']}" for lo in loras) + '"')
        if embeddings:
            opts.append('TI hashes: "' + ", ".join(f"{lo['name']}: {lo['hash']}" for lo in embeddings) + '"')
        opts.append(f"Version: imagegen_nb {self.version}")
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
            if self.preprocess is not None:
                kw["preprocess"] = self.preprocess
        if self.loras:
            kw["lora"] = {lo["path"]: lo["weight"] for lo in self.loras}
        if self.style:
            kw.update(style_scale=self.style["scale"], ip_adapter=self.style["ip_adapter"])
        kw.update(self.extra)
        return kw

    def code(self) -> str:
        """A line of Python that makes the picture again (inputs of edit/inpaint/control named as variables).
        Every value is written with `repr` and every name is checked, so the line is plain data."""
        args = list(TASK_INPUTS[self.task])
        args.append(repr(self.prompt))
        if self.style:
            args.append("style=style")
        for k, v in self.call_kwargs().items():
            if v is not None and not (k == "preprocess" and v):
                args.append(f"{k}={v!r}")
        return f"ig.{self.task}({', '.join(args)})"


_REQUIRED = ("task", "prompt", "seed", "num_inference_steps", "guidance_scale", "width", "height")
_OPTIONAL_TEXT = ("model", "negative_prompt", "scheduler", "kind", "controlnet", "sampler", "dtype")
_OPTIONAL_NUMBER = ("strength", "controlnet_conditioning_scale", "mask_blur")


def _check_field(name: str, value):
    """One recipe field checked like the call argument it stands for."""
    if name == "task":
        if value not in TASKS:
            raise RecipeError(f"this picture's recipe is damaged: its task is {value!r}, not one of "
                              f"{', '.join(TASKS)}")
        return value
    if name in ("prompt", "family", "version"):
        return arguments.text(name, value)
    if name in _OPTIONAL_TEXT:
        return arguments.text(name, value, optional=True)
    if name in ("seed", "num_inference_steps", "width", "height"):
        return arguments.integer(name, value, low=0 if name == "seed" else 1)
    if name == "stopped_at":
        return None if value is None else arguments.integer(name, value, low=0)
    if name == "guidance_scale":
        return arguments.number(name, value, low=0)
    if name in _OPTIONAL_NUMBER:
        return None if value is None else arguments.number(name, value, low=0)
    if name == "preprocess":
        return arguments.flag(name, value, optional=True)
    if name == "loras":
        return _check_loras(value)
    if name == "batch":
        return _check_batch(value)
    if name == "style":
        return _check_style(value)
    if name == "prompt_weights":
        if value is not None and not (isinstance(value, list) and all(
                isinstance(seg, list) and len(seg) == 2 and isinstance(seg[0], str) for seg in value)):
            raise RecipeError("this picture's recipe is damaged: prompt_weights should be [text, weight] pairs")
        return None if value is None else [[text, arguments.number("prompt weight", w)] for text, w in value]
    if name == "extra":
        if not isinstance(value, dict):
            raise RecipeError(f"this picture's recipe is damaged: extra should be an object, not "
                              f"{type(value).__name__}")
        for key in value:
            if not isinstance(key, str) or not key.isidentifier() or keyword.iskeyword(key):
                raise RecipeError(f"this picture's recipe is damaged: {key!r} is not an argument name")
            if key in NOT_EXTRA or key in Recipe.__dataclass_fields__:
                raise RecipeError(f"this picture's recipe sets {key!r}, which a picture may not set; a recipe "
                                  "holds only generation parameters (pass it yourself if you mean it)")
            arguments.recordable(key, value[key])
        return value
    return value


def _check_batch(value) -> dict[str, Any] | None:
    """A recipe's batch: None, or exactly an index into lists of 2 to ig.limits.max_images prompts and seeds."""
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"index", "prompts", "seeds"}:
        raise RecipeError("this picture's recipe is damaged: its batch should hold exactly index, prompts and "
                          f"seeds, not {value!r}"[:300])
    prompts, seeds = value["prompts"], value["seeds"]
    if not (isinstance(prompts, list) and isinstance(seeds, list) and len(prompts) == len(seeds)
            and 2 <= len(prompts) <= arguments.limits.max_images):
        raise RecipeError(f"this picture's recipe is damaged: its batch should list 2 to "
                          f"{arguments.limits.max_images} prompts and as many seeds (ig.limits.max_images)")
    index = arguments.integer("batch index", value["index"], low=0, high=len(prompts) - 1)
    return {"index": index, "prompts": [arguments.text("prompt", p) for p in prompts],
            "seeds": [arguments.integer("seed", s, low=0, high=arguments.MAX_SEED) for s in seeds]}


def _check_style(value) -> dict[str, Any] | None:
    """A recipe's style: None, or exactly a 10-hex-digit picture hash, a scale and an IP-Adapter safetensors file
    (or None, the family's default). A picture may not name a pickle."""
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"hash", "scale", "ip_adapter"}:
        raise RecipeError("this picture's recipe is damaged: its style should hold exactly hash, scale and "
                          f"ip_adapter, not {value!r}"[:300])
    digest, adapter = value["hash"], value["ip_adapter"]
    if not isinstance(digest, str) or len(digest) != 10 or any(c not in "0123456789abcdef" for c in digest):
        raise RecipeError(f"this picture's recipe is damaged: its style hash should be 10 hex digits, not {digest!r}")
    adapter = arguments.text("ip_adapter", adapter, optional=True)
    if adapter is not None and not adapter.lower().endswith(".safetensors") and adapter != BUILTIN_IP_ADAPTER:
        raise RecipeError(f"this picture's recipe names the IP-Adapter {adapter!r}, which a picture may not name "
                          "(only .safetensors files)")
    return {"hash": digest, "scale": arguments.number("style_scale", value["scale"], low=0, high=2),
            "ip_adapter": adapter}


_LORA_KEYS = ("name", "path", "weight", "hash")
_MAX_LORAS = 16  # as adapters.MAX_LORAS


def _check_loras(value) -> list[dict[str, Any]]:
    """A recipe's LoRAs: at most 16, each exactly a name, a .safetensors file or folder path, a finite weight and
    10 hex digits of hash (a picture may not name a pickle; regenerate checks the file's hash before using it)."""
    if not isinstance(value, list) or len(value) > _MAX_LORAS:
        raise RecipeError(f"this picture's recipe is damaged: loras should be a list of at most {_MAX_LORAS} "
                          f"entries, not {type(value).__name__}")
    out = []
    for item in value:
        if not isinstance(item, dict) or set(item) - {"kind"} != set(_LORA_KEYS) or \
                item.get("kind", "lora") not in ("lora", "embedding"):
            raise RecipeError(f"this picture's recipe is damaged: each of its loras holds exactly "
                              f"{', '.join(_LORA_KEYS)}, not {item!r}"[:300])
        name, path = arguments.text("lora name", item["name"]), arguments.text("lora path", item["path"])
        if not path or Path(path).suffix.lower() in (".bin", ".pt", ".pth", ".ckpt"):
            raise RecipeError(f"this picture's recipe names the LoRA {path!r}, which a picture may not name (only "
                              ".safetensors files and folders)")
        digest = item["hash"]
        if not isinstance(digest, str) or len(digest) != 10 or any(c not in "0123456789abcdef" for c in digest):
            raise RecipeError(f"this picture's recipe is damaged: the hash of its LoRA {name!r} should be 10 hex "
                              f"digits, not {digest!r}")
        kind = {"kind": "embedding"} if item.get("kind") == "embedding" else {}
        out.append({"name": name, "path": path, "weight": arguments.number("lora weight", item["weight"]),
                    "hash": digest, **kind})
    return out


def attach(image: Image.Image, recipe: Recipe, inputs: dict[str, Image.Image] | None = None) -> Image.Image:
    """Store the recipe (and the input pictures, in memory only) in `image.info`."""
    image.info[INFO_KEY] = recipe.to_json()
    if inputs:
        image.info[INPUTS_KEY] = inputs
    return image


def open_picture(image_or_path, name: str = "image") -> Image.Image:
    """A PIL image from an image or a path, with an error that says what is wrong with a file."""
    if isinstance(image_or_path, Image.Image):
        return image_or_path
    if not isinstance(image_or_path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a PIL image or a path, not {type(image_or_path).__name__}")
    from .inputs import open_file

    image = open_file(image_or_path, name)
    return image


def read(image_or_path) -> Recipe:
    """The checked recipe of a picture (a `RecipeError` when it is damaged, ValueError when it has none)."""
    image = open_picture(image_or_path)
    text = image.info.get(INFO_KEY)
    if text is None:
        raise ValueError("this image carries no imagegen_nb recipe: it was not made by imagegen_nb, or was saved "
                         "without one (use ig.save(image, path) to keep it)")
    try:
        data = json.loads(text)
    except (TypeError, ValueError) as err:
        raise RecipeError(f"this picture's recipe is damaged: it is not valid JSON ({err})") from None
    return Recipe.from_dict(data)


def recipe(image_or_path) -> dict[str, Any]:
    """The recipe of a picture made by imagegen_nb, from the image itself or a PNG saved with `ig.save`.

    Raises ValueError when the picture carries no recipe, `ig.RecipeError` when it is damaged.

    >>> import imagegen_nb as ig
    >>> ig.recipe(ig.generate("a blue square", seed=2))["seed"]
    2
    """
    return asdict(read(image_or_path))


def inputs_of(image: Image.Image) -> dict[str, Image.Image]:
    """The input pictures a result carries: in memory for this session's results, and a saved control picture's
    map from its PNG chunk."""
    kept = dict(image.info.get(INPUTS_KEY, {}))
    encoded = image.info.get(CONTROL_MAP_KEY)
    if "control_image" not in kept and isinstance(encoded, str):
        try:
            control_map = Image.open(io.BytesIO(base64.b64decode(encoded, validate=True)))
            control_map.load()
        except Exception as err:  # a damaged chunk: say so rather than make a different picture
            raise RecipeError(f"this picture's control map is damaged ({type(err).__name__}); pass "
                              "control_image= to make it again") from None
        kept["control_image"] = control_map.convert("RGB")
    return kept


def next_free(path: Path) -> Path:
    """`path` if no file is there, else the first of `stem-2.png`, `stem-3.png`, ... that is free."""
    if not path.exists():
        return path
    k = 2
    while (candidate := path.with_name(f"{path.stem}-{k}{path.suffix}")).exists():
        k += 1
    return candidate


def save(image: Image.Image, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write a picture as PNG with its recipe in text chunks (JSON under "imagegen_nb", and "parameters"), and a
    control picture's map, so `ig.regenerate(path)` can make it again. Returns the path written.

    An existing file is never replaced unless `overwrite=True`. A folder as `path` saves into it under the next
    free name (`image.png`, `image-2.png`, ...).

    >>> import imagegen_nb as ig, tempfile, os
    >>> path = ig.save(ig.generate("a blue square", seed=3), os.path.join(tempfile.mkdtemp(), "out.png"))
    >>> ig.recipe(path)["prompt"]
    'a blue square'
    """
    if not isinstance(image, Image.Image):
        raise TypeError(f"image must be a PIL image, not {type(image).__name__}")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a string or a path, not {type(path).__name__}")
    overwrite = arguments.flag("overwrite", overwrite)
    path = Path(path).expanduser()
    if path.is_dir():
        path = next_free(path / "image.png")
    if path.suffix.lower() not in (".png", ""):
        raise ValueError(f"ig.save writes PNG (the format that keeps the recipe), not {path.suffix}; "
                         "use a .png path, or image.save(path) to write without the recipe")
    if path.suffix == "":
        path = path.with_suffix(".png")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{str(path)!r} already exists; pass overwrite=True to replace it, or another name")
    info = PngImagePlugin.PngInfo()
    text = image.info.get(INFO_KEY)
    if text is not None:
        r = read(image)
        chunks = {INFO_KEY: text, "parameters": r.parameters()}
        control_map = image.info.get(INPUTS_KEY, {}).get("control_image")
        if control_map is not None:
            chunks[CONTROL_MAP_KEY] = _png_base64(control_map)
        for key, value in chunks.items():
            if len(value) > PngImagePlugin.MAX_TEXT_CHUNK:
                raise ValueError(f"the picture's {key} is {len(value)} bytes, more than a PNG text chunk that "
                                 f"Pillow reads back ({PngImagePlugin.MAX_TEXT_CHUNK}); shorten the prompt or the "
                                 "pipeline arguments, or save with image.save(path) without the recipe")
            info.add_text(key, value, zip=key == CONTROL_MAP_KEY)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, pnginfo=info)
    return path


def _png_base64(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def model_name(model: str | None) -> str:
    """A model's name as other tools show it: the built-in's name, a Hub id, or a local folder's or file's name
    (never the absolute path, which says where the user keeps files)."""
    if model is None:
        return "tiny"
    path = Path(model)
    return path.stem if path.is_absolute() or path.exists() else model


def weights_hash(model: str | None) -> str | None:
    """A1111's "Model hash": the first 10 hex digits of the sha256 of the model's weights file (a single-file
    checkpoint, or a diffusers folder's UNet or transformer weights); None for a Hub id not on this disk."""
    from .registry import builtin_path

    path = builtin_path() if model is None else Path(model)
    if path.is_dir():
        found = sorted(path.glob("unet/*.safetensors")) + sorted(path.glob("transformer/*.safetensors"))
        if not found:
            return None
        path = found[0]
    if not path.is_file():
        return None
    return _sha256_prefix(str(path.resolve()), path.stat().st_mtime_ns, path.stat().st_size)


def file_hash(path: str | os.PathLike) -> str:
    """The first 10 hex digits of a file's sha256 (remembered while the file's size and time stay the same)."""
    path = Path(path)
    stat = path.stat()
    return _sha256_prefix(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


def _sha256_prefix(path: str, mtime_ns: int, size: int) -> str:
    key = (path, mtime_ns, size)
    if key not in _HASHES:
        import hashlib

        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _HASHES[key] = digest.hexdigest()[:10]
    return _HASHES[key]


_HASHES: dict[tuple, str] = {}
