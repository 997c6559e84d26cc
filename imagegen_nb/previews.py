"""Latent -> RGB for live previews: a tiny autoencoder where the user gives one, else a linear map from latent
channels to colour where one is known, else the VAE.

A latent pixel of a Stable Diffusion VAE summarises an 8x8 patch of the picture, and its channels are close to a
linear function of that patch's mean colour. So `rgb = latent @ W + b` (then `(rgb + 1) / 2` into [0, 1]) gives a
small, blurry but faithful picture of a latent for the cost of one 4x3 matrix product, where a VAE decode costs
as much as several denoising steps.

- A VAE folder that ships `latent_rgb.json` (the built-in models do: fitted by least squares on the shapes world
  when they are exported, `imagegen_nb.tiny.latent_rgb`): that map, read once per VAE object.
- SD 1.x/2.x, SDXL (and PixArt-Sigma, which uses the SDXL VAE), SD3, FLUX.1 (and Z-Image, which uses the FLUX.1
  VAE): the published factors that live previews in the community use (the `latent_rgb_factors` tables, first
  fitted by Keturn for SD 1.x, as collected in ComfyUI's `comfy/latent_formats.py`).
- Anything else: a full VAE decode (slow, but right).

Sharper previews, at full resolution, come from a **tiny autoencoder** (TAESD: diffusers' `AutoencoderTiny`, about
2.4 M parameters against the SD VAE's 84 M) for the family's latent space, where the user has one:
`use_tiny_autoencoder("madebyollin/taesd", family="sd15")` (`TINY_AUTOENCODERS` lists the published ones). It is
loaded once, decodes every preview of that family from then on (the Studio's, `ig.trace`'s fast pictures), and
`use_tiny_autoencoder(None, family=...)` goes back to the linear map. `python benchmarks/previews.py` measures what
each way costs a step.

>>> import imagegen_nb as ig
>>> from imagegen_nb.previews import preview_image
>>> frames = []
>>> _ = ig.generate("a red circle", seed=0, num_inference_steps=4,
...                 run=ig.Run(on_step=lambda run, step: frames.append(preview_image(step, step.pipe))))
>>> len(frames), frames[0].size
(4, (16, 16))
"""

from __future__ import annotations

import os
import warnings
import weakref
from typing import Any

from PIL import Image

__all__ = ["FACTORS", "MAP_FILE", "TINY_AUTOENCODERS", "family_of_pipe", "linear_map", "preview_image",
           "tiny_autoencoder", "use_tiny_autoencoder", "vae_decode"]

# Published latent -> RGB factors: rows are latent channels, columns R, G, B; output in [-1, 1]. They apply to
# latents in the diffusion model's scale (the VAE's output times `scaling_factor`, after `shift_factor`), which is
# what diffusers' denoising loops carry.
_SD15 = ([[0.3512, 0.2297, 0.3227], [0.3250, 0.4974, 0.2350], [-0.2829, 0.1762, 0.2721],
          [-0.2120, -0.2616, -0.7177]], [0.0, 0.0, 0.0])
_SDXL = ([[0.3651, 0.4232, 0.4341], [-0.2533, -0.0042, 0.1068], [0.1076, 0.1111, -0.0362],
          [-0.3165, -0.2492, -0.2188]], [0.1084, -0.0175, -0.0011])
_SD3 = ([[-0.0922, -0.0175, 0.0749], [0.0311, 0.0633, 0.0954], [0.1994, 0.0927, 0.0458], [0.0856, 0.0339, 0.0902],
         [0.0587, 0.0272, -0.0496], [-0.0006, 0.1104, 0.0309], [0.0978, 0.0306, 0.0427], [-0.0042, 0.1038, 0.1358],
         [-0.0194, 0.0020, 0.0669], [-0.0488, 0.0130, -0.0268], [0.0922, 0.0988, 0.0951], [-0.0278, 0.0524, -0.0542],
         [0.0332, 0.0456, 0.0895], [-0.0069, -0.0030, -0.0810], [-0.0596, -0.0465, -0.0293],
         [-0.1448, -0.1463, -0.1189]], [0.2394, 0.2135, 0.1925])
