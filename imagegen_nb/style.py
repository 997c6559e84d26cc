"""Style reference pictures: the `style=` and `style_scale=` arguments of the task functions, through IP-Adapter.

An IP-Adapter reads the reference picture with an image encoder (CLIP's vision tower), projects the picture's
embedding to four extra tokens, and gives every cross-attention layer a second attention that reads them beside
the prompt's tokens:

    out = Attention(q, K_text, V_text) + style_scale * Attention(q, K_image, V_image)

so the prompt keeps deciding what is drawn while the picture's look leaks in. InstantStyle's finding is that in
SDXL one block carries style and the others content, so for SDXL only that block listens (`Family.style_layers`);
elsewhere every layer does, and a style_scale around 0.5 keeps the reference's objects out.

Each IP-Adapter is loaded once per cached model, through diffusers' own `load_ip_adapter`, and installed for a call
only: afterwards the UNet has exactly the attention processors it had, so a call without `style=` makes the picture
a fresh cache would. The image encoder is loaded with the adapter and shared by all four tasks.

>>> import imagegen_nb as ig
>>> try:
...     ig.generate("a red circle", style="no-such-picture.png")
... except FileNotFoundError as err:
...     print(err)
style: no file at 'no-such-picture.png'
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from . import arguments, inputs, registry

WEIGHTS_SUFFIX = ".safetensors"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")
ENCODER_FOLDER = "image_encoder"  # beside the adapter's file, as in h94/IP-Adapter and diffusers' layout
# the diffusers pipelines whose IP-Adapters load here: SD and SDXL UNets (IPAdapterMixin) and FLUX's double-stream
# blocks (FluxIPAdapterMixin, XLabs' layout). SD3's adapter (a SigLIP encoder and a resampler) is not supported yet.
PIPELINES = ("StableDiffusionPipeline", "StableDiffusionXLPipeline", "FluxPipeline")
MAX_SCALE = 2.0  # past about 1 the reference's content takes over the prompt; 2 is far past any use


@dataclass(frozen=True)
class Adapter:
    """Where one IP-Adapter's weights and image encoder are: a local folder or a Hub repo, with the subfolder and
    file name `load_ip_adapter` takes."""

    given: str  # as the user (or the family's default) named it: what a recipe records
    location: str  # a local folder or a Hub repo id
    subfolder: str
    weight_name: str
    local: bool
    encoder: str | None = None  # the image encoder's own Hub id or folder, when it is not beside the file

    @property
    def encoder_location(self) -> str:
        return self.encoder or self.location

    @property
    def encoder_subfolder(self) -> str:
        if self.encoder:
            return ""
        return f"{self.subfolder}/{ENCODER_FOLDER}" if self.subfolder else ENCODER_FOLDER


@dataclass(frozen=True)
class Style:
    """The style reference of one call: the picture, its hash, the scale and the adapter that reads it."""

    image: Image.Image = field(repr=False)
    hash: str  # first 10 hex digits of the sha256 of its size and RGB pixels
    scale: float
    adapter: Adapter
    layers: tuple[str, ...]  # the attention layers that listen (all when empty)

    def record(self) -> dict[str, Any]:
        """The style as a recipe holds it (the picture itself travels with the image, as edit's input does)."""
        return {"hash": self.hash, "scale": self.scale, "ip_adapter": self.adapter.given}


@dataclass
class Loaded:
    """One IP-Adapter loaded into a cached model: its attention processors and projection, installed per call."""

    processors: dict[str, Any]
    projection: Any
    image_encoder: Any
    feature_extractor: Any


def picture_hash(image: Image.Image) -> str:
    """A short hash of a picture's size and RGB pixels: the same picture in any file format hashes the same.

    >>> from PIL import Image
    >>> picture_hash(Image.new("RGB", (4, 4), "red")) == picture_hash(Image.new("RGB", (4, 4), (255, 0, 0)))
    True
    """
    rgb = image.convert("RGB")
    return hashlib.sha256(f"{rgb.width}x{rgb.height}:".encode() + rgb.tobytes()).hexdigest()[:10]


def _adapter(given, family: registry.Family, *, allow_pickle: bool) -> Adapter:
    """The IP-Adapter `given` names (None: the family's default), found but not loaded."""
    if given is None:
        if family.ip_adapter is None:
            what = "the built-in model has" if family.name == registry.BUILTIN else f"{family.name} models have"
            raise ValueError(f"style= needs an IP-Adapter, and {what} none by default; pass ip_adapter= the "
                             "path of one made for this model (a .safetensors file with an image_encoder folder "
                             "beside it)")
        given = family.ip_adapter
    if isinstance(given, os.PathLike):
        given = os.fspath(given)
    if given == registry.BUILTIN_IP_ADAPTER:
        path = registry.builtin_ip_adapter_path()
        if not path.is_file():
            raise FileNotFoundError(f"the built-in model's IP-Adapter is not in this installation ({path})")
        return Adapter(given, str(path.parent), "", path.name, local=True)
    if not isinstance(given, str) or not given:
        raise TypeError(f"ip_adapter must be a path or a Hub file id ('owner/repo/folder/file.safetensors'), not "
                        f"{type(given).__name__} {given!r}")
    path = Path(given).expanduser()
    suffix = path.suffix.lower()
    if suffix in PICKLE_SUFFIXES and not allow_pickle:
        raise ValueError(f"ip_adapter {given!r} is a pickle file ({suffix}), which can run code when loaded; use its "
                         ".safetensors form, or pass allow_pickle=True if you trust it")
    if suffix not in (WEIGHTS_SUFFIX, *PICKLE_SUFFIXES):
        raise ValueError(f"ip_adapter {given!r} should name the adapter's weights file (.safetensors), with its "
                         f"{ENCODER_FOLDER} folder beside it")
    if path.is_file():
        if not (path.parent / ENCODER_FOLDER / "config.json").is_file():
            raise FileNotFoundError(f"ip_adapter {given!r}: no {ENCODER_FOLDER}/config.json beside it; the image "
                                    "encoder the adapter was trained with must be in that folder")
        return Adapter(given, str(path.parent), "", path.name, local=True)
    parts = given.split("/")
    # the family's own adapter may keep its image encoder elsewhere (FLUX's reads OpenAI's CLIP)
    encoder = family.ip_adapter_encoder if given == family.ip_adapter else None
    if path.exists() or given.startswith((".", "/", "~")) or len(parts) < 3:
        raise FileNotFoundError(f"ip_adapter {given!r}: no such file (a Hub id names the file inside its repo: "
                                "'owner/repo/folder/file.safetensors')")
    return Adapter(given, "/".join(parts[:2]), "/".join(parts[2:-1]), parts[-1], local=False, encoder=encoder)


def check(style, style_scale, ip_adapter, family: registry.Family, *, allow_pickle: bool = False) -> Style | None:
    """The style of a call, every argument checked before any work; None when `style` is None."""
    if style is None:
        for name, value in (("style_scale", style_scale), ("ip_adapter", ip_adapter)):
            if value is not None:
                raise ValueError(f"{name}= was given without style=: pass the reference picture as style=")
        return None
    if family.pipeline not in PIPELINES:
        raise ValueError(f"style= works with Stable Diffusion 1.x, 2.x and XL models, FLUX models and the built-in "
                         f"U-Net model through their IP-Adapters; {family.name} models ({family.pipeline}) are not "
                         "supported yet")
    image = inputs.to_image(style, "style")
    scale = family.default_style_scale if style_scale is None else style_scale
    scale = arguments.number("style_scale", scale, low=0, high=MAX_SCALE,
                             hint=" (0 ignores the picture, 1 is the adapter's full strength)")
    adapter = _adapter(ip_adapter, family, allow_pickle=allow_pickle)
    return Style(image, picture_hash(image), scale, adapter, family.style_layers)


def _encoder(entry, adapter: Adapter, *, allow_pickle: bool):
    from transformers import CLIPVisionModelWithProjection

    from .cache import quiet_diffusers

    denoiser = _denoiser(entry.base)
    with quiet_diffusers():
        encoder = CLIPVisionModelWithProjection.from_pretrained(
            adapter.encoder_location, subfolder=adapter.encoder_subfolder, dtype=denoiser.dtype,
            use_safetensors=None if allow_pickle else True)
    return encoder.to(denoiser.device).eval()


def _denoiser(pipe):
    """The model the adapter's attention layers go into: the UNet, or FLUX's transformer."""
    return pipe.unet if hasattr(pipe, "unet") else pipe.transformer


def _state(denoiser) -> tuple:
    """What installing an adapter changes in a denoiser: its attention processors, its image projection and the
    config entry that tells its forward to use it (FLUX's transformer has neither of the last two before)."""
    return (dict(denoiser.attn_processors), getattr(denoiser, "encoder_hid_proj", None),
            getattr(denoiser.config, "encoder_hid_dim_type", None))


def _restore(denoiser, state: tuple) -> None:
    processors, projection, kind = state
    denoiser.set_attn_processor(processors)
    denoiser.encoder_hid_proj = projection
    denoiser.config.encoder_hid_dim_type = kind


def _load(entry, adapter: Adapter, *, allow_pickle: bool) -> Loaded:
    """Load an IP-Adapter into a cached model once; the UNet is left as it was (the adapter is installed per call)."""
    from .cache import param_bytes, quiet_diffusers
    from .errors import ModelNotFoundError

    key = adapter.given
    if key in entry.ip_adapters:
        return entry.ip_adapters[key]
    base = entry.base
    unet = _denoiser(base)
    what = f"{entry.name if entry.name != registry.BUILTIN else 'the built-in model'} ({entry.family.name})"
    original = _state(unet)
    own = {part: getattr(base, part, None) for part in ("image_encoder", "feature_extractor")}
    try:
        encoder = _encoder(entry, adapter, allow_pickle=allow_pickle)
        side = encoder.config.image_size  # each adapter reads pictures at its own encoder's size
        from transformers import CLIPImageProcessor

        processor = CLIPImageProcessor(size=side, crop_size=side)
        base.register_modules(image_encoder=encoder, feature_extractor=processor)
        encoder_kwarg = ({"image_encoder_folder": None} if hasattr(base, "unet") else
                         {"image_encoder_pretrained_model_name_or_path": None})  # (ours is registered already)
        with quiet_diffusers():
            base.load_ip_adapter(adapter.location, subfolder=adapter.subfolder, weight_name=adapter.weight_name,
                                 **encoder_kwarg)
        loaded = Loaded(dict(unet.attn_processors), unet.encoder_hid_proj, encoder, processor)
    except (OSError, ValueError, RuntimeError, KeyError) as err:
        if not adapter.local and isinstance(err, OSError):
            raise ModelNotFoundError(registry.no_download_message(adapter.given, err)) from None
        lines = [line.strip() for line in str(err).splitlines() if line.strip()] or [type(err).__name__]
        reason = next((line for line in lines if "size mismatch" in line), lines[0])
        raise ValueError(f"ip_adapter {adapter.given!r} does not fit {what}: it was made for another model "
                         f"({reason[:300]})") from None
    finally:
        _restore(unet, original)
        base.register_modules(**own)  # the base as it was: the adapter's parts are installed per call
    entry.ip_adapters[key] = loaded
    ip_modules = [p for p in loaded.processors.values() if hasattr(p, "parameters")]
    entry.nbytes += param_bytes(encoder, loaded.projection, *ip_modules)
    return loaded


def _listens(name: str, layers: tuple[str, ...]) -> bool:
    return not layers or any(name.startswith(layer + ".") for layer in layers)


@contextmanager
def applied(pipe, entry, style: Style | None, *, allow_pickle: bool = False) -> Iterator[dict[str, Any]]:
    """Run one call of `pipe` (a task pipeline of the cached model `entry`) with `style`'s IP-Adapter installed in
    the shared UNet at `style.scale`; yields the pipeline arguments to add. Afterwards the UNet has its own
    attention processors again, bit for bit the model it was."""
    if style is None:
        yield {}
        return
    loaded = _load(entry, style.adapter, allow_pickle=allow_pickle)
    unet = _denoiser(pipe)
    if style.layers and not any(_listens(name, style.layers) for name, p in loaded.processors.items()
                                if hasattr(p, "scale")):
        raise ValueError(f"none of this model's attention layers is one of {', '.join(style.layers)}, where "
                         f"{entry.family.name} models carry style; it does not have the family's architecture")
    for name, processor in loaded.processors.items():
        if hasattr(processor, "scale"):  # one scale per adapter; this call uses one adapter
            processor.scale = [style.scale if _listens(name, style.layers) else 0.0] * len(processor.scale)
    original = _state(unet)
    own = {part: getattr(pipe, part, None) for part in ("image_encoder", "feature_extractor")}
    # under CPU offload the encoder is not one of the hooked components: it goes to the GPU for the call
    device = pipe._execution_device if entry.offloaded else None
    try:
        unet.set_attn_processor(dict(loaded.processors))
        unet.encoder_hid_proj = loaded.projection
        unet.config.encoder_hid_dim_type = "ip_image_proj"
        pipe.register_modules(image_encoder=loaded.image_encoder, feature_extractor=loaded.feature_extractor)
        if device is not None:
            loaded.image_encoder.to(device)
        yield {"ip_adapter_image": style.image}
    finally:
        _restore(unet, original)
        pipe.register_modules(**own)
        if device is not None:
            loaded.image_encoder.to("cpu")
