"""Model families and their defaults: the built-in model, the known Hub families, and how a model id maps to one.

>>> import imagegen_nb as ig
>>> ig.models()[0].name
'tiny'
>>> ig.registry.family_of("stabilityai/sd-turbo").default_steps
1
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ModelNotFoundError, UnsafeModelFileError, UnsupportedTaskError

TASKS = ("generate", "edit", "inpaint", "control")
TASK_INPUTS = {"generate": (), "edit": ("image",), "inpaint": ("image", "mask"), "control": ("control_image",)}
BUILTIN = "tiny"  # the name of the built-in teaching model
BUILTIN_DIT = "tiny-dit"  # the built-in model's transformer form (imagegen_nb.tiny.dit)
BUILTIN_IP_ADAPTER = "builtin:style"  # the built-in U-Net model's IP-Adapter (style=; tiny.ip_adapter_path)


@dataclass(frozen=True)
class Family:
    """A kind of model, with the settings its makers recommend.

    `size_factor` is what width and height must be multiples of (VAE downsampling x patch size).
    """

    name: str
    pipeline: str  # the diffusers text-to-image pipeline class
    default_size: int
    default_steps: int
    default_guidance: float
    size_factor: int = 8
    tasks: tuple[str, ...] = TASKS
    repo_ids: tuple[str, ...] = ()  # known Hub ids of this family; the first is the family's usual model
    controlnets: dict[str, str] = field(default_factory=dict)  # kind -> default ControlNet id
    control_image_arg: str = "control_image"  # SD and SDXL text-to-image call it `image`
    call_kwargs: dict = field(default_factory=dict)  # always passed to the pipeline
    default_scheduler: str | None = None  # None: the scheduler the model ships with
    flow: bool = False  # trained by flow matching (velocity prediction) rather than noise prediction
    guidance_off_at: float = 1.0  # classifier-free guidance (and so negative_prompt) works above this guidance_scale
    true_cfg: bool = False  # guidance-distilled: a negative prompt needs true_cfg_scale > 1 (FLUX)
    # Z-Image mixes cond + g (cond - uncond) = uncond + (g + 1)(cond - uncond): ordinary CFG's w is g + this
    guidance_offset: float = 0.0
    # style= (imagegen_nb.style): the published IP-Adapter loaded by default, as "owner/repo/subfolder/file"; its
    # image encoder is the `image_encoder` folder beside the file. None: the family has none by default.
    ip_adapter: str | None = None
    ip_adapter_encoder: str | None = None  # its image encoder's Hub id, when that is not beside the file
    # the attention layers that carry a reference picture's style and not its content (InstantStyle); the others
    # get scale 0. Empty: every layer, at style_scale.
    style_layers: tuple[str, ...] = ()
    default_style_scale: float = 0.6
    description: str = ""

    @property
    def controlnet_class(self) -> str:
        """The diffusers class this family's ControlNets load with (also their config.json's `_class_name`)."""
        return _CONTROLNET_CLASS.get(self.pipeline, "ControlNetModel")

    def check_task(self, task: str) -> None:
        if task not in self.tasks:
            raise UnsupportedTaskError(
                f"{self.name} models support {', '.join(self.tasks)}, not {task}: diffusers has no {task} "
                f"pipeline for {self.pipeline}. Use a family that has one (see ig.models()).")


_SDXL_IP_ADAPTER = "h94/IP-Adapter/sdxl_models/ip-adapter_sdxl.safetensors"
# InstantStyle (Wang et al. 2024) found SDXL's style in one block: the second attention of the first up block
_SDXL_STYLE_LAYERS = ("up_blocks.0.attentions.1",)

# XLabs' IP-Adapter for FLUX.1-dev (diffusers' FLUX IP-Adapter docs), read with OpenAI's CLIP ViT-L/14
_FLUX_IP_ADAPTER = dict(ip_adapter="XLabs-AI/flux-ip-adapter/ip_adapter.safetensors",
                        ip_adapter_encoder="openai/clip-vit-large-patch14", default_style_scale=1.0)

FAMILIES: dict[str, Family] = {f.name: f for f in [
    Family("tiny", "StableDiffusionPipeline", 64, 12, 4.0, control_image_arg="image",
           controlnets={"canny": "builtin:canny", "segmentation": "builtin:segmentation"},
           ip_adapter=BUILTIN_IP_ADAPTER, default_style_scale=0.7,
           description="built-in teaching model: flat shapes on plain backgrounds, 64x64, fast on CPU"),
    # Z-Image's guidance g combines pos + g (pos - neg): ordinary classifier-free guidance at scale g + 1
    Family(BUILTIN_DIT, "ZImagePipeline", 64, 8, 3.0, flow=True, size_factor=8, tasks=("generate", "edit", "inpaint"),
           guidance_off_at=0.0, guidance_offset=1.0,
           description="built-in teaching model, transformer form: the same shapes world, a single-stream "
                       "flow-matching DiT run by ZImagePipeline"),
    Family("sd15", "StableDiffusionPipeline", 512, 30, 7.5, control_image_arg="image",
           repo_ids=("stable-diffusion-v1-5/stable-diffusion-v1-5", "runwayml/stable-diffusion-v1-5"),
           controlnets={"canny": "lllyasviel/control_v11p_sd15_canny", "depth": "lllyasviel/control_v11f1p_sd15_depth",
                        "pose": "lllyasviel/control_v11p_sd15_openpose",
                        "scribble": "lllyasviel/control_v11p_sd15_scribble",
                        "lineart": "lllyasviel/control_v11p_sd15_lineart",
                        "softedge": "lllyasviel/control_v11p_sd15_softedge"},
           ip_adapter="h94/IP-Adapter/models/ip-adapter_sd15.safetensors",
           description="Stable Diffusion 1.5, 512x512"),
    Family("sd-turbo", "StableDiffusionPipeline", 512, 1, 0.0, control_image_arg="image",
           repo_ids=("stabilityai/sd-turbo",), description="SD-Turbo: one-step distilled SD 2.1, 512x512"),
    Family("sdxl", "StableDiffusionXLPipeline", 1024, 30, 5.0, control_image_arg="image",
           repo_ids=("stabilityai/stable-diffusion-xl-base-1.0",),
           controlnets={"canny": "diffusers/controlnet-canny-sdxl-1.0",
                        "depth": "diffusers/controlnet-depth-sdxl-1.0"},
           ip_adapter=_SDXL_IP_ADAPTER, style_layers=_SDXL_STYLE_LAYERS, default_style_scale=1.0,
           description="Stable Diffusion XL, 1024x1024"),
    Family("sdxl-turbo", "StableDiffusionXLPipeline", 512, 1, 0.0, control_image_arg="image",
           repo_ids=("stabilityai/sdxl-turbo",), ip_adapter=_SDXL_IP_ADAPTER, style_layers=_SDXL_STYLE_LAYERS,
           default_style_scale=1.0, description="SDXL-Turbo: one-step distilled SDXL, 512x512"),
    Family("sd3", "StableDiffusion3Pipeline", 1024, 28, 7.0, flow=True, size_factor=16,
           repo_ids=("stabilityai/stable-diffusion-3-medium-diffusers", "stabilityai/stable-diffusion-3.5-medium"),
           controlnets={"canny": "InstantX/SD3-Controlnet-Canny"},
           description="Stable Diffusion 3 (flow matching, MMDiT)"),
    Family("flux-schnell", "FluxPipeline", 1024, 4, 0.0, flow=True, size_factor=16,
           repo_ids=("black-forest-labs/FLUX.1-schnell",),
           controlnets={"canny": "InstantX/FLUX.1-dev-Controlnet-Canny"},
           call_kwargs={"max_sequence_length": 256}, true_cfg=True, **_FLUX_IP_ADAPTER,
           description="FLUX.1-schnell: 4-step distilled flow matching"),
    Family("flux-dev", "FluxPipeline", 1024, 28, 3.5, flow=True, size_factor=16,
           repo_ids=("black-forest-labs/FLUX.1-dev",),
           controlnets={"canny": "InstantX/FLUX.1-dev-Controlnet-Canny"}, true_cfg=True, **_FLUX_IP_ADAPTER,
           description="FLUX.1-dev: guidance-distilled flow matching"),
    Family("zimage-turbo", "ZImagePipeline", 1024, 9, 0.0, flow=True, size_factor=16,
           repo_ids=("Tongyi-MAI/Z-Image-Turbo",), guidance_off_at=0.0, guidance_offset=1.0,
           controlnets={"canny": "alibaba-pai/Z-Image-Turbo-Fun-Controlnet-Union"},
           description="Z-Image Turbo: 8-step distilled single-stream DiT"),
    Family("pixart-sigma", "PixArtSigmaPipeline", 1024, 20, 4.5, tasks=("generate",),
           repo_ids=("PixArt-alpha/PixArt-Sigma-XL-2-1024-MS",), call_kwargs={"clean_caption": False},
           description="PixArt-Sigma (T5 + DiT)"),
    Family("sana", "SanaPipeline", 1024, 20, 4.5, flow=True, size_factor=32, tasks=("generate",),
           repo_ids=("Efficient-Large-Model/Sana_1600M_1024px_diffusers",), description="Sana (linear DiT, DC-AE)"),
]}

# text-to-image pipeline class -> its ControlNet model class (SD and SDXL share ControlNetModel)
_CONTROLNET_CLASS = {"StableDiffusion3Pipeline": "SD3ControlNetModel", "FluxPipeline": "FluxControlNetModel",
                     "ZImagePipeline": "ZImageControlNetModel"}

# model_index.json class -> family, for ids the registry does not list
_BY_CLASS = {
    "StableDiffusionPipeline": "sd15", "StableDiffusionXLPipeline": "sdxl", "StableDiffusion3Pipeline": "sd3",
    "FluxPipeline": "flux-dev", "ZImagePipeline": "zimage-turbo", "PixArtSigmaPipeline": "pixart-sigma",
    "SanaPipeline": "sana",
}
_BY_REPO = {rid.lower(): f for f in FAMILIES.values() for rid in f.repo_ids}


def models() -> list[Family]:
    """Every family the registry knows, the built-in model first.

    >>> [f.name for f in models()][:3]
    ['tiny', 'tiny-dit', 'sd15']
    """
    return list(FAMILIES.values())


def builtin_path() -> Path:
    from .tiny import model_path

    return model_path()


def builtin_dit_path() -> Path:
    from .tiny import model_path

    return model_path("dit")


def builtin_ip_adapter_path() -> Path:
    """The built-in U-Net model's IP-Adapter weights file (`ip_adapter="builtin:style"`)."""
    from .tiny import ip_adapter_path

    return ip_adapter_path()