_FLUX = ([[-0.0346, 0.0244, 0.0681], [0.0034, 0.0210, 0.0687], [0.0275, -0.0668, -0.0433], [-0.0174, 0.0160, 0.0617],
          [0.0859, 0.0721, 0.0329], [0.0004, 0.0383, 0.0115], [0.0405, 0.0861, 0.0915], [-0.0236, -0.0185, -0.0259],
          [-0.0245, 0.0250, 0.1180], [0.1008, 0.0755, -0.0421], [-0.0515, 0.0201, 0.0011], [0.0428, -0.0012, -0.0036],
          [0.0817, 0.0765, 0.0749], [-0.1264, -0.0522, -0.1103], [-0.0280, -0.0881, -0.0499],
          [-0.1262, -0.0982, -0.0778]], [-0.0329, -0.0718, -0.0851])
FACTORS: dict[str, tuple[list[list[float]], list[float]]] = {
    "sd15": _SD15, "sd-turbo": _SD15, "sdxl": _SDXL, "sdxl-turbo": _SDXL, "pixart-sigma": _SDXL,
    "sd3": _SD3, "flux-schnell": _FLUX, "flux-dev": _FLUX, "zimage-turbo": _FLUX,
}

MAP_FILE = "latent_rgb.json"  # a VAE folder's own map: {"weights": C x 3, "bias": 3}

# The published tiny autoencoders (madebyollin's TAESD family) for the latent spaces the registry's families use.
TINY_AUTOENCODERS: dict[str, str] = {
    "sd15": "madebyollin/taesd", "sd-turbo": "madebyollin/taesd", "sdxl": "madebyollin/taesdxl",
    "sdxl-turbo": "madebyollin/taesdxl", "pixart-sigma": "madebyollin/taesdxl", "sd3": "madebyollin/taesd3",
    "flux-schnell": "madebyollin/taef1", "flux-dev": "madebyollin/taef1", "zimage-turbo": "madebyollin/taef1",
}

_tiny: dict[str, Any] = {}  # family -> AutoencoderTiny, as the user set it
_tiny_on_device: dict[tuple[str, str, str], Any] = {}  # (family, device, dtype) -> that autoencoder moved there
_shipped: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # VAE module -> (W, b) or None
_on_device: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # VAE module -> {(device, family): (W, b)}


def family_of_pipe(pipe) -> str | None:
    """The registry family of a pipeline: the shared cache's entry that holds it, else the registry's reading of
    its class and components."""
    from . import cache, registry

    held = cache.shared.family_of(pipe)
    return held if held is not None else registry.family_of_pipeline(pipe)


def use_tiny_autoencoder(autoencoder, *, family: str, allow_pickle: bool = False) -> None:
    """Decode the previews of `family`'s models with a tiny autoencoder: an `AutoencoderTiny`, a local folder or a
    Hub id (loaded once, in float32 on the CPU; moved to a run's device the first time it is needed). None goes
    back to the linear map (or the VAE).

    >>> from diffusers import AutoencoderTiny
    >>> from imagegen_nb import previews
    >>> previews.use_tiny_autoencoder(AutoencoderTiny(decoder_block_out_channels=(8, 8, 8, 8)), family="sd15")
    >>> previews.tiny_autoencoder("sd15").config.latent_channels
    4
    >>> previews.use_tiny_autoencoder(None, family="sd15")
    >>> previews.tiny_autoencoder("sd15") is None
    True
    """
    from . import arguments, registry

    family = arguments.choice("family", family, tuple(registry.FAMILIES))
    for key in [k for k in _tiny_on_device if k[0] == family]:
        del _tiny_on_device[key]
    if autoencoder is None:
        _tiny.pop(family, None)
        return
    from diffusers import AutoencoderTiny

    if isinstance(autoencoder, AutoencoderTiny):
        _tiny[family] = autoencoder.eval()
        return
    if not isinstance(autoencoder, (str, os.PathLike)):
        raise TypeError(f"autoencoder must be an AutoencoderTiny, a folder or a Hub id (e.g. "
                        f"{TINY_AUTOENCODERS.get(family, 'madebyollin/taesd')!r}), or None, not "
                        f"{type(autoencoder).__name__}")
    from . import cache
    from .errors import ModelNotFoundError

    source = os.fspath(autoencoder)
    try:
        with cache.quiet_diffusers():
            _tiny[family] = AutoencoderTiny.from_pretrained(source, use_safetensors=not allow_pickle).eval()
    except (OSError, ValueError) as err:
        raise ModelNotFoundError(f"no tiny autoencoder could be loaded from {source!r} ({type(err).__name__}: "
                                 f"{str(err).splitlines()[0] if str(err) else ''}); give a folder saved by "
                                 "AutoencoderTiny.save_pretrained or a Hub id such as "
                                 f"{TINY_AUTOENCODERS.get(family, 'madebyollin/taesd')!r}") from None