# the tokenizer classes a word-level tokenizer.json saves as (transformers 5, 4); Z-Image's own is Qwen2Tokenizer
_WORD_TOKENIZERS = ("TokenizersBackend", "PreTrainedTokenizerFast")


BUILTIN_CONTROLNET = "builtin:"  # prefix of the built-in model's ControlNet ids ("builtin:canny")


def resolve_controlnet(controlnet: str) -> str:
    """The location to load a ControlNet id from: a "builtin:KIND" id is the built-in model's ControlNet folder;
    any other id (a Hub id or a local folder) is returned as it is.

    >>> resolve_controlnet("lllyasviel/control_v11p_sd15_canny")
    'lllyasviel/control_v11p_sd15_canny'
    >>> Path(resolve_controlnet("builtin:canny")).name
    'controlnet-canny'
    """
    if not controlnet.startswith(BUILTIN_CONTROLNET):
        return controlnet
    from .tiny import controlnet_path

    kind = controlnet.removeprefix(BUILTIN_CONTROLNET)
    path = controlnet_path(kind)
    if not (path / "config.json").exists():
        shipped = sorted(c for c in FAMILIES[BUILTIN].controlnets.values())
        raise ModelNotFoundError(f"the built-in model has no {kind!r} ControlNet; it ships {', '.join(shipped)}")
    return str(path)


PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl")


def resolve(model: str | Path | None, *, allow_pickle: bool = False) -> tuple[str, Family]:
    """The location to load (Hub id, folder or single file) and the family of a model; None is the built-in model.

    A single checkpoint file's family is read from its keys (`family_of_checkpoint`). Pickle files (.ckpt, .bin,
    ...) can run code when loaded, so they are refused unless `allow_pickle=True`.
    """
    if model is None or str(model) == BUILTIN:
        return str(builtin_path()), FAMILIES[BUILTIN]
    if str(model) == BUILTIN_DIT:
        return str(builtin_dit_path()), FAMILIES[BUILTIN_DIT]
    path = Path(str(model)).expanduser()
    if path.suffix.lower() in PICKLE_SUFFIXES + (".safetensors",):
        if path.suffix.lower() != ".safetensors" and not allow_pickle:
            raise UnsafeModelFileError(
                f"{str(model)!r} is a pickle file ({path.suffix}), which can run arbitrary code when loaded; "
                "imagegen_nb loads safetensors only. Convert it to safetensors, or pass allow_pickle=True if you "
                "trust it.")
        if not path.is_file():
            raise ModelNotFoundError(f"no file at {str(model)!r}")
        return str(path), family_of_checkpoint(path)
    return str(model), family_of(model)