def tiny_autoencoder(family: str | None):
    """The tiny autoencoder set for `family` with `use_tiny_autoencoder`, or None."""
    return _tiny.get(family) if family is not None else None


def _tiny_on(latent, family: str | None):
    """The family's tiny autoencoder on the latent's device and dtype (moved once), if one is set and fits."""
    ae = tiny_autoencoder(family)
    if ae is None:
        return None
    if ae.config.latent_channels != latent.shape[1]:
        warnings.warn(f"the tiny autoencoder set for {family} takes {ae.config.latent_channels} latent channels, "
                      f"but this model's latents have {latent.shape[1]}; previewing without it", stacklevel=3)
        return None
    key = (family, str(latent.device), str(latent.dtype))
    if key not in _tiny_on_device:
        import copy

        moved = ae if (next(ae.parameters()).device, next(ae.parameters()).dtype) == (latent.device, latent.dtype) \
            else copy.deepcopy(ae).to(latent.device, latent.dtype)
        _tiny_on_device[key] = moved
    return _tiny_on_device[key]


def linear_map(family: str | None, pipe=None):
    """(W, b) for a family (published table), or the map the pipeline's VAE folder ships (`latent_rgb.json`);
    None if neither. A shipped map is read once per VAE object.
    """
    import torch

    if family in FACTORS:
        w, b = FACTORS[family]
        return torch.tensor(w), torch.tensor(b)
    vae = getattr(pipe, "vae", None) if pipe is not None else None
    if vae is None:
        return None
    if vae not in _shipped:
        _shipped[vae] = _read_map(vae)
    return _shipped[vae]


def _read_map(vae):
    import json
    from pathlib import Path

    import torch

    folder = vae.config.get("_name_or_path")
    path = Path(folder) / MAP_FILE if folder else None
    if path is None or not path.is_file():
        return None
    data = json.loads(path.read_text())
    w, b = torch.tensor(data["weights"], dtype=torch.float32), torch.tensor(data["bias"], dtype=torch.float32)
    if w.shape != (vae.config.latent_channels, 3) or b.shape != (3,):
        return None  # a map for another VAE: decode instead of showing wrong colours
    return w, b


def _map_on(latent, family: str | None, pipe):
    """The linear map moved to the latent's device and dtype once, not every step."""
    vae = getattr(pipe, "vae", None)
    key = (str(latent.device), family)
    if vae is not None:
        per_vae = _on_device.setdefault(vae, {})
        if key in per_vae:
            return per_vae[key]
    wb = linear_map(family, pipe)
    if wb is not None:
        wb = (wb[0].to(latent.device), wb[1].to(latent.device))
        if vae is not None:
            _on_device[vae][key] = wb
    return wb


def _unpack(latent, size: tuple[int, int] | None):
    """FLUX-style packed latents (B, tokens, C*4) -> (B, C, h, w): each token is a 2x2 patch of latent pixels."""
    b, tokens, packed = latent.shape
    if size is not None:
        h2, w2 = size[1] // 2, size[0] // 2  # size is (latent width, latent height)
    else:
        side = int(round(tokens**0.5))
        if side * side != tokens:
            raise ValueError(f"packed latents of {tokens} tokens are not square; pass size=(latent_width, "
                             "latent_height)")
        h2 = w2 = side
    c = packed // 4
    x = latent.reshape(b, h2, w2, c, 2, 2).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, c, h2 * 2, w2 * 2)