# diffusers' name for a single-file checkpoint's layout (single_file_utils.infer_diffusers_model_type) -> family
_CHECKPOINT_FAMILIES = {"v1": "sd15", "xl_base": "sdxl", "sd3": "sd3", "sd35_medium": "sd3", "sd35_large": "sd3",
                        "flux-dev": "flux-dev", "flux-schnell": "flux-schnell"}


class _Shapes(dict):
    """A checkpoint's tensor names -> objects with `.shape`, read from the file's header: what diffusers' layout
    detection asks of a state dict, without loading a single weight."""

    class _Shape:
        def __init__(self, shape):
            self.shape = tuple(shape)

    def __init__(self, handle):
        super().__init__((k, None) for k in handle.keys())
        self._handle = handle

    def __getitem__(self, key):
        return self._Shape(self._handle.get_slice(key).get_shape())


def family_of_checkpoint(path: str | Path) -> Family:
    """The family of a single-file checkpoint (A1111/ComfyUI layout), read from its tensor names and shapes as
    diffusers reads them: SD 1.x, SDXL base, SD3/3.5 and FLUX.1 dev/schnell load through `from_single_file`. Any
    other layout is an error naming what was found.

    >>> import tempfile, torch
    >>> from safetensors.torch import save_file
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     file = f"{folder}/model.safetensors"
    ...     save_file({"model.diffusion_model.output_blocks.11.0.skip_connection.weight": torch.zeros(1)}, file)
    ...     family_of_checkpoint(file).name
    'sd15'
    """
    path = Path(path)
    if path.suffix.lower() != ".safetensors":  # a pickle the caller allowed: diffusers reads it, we cannot peek
        return FAMILIES["sd15"]
    from diffusers.loaders.single_file_utils import CHECKPOINT_KEY_NAMES, infer_diffusers_model_type
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            shapes = _Shapes(handle)
            kind = infer_diffusers_model_type(shapes) if len(shapes) else "empty"
            if kind == "v1" and CHECKPOINT_KEY_NAMES["v1"] not in shapes:  # diffusers' answer when nothing fits
                kind = "unknown"
    except (SafetensorError, OSError) as err:
        raise ModelNotFoundError(f"{str(path)!r} could not be read as a safetensors file: {err}") from None
    if kind in _CHECKPOINT_FAMILIES:
        return FAMILIES[_CHECKPOINT_FAMILIES[kind]]
    known = ", ".join(sorted(set(_CHECKPOINT_FAMILIES.values())))
    found = {"empty": "no tensors", "unknown": "no layout diffusers knows"}.get(
        kind, f"the layout diffusers calls {kind!r}")
    raise ModelNotFoundError(f"{str(path)!r} is a single-file checkpoint with {found}, which imagegen_nb does not "
                             f"load from one file (it loads {known} checkpoints); load it with diffusers and put the "
                             "pipeline in the cache with ig.cache.add(name, pipe)")


_REGISTERED: dict[str, Family] = {}  # names given to pipelines put in the cache with ig.cache.add


def register(name: str, family: Family) -> None:
    _REGISTERED[name] = family


def family_of_class(pipeline_class: str) -> str | None:
    """The family name of a diffusers text-to-image pipeline class name (`"FluxPipeline"` -> `"flux-dev"`), or None.

    >>> family_of_class("StableDiffusionXLPipeline")
    'sdxl'
    """
    return _BY_CLASS.get(pipeline_class)


def family_of(model: str | Path) -> Family:
    """The family of a Hub id or a local diffusers folder: known ids first, then `model_index.json`'s class."""
    key = str(model)
    if key in _REGISTERED:
        return _REGISTERED[key]
    if key == BUILTIN or Path(key).resolve() == builtin_path().resolve():
        return FAMILIES[BUILTIN]
    if key == BUILTIN_DIT or Path(key).resolve() == builtin_dit_path().resolve():
        return FAMILIES[BUILTIN_DIT]
    if key.lower() in _BY_REPO:
        return _BY_REPO[key.lower()]
    if key in FAMILIES:
        raise ModelNotFoundError(
            f"{key!r} is a family name, not a model; pass a Hub id such as {FAMILIES[key].repo_ids[0]!r} "
            "or a local diffusers folder")
    index = _model_index(key)
    family = _family_of_index(index)
    if family is None:
        raise ModelNotFoundError(f"{key!r} is a {index.get('_class_name') or 'model'} pipeline, which imagegen_nb "
                                 f"does not know; known pipelines: {', '.join(sorted(_BY_CLASS))}")
    return family


# a task pipeline's class is its text-to-image class with one of these in place of "Pipeline" (longest first)
_TASK_SUFFIXES = ("ControlNetImg2ImgPipeline", "ControlNetInpaintPipeline", "ControlNetPipeline", "Img2ImgPipeline",
                  "InpaintPipeline", "Pipeline")


def _family_of_index(index: dict) -> Family | None:
    """The family of a `model_index.json` (or the same facts read off a loaded pipeline), or None."""
    cls = index.get("_class_name", "")
    base = next((cls.removesuffix(s) + "Pipeline" for s in _TASK_SUFFIXES if cls.endswith(s)), cls)
    if base == "StableDiffusionPipeline" and (index.get("text_encoder") or [None, None])[1] == "T5EncoderModel":
        return FAMILIES[BUILTIN]  # a model of the built-in kind (e.g. one trained with imagegen_nb.tiny.train)
    if base == "ZImagePipeline" and (index.get("tokenizer") or [None, None])[1] in _WORD_TOKENIZERS:
        return FAMILIES[BUILTIN_DIT]  # the built-in transformer's kind (e.g. one trained with tiny.train_dit)
    return FAMILIES[_BY_CLASS[base]] if base in _BY_CLASS else None


def family_of_pipeline(pipe) -> str | None:
    """The family name of a loaded diffusers pipeline, from its class and components (the same facts that
    `model_index.json` holds), or None for a pipeline imagegen_nb does not know.

    >>> from imagegen_nb import testing
    >>> import tempfile, diffusers
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     pipe = diffusers.DiffusionPipeline.from_pretrained(testing.make_tiny_model("sdxl", folder))
    >>> family_of_pipeline(pipe), family_of_pipeline(diffusers.StableDiffusionXLImg2ImgPipeline(**pipe.components))
    ('sdxl', 'sdxl')
    """
    index = {"_class_name": type(pipe).__name__}
    for part in ("text_encoder", "tokenizer"):
        component = getattr(pipe, part, None)
        if component is not None:
            index[part] = [type(component).__module__.split(".")[0], type(component).__name__]
    family = _family_of_index(index)
    return family.name if family is not None else None


def _model_index(key: str) -> dict:
    path = Path(key).expanduser()
    if path.is_dir():
        index = path / "model_index.json"
        if not index.exists():
            raise ModelNotFoundError(f"{path} has no model_index.json, so it is not a diffusers pipeline folder "
                                     "(save one with pipe.save_pretrained(folder))")
        return json.loads(index.read_text())
    if path.suffix or path.exists() or key.startswith((".", "/", "~")):
        raise ModelNotFoundError(f"no diffusers folder at {key!r}")
    try:
        from huggingface_hub import hf_hub_download

        return json.loads(Path(hf_hub_download(key, "model_index.json")).read_text())
    except Exception as err:  # any failure here means: this id cannot be had from this machine
        raise ModelNotFoundError(no_download_message(key, err)) from None


def no_download_message(key: str, err: BaseException | None = None) -> str:
    why = f" ({type(err).__name__})" if err is not None else ""
    return (f"could not load {key!r}: it is not a local folder and downloading it from the Hugging Face Hub "
            f"failed{why}; no download is possible without network access. Use the built-in model "
            "(model=None), a local diffusers folder (model='path/to/folder'), or connect to the Hub and log in "
            "if the model is gated.")