def preview_image(step_or_latent: Any, pipe=None, *, family: str | None = None,
                  size: tuple[int, int] | None = None) -> Image.Image:
    """A quick picture of a latent: of `step.x0` (the model's current guess of the clean latent) for a `Step`.

    `pipe` defaults to the step's pipeline; `family` to the pipeline's registry family. With a linear map this is
    one (h*w x C) @ (C x 3) product and a copy of h*w*3 bytes: no VAE. The picture has latent resolution (1/8 or,
    for the built-in model, 1/4 of the image's side) and shows enlarged with crisp pixels in a notebook. With a
    tiny autoencoder set for the family (`use_tiny_autoencoder`) it is that decoder's full-size picture instead.
    Packed FLUX latents (1 x tokens x 64) are unpacked first; `size=(latent_width, latent_height)` is needed
    when the image is not square.

    >>> import torch
    >>> from imagegen_nb.previews import preview_image
    >>> preview_image(torch.zeros(1, 4, 64, 64), family="sd15").size
    (64, 64)
    """
    import torch

    from .display import enlarge_when_small

    latent = getattr(step_or_latent, "x0", None)
    if latent is None:
        latent = step_or_latent
    else:
        pipe = pipe if pipe is not None else getattr(step_or_latent, "pipe", None)
    if not isinstance(latent, torch.Tensor):
        raise TypeError(f"preview_image needs a Step or a latent tensor, not {type(step_or_latent).__name__}")
    if family is None and pipe is not None:
        family = family_of_pipe(pipe)
    if latent.ndim == 4:
        latent = latent[:1]
    elif latent.ndim == 3 and family is not None and family.startswith("flux"):
        latent = _unpack(latent[:1], size)
    elif latent.ndim == 3:
        latent = latent[None]
    else:
        raise ValueError(f"expected a latent of shape (B, C, H, W) or (C, H, W), not {tuple(latent.shape)}")
    with torch.inference_mode():
        ae = _tiny_on(latent, family)
        if ae is not None:
            # the formula a pipeline applies when the tiny autoencoder stands in for its VAE
            z = latent / ae.config.scaling_factor + (ae.config.shift_factor or 0.0)
            decoded = ae.decode(z, return_dict=False)[0][0]  # (3, H, W) in [-1, 1]
            pixels = ((decoded.float() + 1.0) * 127.5).clamp(0, 255).round().to(torch.uint8)
            return enlarge_when_small(Image.fromarray(pixels.permute(1, 2, 0).cpu().numpy(), "RGB"))
        wb = _map_on(latent, family, pipe)
        if wb is None:
            if pipe is None:
                raise ValueError("no linear latent -> RGB map is known for this latent's family; pass the "
                                 "pipeline (pipe=) to decode it with its VAE, or family= one of "
                                 f"{', '.join(FACTORS)}")
            return vae_decode(latent, pipe)
        w, b = wb
        if w.shape[0] != latent.shape[1]:
            # a model of a known family with another VAE (e.g. a test build): the table does not apply
            if pipe is None:
                raise ValueError(f"the {family} preview map takes {w.shape[0]} latent channels, but the latent "
                                 f"has {latent.shape[1]}; pass the pipeline (pipe=) to decode it with its VAE")
            return vae_decode(latent, pipe)
        # rgb = latent @ W + b in [-1, 1], then to bytes: (rgb + 1) / 2 * 255
        rgb = torch.einsum("chw,cd->hwd", latent[0].to(w.dtype), w) + b
        pixels = ((rgb + 1.0) * 127.5).clamp(0, 255).to(torch.uint8).cpu().numpy()
    return enlarge_when_small(Image.fromarray(pixels, "RGB"))


def vae_decode(latent, pipe) -> Image.Image:
    """The full picture of a latent in the model's scale: `vae.decode(latent / scaling_factor + shift_factor)`,
    post-processed exactly as the pipeline post-processes its output (so a final latent gives the final image)."""
    import torch

    from . import cache
    from .display import enlarge_when_small

    vae = pipe.vae
    param = next(vae.parameters())
    z = latent if latent.ndim == 4 else latent[None]
    shift = vae.config.get("shift_factor") or 0.0
    z = z.to(param.device, param.dtype) / vae.config.scaling_factor + shift
    upcast = param.dtype == torch.float16 and vae.config.get("force_upcast", False)
    # Upcasting changes the shared VAE in place for a moment: hold the cache's lock so no run sees it half-cast.
    with cache.shared.lock, torch.inference_mode():
        if upcast:  # the SDXL VAE overflows in fp16; the pipelines decode it in fp32 too
            vae.to(torch.float32)
            z = z.float()
        try:
            decoded = vae.decode(z[:1], return_dict=False)[0]
        finally:
            if upcast:
                vae.to(param.dtype)
    processor = getattr(pipe, "image_processor", None)
    if processor is not None:
        image = processor.postprocess(decoded.float(), output_type="pil")[0]
    else:
        array = ((decoded[0].float() / 2 + 0.5).clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round()
        image = Image.fromarray(array.astype("uint8"))
    return enlarge_when_small(image)
