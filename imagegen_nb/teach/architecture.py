"""Lesson: two ways to build the denoiser, a U-Net or a transformer (DiT), and where each reads the prompt.

**U-Net** (Ronneberger, Fischer & Brox 2015, for segmentation; the latent diffusion U-Net of Rombach et al. 2022,
"High-Resolution Image Synthesis with Latent Diffusion Models"). The noisy latent x_t goes down through convolutional
ResNet blocks that halve its size, through a middle block, and back up, with skip connections joining each level
going down to the same level coming up. Convolutions see a few neighbouring latent pixels at a time; the picture's
overall layout is seen at the small, deep levels. Transformer blocks sit inside the convolutional levels:
self-attention among the latent pixels of that level, then **cross-attention**, where the latent pixels are the
queries and the text encoder's vectors are the keys and values,

    h <- h + softmax(Q(h) K(text)^T / sqrt(d)) V(text)        (the text enters here)

SD 1.5, SDXL and the built-in U-Net (`model=None`) work this way. The built-in one also pools the text into one
vector, adds it to the timestep embedding, and every ResNet block scales and shifts its features by it (FiLM,
Perez et al. 2018: `resnet_time_scale_shift="scale_shift"`).

**DiT** (Peebles & Xie 2023, "Scalable Diffusion Models with Transformers"). The latent is cut into p x p patches;
each patch becomes one token, a vector, through one linear layer; a plain stack of transformer blocks works on the
sequence of tokens and a final linear layer turns each token back into a patch of the prediction. Past the patch
embedding there is no convolution and no change of resolution: every block sees every token. The timestep (and a
pooled text vector where there is one) *modulates* the blocks (adaLN: a scale and shift of each block's normalised
input). How the text enters sorts the DiTs into three kinds:

- cross-attention, as in the U-Net (PixArt, Sana): the image tokens query the text.
- **MMDiT**, two streams (SD3, Esser et al. 2024, "Scaling Rectified Flow Transformers for High-Resolution Image
  Synthesis"): text tokens and image tokens keep separate weights (their own Q, K, V projections, MLPs and
  modulation), but each block's attention runs over the two sequences joined, so the image reads the text and the
  text reads the image (**joint attention**). FLUX.1 starts with 19 such double-stream blocks.
- **single-stream** (FLUX.1's 38 single blocks after its double ones; Z-Image's S3-DiT, Z-Image team 2025): one
  sequence of text and image tokens through the *same* weights. Z-Image and the built-in DiT (`model="tiny-dit"`,
  a `ZImageTransformer2DModel` run by diffusers' `ZImagePipeline`) first refine each kind alone: the context refiner
  blocks work on the text tokens only (no timestep), the noise refiner blocks on the image tokens only (modulated by
  the timestep); then the main blocks take both in one sequence. The text enters only through that joint attention.

**Patches and tokens.** A 64 x 64 picture is a 16 x 16 latent (the built-in VAE downsamples 4x); the U-Net's
convolutions and its top-level attention see its 256 latent pixels, while the DiT's 2 x 2 patches make 64 image
tokens. A 1024 x 1024 picture is a 128 x 128 latent for SD3, FLUX and Z-Image (8x), so 4096 image tokens. Attention
costs grow with the square of the sequence; everything else in a block grows linearly with it.

**Why transformers scale.** A DiT is one block repeated: to make it bigger, make it wider (the token width `dim`) or
deeper (more blocks), and the cost per token is almost all matrix multiplication, which accelerators do best.
Peebles & Xie found sample quality (FID) improving steadily with the FLOPs per step, whether the FLOPs came from a
bigger model or smaller patches (more tokens); SD3's paper found the same for MMDiTs up to 8B parameters. The U-Net
has many kinds of part (levels, ResNets, attention at some levels, skips), each a design choice that must be redone
as it grows. `hub()` builds the published architectures without weights and counts them: SD 1.5's U-Net has 0.86 B
parameters, SDXL's 2.6 B, SD3-medium's MMDiT 2.0 B, Z-Image's single-stream DiT 6.2 B and FLUX.1's 11.9 B; their
text encoders grew too (T5-XXL's encoder 4.8 B, Qwen3-4B 4.0 B).

What `summary` measures: parameters per part (they sum to the model's total), FLOPs per denoising step counted with
`torch.utils.flop_counter.FlopCounterMode` on the denoiser call the pipeline makes (matrix multiplications,
convolutions and attention, two per multiply-add; normalisations, activations and softmax are not counted), and the
seconds per step timed on this machine (the median of a few calls; times depend on the machine and its load, the
FLOPs do not). With classifier-free guidance the pipelines run the unconditional and conditional pictures as one
batch of two; `batch` says so, and `flops_per_step` counts the whole call.

>>> import torch
>>> from imagegen_nb import full_size
>>> from imagegen_nb.teach import architecture
>>> with torch.device("meta"):
...     parts = architecture.parameter_parts(full_size.denoiser("zimage-turbo"))
>>> list(parts)
['embedders', 'context refiner (text only)', 'noise refiner (image only)', 'main blocks (text + image)', 'final layer']
>>> round(sum(parts.values()) / 1e9, 2)
6.15
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass, field, replace
from typing import Any

from ._common import new_figure, pipe_and_family, show_image

__all__ = ["Architecture", "figure", "flops", "hub", "hub_figure", "parameter_parts", "summary", "word_maps"]

PROMPT = "a red circle and a blue square"
_FUNCTION_WORDS = {"a", "an", "the", "and", "of", "to", "on", "in", "with", "left", "right", "above", "below"}


@dataclass
class Architecture:
    """One model's architecture in numbers: where the text enters, its tokens, parameters per part, cost per step."""

    model: str  # the registry family ("tiny", "tiny-dit", "sd15", ...)
    kind: str  # "U-Net", "MMDiT (two streams)", "DiT (single stream)", ...
    denoiser: str  # the denoiser's diffusers class
    text_entry: str  # where and how the text enters the denoiser, in one sentence
    cross_attention_layers: int  # layers whose queries are image positions and whose keys are only text
    joint_attention_layers: int  # layers whose attention runs over text and image tokens together
    height: int
    width: int
    latent_shape: tuple[int, int, int]  # (channels, h, w) of the latent the denoiser works on
    patch_size: int  # latent pixels per token side: 1 for the U-Net (each latent pixel is a position)
    image_tokens: int  # image positions the denoiser's first attention sees: (h / p) * (w / p)
    text_tokens: int  # text vectors the denoiser reads per picture
    text_encoders: dict[str, int]  # parameters of each text encoder, by name
    denoiser_parts: dict[str, int]  # parameters of the denoiser by part; they sum to the denoiser's total
    vae: int  # parameters of the VAE (encoder and decoder; text-to-image runs only the decoder)
    batch: int  # pictures in one denoiser call: 2 for one picture with classifier-free guidance
    guidance_scale: float | None = None  # the guidance scale the counted call used (None: the family's default)
    flops_per_step: int | None = None  # FLOPs of one denoiser call, the whole batch (None: not counted)
    seconds_per_step: float | None = None  # median seconds of one denoiser call on `device` (None: not timed)
    step_times: list[float] = field(default_factory=list)  # every timed call, seconds
    device: str = "cpu"  # where the calls ran ("meta": built without weights, not timed)
    attention: list[tuple[str, int, int]] = field(default_factory=list)  # (layer, queries, keys) for one picture

    @property
    def denoiser_parameters(self) -> int:
        return sum(self.denoiser_parts.values())

    @property
    def text_encoder_parameters(self) -> int:
        return sum(self.text_encoders.values())

    @property
    def total_parameters(self) -> int:
        return self.text_encoder_parameters + self.denoiser_parameters + self.vae

    @property
    def sequence_length(self) -> int | None:
        """The longest sequence one attention layer saw (queries): the U-Net's finest level, or the DiT's joint
        sequence of image and text tokens (Z-Image pads each kind to a multiple of 32)."""
        return max((q for _, q, _ in self.attention), default=None)

    @property
    def flops_per_picture(self) -> float | None:
        """FLOPs per step for one picture: the batch's FLOPs shared out over the batch."""
        return None if self.flops_per_step is None else self.flops_per_step / self.batch


# ----------------------------------------------------------------------------------------------------------------
# Parameters per part


def _unet_part(name: str) -> str | None:
    level = re.match(r"(down_blocks|mid_block|up_blocks)\.(?:\d+\.)?(attentions|resnets|downsamplers|upsamplers)\.",
                     name)
    if level:
        where = {"down_blocks": "down", "mid_block": "mid", "up_blocks": "up"}[level.group(1)]
        return f"{where}: {'attention' if level.group(2) == 'attentions' else 'convolution'}"
    if name.startswith(("time_embedding.", "add_embedding.", "class_embedding.", "encoder_hid_proj.", "time_proj.")):
        return "time + pooled-text embedding"
    if name.startswith(("conv_in.", "conv_norm_out.", "conv_out.")):
        return "conv in / out"
    return None


# Parameter names of a two-stream block's text stream (SD3's JointTransformerBlock, FLUX's FluxTransformerBlock)
_TEXT_STREAM = re.compile(r"(_context\.|\.add_[qkv]_proj\.|\.to_add_out\.|\.norm_added_[qk]\.)")


def _sd3_part(name: str) -> str | None:
    if name.startswith(("pos_embed.", "time_text_embed.", "context_embedder.")):
        return "embedders"
    if name.startswith("transformer_blocks."):
        return "MMDiT blocks: text weights" if _TEXT_STREAM.search(name) else "MMDiT blocks: image weights"
    if name.startswith(("norm_out.", "proj_out.")):
        return "final layer"
    return None


def _flux_part(name: str) -> str | None:
    if name.startswith(("x_embedder.", "time_text_embed.", "context_embedder.")):
        return "embedders"
    if name.startswith("transformer_blocks."):
        return "double-stream: text weights" if _TEXT_STREAM.search(name) else "double-stream: image weights"
    if name.startswith("single_transformer_blocks."):
        return "single-stream blocks"
    if name.startswith(("norm_out.", "proj_out.")):
        return "final layer"
    return None


def _zimage_part(name: str) -> str | None:
    if name.startswith(("all_x_embedder.", "t_embedder.", "cap_embedder.", "siglip_embedder.")) or name in (
            "x_pad_token", "cap_pad_token", "siglip_pad_token"):
        return "embedders"
    if name.startswith("context_refiner."):
        return "context refiner (text only)"
    if name.startswith("noise_refiner."):
        return "noise refiner (image only)"
    if name.startswith("siglip_refiner."):
        return "image-prompt refiner"
    if name.startswith("layers."):
        return "main blocks (text + image)"
    if name.startswith("all_final_layer."):
        return "final layer"
    return None


_PARTS = {"UNet2DConditionModel": (_unet_part, ["time + pooled-text embedding", "conv in / out", "down: convolution",
                                                "down: attention", "mid: convolution", "mid: attention",
                                                "up: convolution", "up: attention"]),
          "SD3Transformer2DModel": (_sd3_part, ["embedders", "MMDiT blocks: image weights",
                                                "MMDiT blocks: text weights", "final layer"]),
          "FluxTransformer2DModel": (_flux_part, ["embedders", "double-stream: image weights",
                                                  "double-stream: text weights", "single-stream blocks",
                                                  "final layer"]),
          "ZImageTransformer2DModel": (_zimage_part, ["embedders", "context refiner (text only)",
                                                      "noise refiner (image only)", "image-prompt refiner",
                                                      "main blocks (text + image)", "final layer"])}


def parameter_parts(denoiser) -> dict[str, int]:
    """The denoiser's parameters by part, in the order the data flows; the parts sum to the denoiser's total.

    UNet2DConditionModel: each level (down, mid, up) split into its convolutional ResNets (with the down- and
    upsamplers) and its attention (transformer) blocks, plus the time embedding and the input and output
    convolutions. SD3: the MMDiT blocks' image-stream and text-stream weights. FLUX: its double-stream blocks (split
    the same way) and its single-stream blocks. Z-Image: embedders, refiners, main blocks, final layer. Other
    classes: by top-level module. Works on the meta device (shapes only).

    >>> from imagegen_nb.teach import architecture
    >>> from imagegen_nb.teach._common import pipe_and_family
    >>> parts = architecture.parameter_parts(pipe_and_family(None)[0].unet)
    >>> list(parts)[:3]
    ['time + pooled-text embedding', 'conv in / out', 'down: convolution']
    """
    import torch

    if not isinstance(denoiser, torch.nn.Module):
        raise TypeError(f"`denoiser` must be a torch.nn.Module (a pipeline's unet or transformer), "
                        f"not {type(denoiser).__name__}")
    classify, order = _PARTS.get(type(denoiser).__name__, (lambda name: None, []))
    counts: dict[str, int] = {}
    for name, p in denoiser.named_parameters():  # each shared parameter once, as .parameters() counts it
        part = classify(name) or name.split(".")[0]
        counts[part] = counts.get(part, 0) + p.numel()
    ordered = {k: counts.pop(k) for k in order if k in counts}
    return {**ordered, **counts}


def _components(pipe) -> tuple[dict[str, int], int]:
    """(text encoder parameters by component name, VAE parameters) of a pipeline."""
    encoders = {}
    for name in ("text_encoder", "text_encoder_2", "text_encoder_3"):
        module = getattr(pipe, name, None)
        if module is not None:
            encoders[f"{name} ({type(module).__name__})"] = sum(p.numel() for p in module.parameters())
    return encoders, sum(p.numel() for p in pipe.vae.parameters())


# ----------------------------------------------------------------------------------------------------------------
# Where the text enters


def _count_attention(denoiser) -> tuple[int, int]:
    """(cross-attention layers, joint-attention layers) of a denoiser, by its structure."""
    kind = type(denoiser).__name__
    if kind == "ZImageTransformer2DModel":
        return 0, len(denoiser.layers)
    if kind == "SD3Transformer2DModel":
        return 0, len(denoiser.transformer_blocks)
    if kind == "FluxTransformer2DModel":
        return 0, len(denoiser.transformer_blocks) + len(denoiser.single_transformer_blocks)
    cross = sum(1 for m in denoiser.modules() if hasattr(m, "processor") and getattr(m, "is_cross_attention", False))
    return cross, 0


def _describe(denoiser) -> tuple[str, str]:
    """(kind, where the text enters) of a denoiser, in words built from its config."""
    kind = type(denoiser).__name__
    config = denoiser.config
    cross, joint = _count_attention(denoiser)
    if kind == "UNet2DConditionModel":
        text = (f"{cross} cross-attention layers inside the convolutional levels: image positions query the text "
                f"tokens")
        if config.get("addition_embed_type") in ("text", "text_time", "text_image"):
            how = ("scales and shifts every ResNet block's features (FiLM)"
                   if config.get("resnet_time_scale_shift") == "scale_shift" else "is added to every ResNet block")
            text += f"; a pooled text vector joins the timestep embedding, which {how}"
        return "U-Net", text
    if kind == "ZImageTransformer2DModel":
        r = config["n_refiner_layers"]
        return "DiT (single stream)", (f"{joint} single-stream blocks: text and image tokens in one sequence through "
                                       f"the same weights (joint attention), after {r} context-refiner blocks (text "
                                       f"only) and {r} noise-refiner blocks (image only); the timestep modulates, "
                                       f"the text does not")
    if kind == "SD3Transformer2DModel":
        return "MMDiT (two streams)", (f"{joint} MMDiT blocks: joint attention over text and image tokens, separate "
                                       f"weights per stream; a pooled text vector modulates every block")
    if kind == "FluxTransformer2DModel":
        double, single = len(denoiser.transformer_blocks), len(denoiser.single_transformer_blocks)
        return "MMDiT + single stream", (f"{double} double-stream (MMDiT) blocks, then {single} single-stream blocks "
                                         f"over text and image tokens joined; pooled text and guidance modulate")
    if cross:
        return "DiT (cross-attention)", f"{cross} cross-attention layers: image tokens query the text tokens"
    return kind, "no attention layer this lesson recognises reads the text"


def _patch_size(denoiser) -> int:
    kind = type(denoiser).__name__
    if kind == "ZImageTransformer2DModel":
        return int(denoiser.config["all_patch_size"][0])
    if kind == "FluxTransformer2DModel":
        return 2  # the pipeline packs 2x2 latent patches into one token's channels
    return int(denoiser.config.get("patch_size") or 1)


# ----------------------------------------------------------------------------------------------------------------
# FLOPs and time


def _sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    from torch.utils.flop_counter import sdpa_flop_count

    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _counter():
    """A FlopCounterMode that also counts the CPU's fused attention kernel (torch 2.x counts the CUDA kernels and,
    on the meta device, the matrix products attention decomposes into, but not the CPU's fused kernel)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    mapping = {}
    for name in ("_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_fused_attention_overrideable"):
        op = getattr(torch.ops.aten, name, None)
        if op is not None:
            mapping[op] = _sdpa_flops
    return FlopCounterMode(display=False, custom_mapping=mapping)


def flops(fn, *args, **kwargs) -> int:
    """FLOPs of `fn(*args, **kwargs)` under inference mode, counted by FlopCounterMode: matrix multiplications,
    convolutions and attention, two FLOPs per multiply-add.

    >>> import torch
    >>> from imagegen_nb.teach import architecture
    >>> architecture.flops(torch.nn.Linear(8, 4), torch.zeros(3, 8))  # 2 x 3 x 8 x 4
    192
    """
    import torch

    if not callable(fn):
        raise TypeError(f"`fn` must be callable (a model or a function), not {type(fn).__name__}")
    with _counter() as counter, torch.inference_mode():
        fn(*args, **kwargs)
    return int(counter.get_total_flops())


def _attention_hooks(denoiser, found: list):
    """Forward pre-hooks recording (layer, queries, keys) of every attention module's call, first picture only."""
    handles = []
    for name, module in denoiser.named_modules():
        if not hasattr(module, "processor"):
            continue

        def before(module, args, kwargs, name=name):
            hidden = args[0] if args else kwargs.get("hidden_states")
            text = args[1] if len(args) > 1 else kwargs.get("encoder_hidden_states")
            if hidden is None or hidden.dim() != 3:
                return None
            queries = hidden.shape[1]
            if text is None:
                keys = queries
            elif getattr(module, "is_cross_attention", False):
                keys = text.shape[1]
            else:  # joint attention: the two sequences joined, both as queries and as keys
                queries = keys = queries + text.shape[1]
            found.append((name, int(queries), int(keys)))
            return None

        handles.append(module.register_forward_pre_hook(before, with_kwargs=True))
    return handles


def _clone(value):
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, (list, tuple)):
        return type(value)(_clone(v) for v in value)
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    return value


def _measure(denoiser, args, kwargs, *, repeats: int, device) -> tuple[int, list, list[float]]:
    """(FLOPs, attention calls, seconds of each timed call) of `denoiser(*args, **kwargs)`."""
    import time

    import torch

    found: list = []
    handles = _attention_hooks(denoiser, found)
    try:
        total = flops(denoiser, *args, **kwargs)
    finally:
        for h in handles:
            h.remove()
    times = []
    if repeats:
        cuda = torch.device(device).type == "cuda"
        with torch.inference_mode():
            denoiser(*args, **kwargs)  # warm-up: first calls allocate and pick kernels
            for _ in range(repeats):
                if cuda:
                    torch.cuda.synchronize(device)
                start = time.perf_counter()
                denoiser(*args, **kwargs)
                if cuda:
                    torch.cuda.synchronize(device)
                times.append(time.perf_counter() - start)
    return total, found, times


def _check_repeats(repeats) -> None:
    if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 0:
        raise ValueError(f"`repeats` must be a whole number >= 0 (timed calls; 0 to skip timing), not {repeats!r}")


def summary(model=None, *, prompt: str = PROMPT, height: int | None = None, width: int | None = None,
            guidance_scale: float | None = None, repeats: int = 5, seed: int = 0) -> Architecture:
    """The architecture of `model` (None: the built-in U-Net; "tiny-dit": the built-in DiT) in numbers.

    Makes one one-step picture of `prompt` with `ig.generate` and keeps the denoiser's inputs as the pipeline passes
    them (the classifier-free guidance batch included), then counts that call's FLOPs and times `repeats` more calls
    of it (median; 0: no timing). `height`, `width` and `guidance_scale` default to the family's.

    >>> from imagegen_nb.teach import architecture
    >>> s = architecture.summary("tiny-dit", repeats=1)
    >>> s.kind, s.image_tokens, s.batch
    ('DiT (single stream)', 64, 2)
    """
    import torch

    from .. import cache
    from ..tasks import generate

    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError(f"`prompt` must be a non-empty string, not {prompt!r}")
    _check_repeats(repeats)
    pipe, family = pipe_and_family(model)
    denoiser = getattr(pipe, "unet", None)
    if denoiser is None:
        denoiser = getattr(pipe, "transformer", None)
    if denoiser is None:
        raise ValueError(f"{family.name} pipelines have no unet or transformer for this lesson to measure")
    captured: list = []

    def keep(module, args, kwargs):
        if not captured:
            captured.append((_clone(args), _clone(kwargs)))
        return None

    call = {"num_inference_steps": 1, "seed": seed, "model": model, "progress": False}
    call.update({k: v for k, v in (("height", height), ("width", width), ("guidance_scale", guidance_scale))
                 if v is not None})
    with cache.shared.lock:
        handle = denoiser.register_forward_pre_hook(keep, with_kwargs=True)
        try:
            generate(prompt, **call)
        finally:
            handle.remove()
        args, kwargs = captured[0]
        total, found, times = _measure(denoiser, args, kwargs, repeats=repeats, device=pipe.device)

    # 1. What the denoiser read: the latent and the text, as the pipeline passed them
    latent = args[0] if args else kwargs.get("sample", kwargs.get("hidden_states", kwargs.get("x")))
    if isinstance(latent, (list, tuple)):  # Z-Image: one (C, frames, h, w) latent per picture
        batch, (c, _, h, w) = len(latent), tuple(latent[0].shape)
    else:
        batch, c, h, w = tuple(latent.shape)
    text = kwargs.get("encoder_hidden_states", kwargs.get("cap_feats"))
    if text is None and len(args) > 2:
        text = args[2]
    text_tokens = int(text[0].shape[0]) if isinstance(text, (list, tuple)) else int(text.shape[1])
    p = _patch_size(denoiser)
    kind, entry = _describe(denoiser)
    cross, joint = _count_attention(denoiser)
    encoders, vae = _components(pipe)
    size = family.default_size
    return Architecture(
        model=family.name, kind=kind, denoiser=type(denoiser).__name__, text_entry=entry,
        cross_attention_layers=cross, joint_attention_layers=joint, height=height or size, width=width or size,
        latent_shape=(int(c), int(h), int(w)), patch_size=p, image_tokens=(h // p) * (w // p),
        text_tokens=text_tokens, text_encoders=encoders, denoiser_parts=parameter_parts(denoiser), vae=vae,
        batch=int(batch), guidance_scale=family.default_guidance if guidance_scale is None else guidance_scale,
        flops_per_step=total, seconds_per_step=statistics.median(times) if times else None, step_times=times,
        device=str(torch.device(pipe.device)), attention=_first_picture(found))


def _first_picture(found: list) -> list[tuple[str, int, int]]:
    """Each attention layer once (a layer called twice in one forward keeps its first call)."""
    seen, out = set(), []
    for name, q, k in found:
        if name not in seen:
            seen.add(name)
            out.append((name, q, k))
    return out


# ----------------------------------------------------------------------------------------------------------------
# The Hub families, built without weights


def _cfg_batch(family) -> int:
    """Pictures per denoiser call for one picture at the family's default guidance: 2 where classifier-free guidance
    runs (unconditional and conditional in one batch); 1 for guidance-distilled FLUX (guidance is an input) and for
    Z-Image-Turbo (its default guidance is 0)."""
    return 2 if family.default_guidance > family.guidance_off_at and not family.true_cfg else 1


_HUB_CACHE: dict[tuple, Architecture] = {}


def hub(families=None, *, count_flops: bool = True, height: int | None = None,
        width: int | None = None) -> dict[str, Architecture]:
    """The same view of the Hub families' published architectures (`imagegen_nb.full_size`), each built on the meta
    device: shapes only, no weights allocated, nothing downloaded.

    FLOPs per step are counted for one picture at the family's default size (or `height` x `width`) and guidance,
    with the text length its pipeline pads to (`full_size.TEXT_TOKENS`); `count_flops=False` skips them (faster).
    Nothing is timed: there are no weights to run. Results are kept for the session.

    >>> from imagegen_nb.teach import architecture
    >>> h = architecture.hub(["sd15"], count_flops=False)
    >>> round(h["sd15"].denoiser_parameters / 1e6)
    860
    """
    import torch

    from .. import full_size, registry

    families = list(full_size.FAMILIES if families is None else ([families] if isinstance(families, str)
                                                                  else families))
    for name in families:
        if name not in full_size.FAMILIES:
            raise ValueError(f"`families` must name families of {', '.join(full_size.FAMILIES)}, but has {name!r}.")
    out = {}
    for name in families:
        key = (name, bool(count_flops), height, width)
        counted = _HUB_CACHE.get((name, True, height, width))
        if not count_flops and counted is not None:  # the counted build, without its count
            out[name] = replace(counted, flops_per_step=None, attention=[])
            continue
        if key not in _HUB_CACHE:
            family = registry.FAMILIES[name]
            batch = _cfg_batch(family)
            with torch.device("meta"):
                denoiser = full_size.denoiser(name)
                encoders = {f"{component} ({label})": sum(p.numel() for p in module.parameters())
                            for component, (label, module) in full_size.text_encoders(name).items()}
                autoencoder = full_size.vae(name)
                vae = sum(p.numel() for p in autoencoder.parameters())
                inputs = full_size.denoiser_inputs(name, height=height, width=width, batch=batch)
                total, found = None, []
                if count_flops:
                    total, found, _ = _measure(denoiser, (), inputs, repeats=0, device="meta")
            # the latent: every VAE here downsamples 8x (FLUX then packs 2x2 patches into one token's channels)
            c = autoencoder.config.latent_channels
            h, w = (height or family.default_size) // 8, (width or family.default_size) // 8
            text = inputs.get("encoder_hidden_states", inputs.get("cap_feats"))
            text_tokens = int(text[0].shape[0]) if isinstance(text, list) else int(text.shape[1])
            kind, entry = _describe(denoiser)
            cross, joint = _count_attention(denoiser)
            p = _patch_size(denoiser)
            _HUB_CACHE[key] = Architecture(
                model=name, kind=kind, denoiser=type(denoiser).__name__, text_entry=entry,
                cross_attention_layers=cross, joint_attention_layers=joint,
                height=height or family.default_size, width=width or family.default_size,
                latent_shape=(int(c), int(h), int(w)), patch_size=p, image_tokens=(int(h) // p) * (int(w) // p),
                text_tokens=text_tokens, text_encoders=encoders, denoiser_parts=parameter_parts(denoiser), vae=vae,
                batch=batch, guidance_scale=family.default_guidance, flops_per_step=total, device="meta",
                attention=_first_picture(found))
        out[name] = _HUB_CACHE[key]
    return out


# ----------------------------------------------------------------------------------------------------------------
# Word maps


def word_maps(prompt: str = PROMPT, *, seed: int = 0, models=(None, "tiny-dit"), **kwargs) -> dict[str, Any]:
    """Each model's attention from the picture to the prompt's words, for the same prompt and seed, recorded by the
    attention lesson (`imagegen_nb.teach.attention.record`): the U-Net's cross-attention, the DiT's image-to-text
    block of its joint attention. Keyed by family name; other keyword arguments go to `ig.generate`.

    >>> from imagegen_nb.teach import architecture
    >>> maps = architecture.word_maps("a red circle", num_inference_steps=2)
    >>> {name: (m.attention, m.word_maps.shape) for name, m in maps.items()}
    {'tiny': ('cross', (3, 16, 16)), 'tiny-dit': ('joint', (3, 16, 16))}
    """
    from . import attention

    if isinstance(models, str) or models is None:
        models = (models,)
    out = {}
    for model in models:
        family = pipe_and_family(model)[1]
        out[family.name] = attention.record(prompt, seed=seed, model=model, **kwargs)
    return out


# ----------------------------------------------------------------------------------------------------------------
# Figures

_LABEL = {"tiny": "built-in U-Net", "tiny-dit": "built-in DiT", "sd15": "SD 1.5", "sdxl": "SDXL",
          "sd3": "SD3 medium", "flux-dev": "FLUX.1-dev", "zimage-turbo": "Z-Image-Turbo"}
_COLOR = {"tiny": "tab:blue", "tiny-dit": "tab:orange"}


def _category(part: str) -> str:
    """The colour group of a part, shared across architectures."""
    if "convolution" in part or part == "conv in / out":
        return "convolution"
    if "text weights" in part or "context refiner" in part:
        return "text-only weights"
    if "image weights" in part or "noise refiner" in part or "image-prompt" in part:
        return "image-only weights"
    if "attention" in part:
        return "attention blocks"
    if "single-stream" in part or "main blocks" in part:
        return "shared text + image blocks"
    return "embedders, final layer"


_CATEGORY_COLOR = {"text encoder": "#9ecae1", "convolution": "#fdae6b", "attention blocks": "#e6550d",
                   "image-only weights": "#74c476", "text-only weights": "#9e9ac8",
                   "shared text + image blocks": "#31a354", "embedders, final layer": "#bdbdbd", "VAE": "#8c6d31"}


def _count(n: float) -> str:
    for scale, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{unit}"
    return f"{n:.0f}"


def _rows(s: Architecture) -> list[tuple[str, int, str]]:
    """(label, parameters, colour group) for each bar of a model: text encoders, denoiser parts, VAE."""
    rows = [(f"text encoder: {name.split('(')[-1].rstrip(')')}" if len(s.text_encoders) == 1 else name, n,
             "text encoder") for name, n in s.text_encoders.items()]
    rows += [(part, n, _category(part)) for part, n in s.denoiser_parts.items()]
    rows.append(("VAE", s.vae, "VAE"))
    return rows


def _parts_panel(ax, s: Architecture, xmax: float) -> None:
    rows = _rows(s)
    y = list(range(len(rows)))
    ax.barh(y, [n / 1e6 for _, n, _ in rows], color=[_CATEGORY_COLOR[c] for _, _, c in rows])
    for k, (_, n, _) in enumerate(rows):
        ax.text(n / 1e6 + xmax / 1e6 * 0.01, k, _count(n), va="center", fontsize=7)
    ax.set_yticks(y, [label for label, _, _ in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, xmax / 1e6 * 1.2)
    ax.set_xlabel("parameters (millions)", fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    ax.set_title(f"{_LABEL.get(s.model, s.model)}: {_count(s.total_parameters)} parameters in all\n"
                 f"denoiser {s.denoiser}: {_count(s.denoiser_parameters)}\n"
                 f"({s.kind}: the bars between text encoder and VAE)", fontsize=8)
    ax.grid(axis="x", alpha=0.3)


def _show_maps(axes, m, words: list[str], label: str) -> None:
    import numpy as np

    show_image(axes[0], m.image, label)
    w, h = m.image.size
    for ax, word in zip(axes[1:], words):
        heat = m.word_map(word)
        heat = (heat - heat.min()) / max(float(heat.max() - heat.min()), 1e-12)
        show_image(ax, np.asarray(m.image.convert("L")), f"{word!r}", cmap="gray")
        ax.imshow(heat, cmap="jet", alpha=0.55, extent=(0, w, h, 0), interpolation="bilinear", vmin=0, vmax=1)


def figure(prompt: str = PROMPT, *, seed: int = 0, words=None, repeats: int = 5, summaries=None, maps=None):
    """The two built-in models side by side: parameters per part, FLOPs and seconds per denoising step with their
    tokens, and where each one's attention puts the prompt's words in its picture.

    `words` picks the words to map (default: the prompt's words other than articles, "and" and relations; at most
    five). `summaries` ({"tiny": ..., "tiny-dit": ...} from `summary`) and `maps` (from `word_maps`) reuse earlier
    results; otherwise they are measured here with `repeats` timed calls each.

    >>> from imagegen_nb.teach import architecture
    >>> s = {m or "tiny": architecture.summary(m, repeats=1) for m in (None, "tiny-dit")}
    >>> fig = architecture.figure("a red circle", summaries=s,
    ...                           maps=architecture.word_maps("a red circle", num_inference_steps=2))
    >>> [ax.get_title() for ax in fig.axes][-2:]
    ["'red'", "'circle'"]
    """
    import numpy as np

    if summaries is None:
        summaries = {"tiny": summary(None, prompt=prompt, repeats=repeats, seed=seed),
                     "tiny-dit": summary("tiny-dit", prompt=prompt, repeats=repeats, seed=seed)}
    if maps is None:
        maps = word_maps(prompt, seed=seed)
    if not summaries or not maps:
        raise ValueError("`summaries` and `maps` must not be empty: pass None to measure them here")
    if words is None:
        words = [w for w, _ in next(iter(maps.values())).words
                 if w.lower().rstrip(".,;:!?") not in _FUNCTION_WORDS][:5]
    elif isinstance(words, str):
        words = [words]
    if not words or len(words) > 5:
        raise ValueError(f"`words` must name one to five words of the prompt, not {words!r}")
    names = list(summaries)[:2]
    fig, axes = new_figure(1, 1, title=f"U-Net and DiT, the two built-in models: what they are made of, what a step "
                                       f"costs, where the text lands ({prompt!r}, seed {seed})")
    fig.set_size_inches(13.5, 9.6)
    axes[0, 0].remove()
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.0, 1.05])

    # 1. Parameters per part, on one scale so the bars compare across the two models
    panels = top.subplots(1, 3, width_ratios=[1.0, 1.0, 0.9])
    xmax = max(n for s in summaries.values() for _, n, _ in _rows(s))
    for ax, name in zip(panels[:2], names):
        _parts_panel(ax, summaries[name], xmax)

    # 2. Cost of one denoising step: FLOPs (bars) and the time measured here (labels)
    ax = panels[2]
    x = np.arange(len(names))
    counts = [summaries[n].flops_per_step or 0 for n in names]
    ax.bar(x, [c / 1e6 for c in counts], color=[_COLOR.get(n, "tab:gray") for n in names], width=0.6)
    for k, n in enumerate(names):
        s = summaries[n]
        timing = f"{s.seconds_per_step * 1e3:.1f} ms/step" if s.seconds_per_step is not None else "not timed"
        ax.text(k, counts[k] / 1e6, f"{counts[k] / 1e6:.0f} MFLOPs\n{timing}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x, [f"{_LABEL.get(n, n)}\n{s.latent_shape[1]}x{s.latent_shape[2]} latent, patch {s.patch_size}\n"
                      f"{s.image_tokens} image + {s.text_tokens} text tokens\n"
                      f"longest attention: {s.sequence_length}"
                      for n, s in ((n, summaries[n]) for n in names)], fontsize=7)
    ax.set_ylim(0, max(counts) / 1e6 * 1.3 if any(counts) else 1)
    ax.set_ylabel("MFLOPs per denoising step", fontsize=8)
    ax.tick_params(axis="y", labelsize=7)
    batch = "/".join(str(b) for b in sorted({summaries[n].batch for n in names}))
    device = "/".join(sorted({summaries[n].device for n in names}))
    ax.set_title(f"one step: one denoiser call, batch {batch}\n(guidance: uncond + cond); median time on "
                 f"{device},\nthis machine: times vary, FLOPs do not", fontsize=8)
    ax.grid(axis="y", alpha=0.3)

    # 3. Word maps: the same prompt and seed through each model's attention
    shown = [n for n in names if n in maps]
    cells = bottom.subplots(len(shown), 1 + len(words), squeeze=False)
    for row, name in enumerate(shown):
        m = maps[name]
        how = ("cross-attention" if m.attention == "cross" else
               f"joint attention, image-to-text\n(text gets {m.text_share:.0%} of it)")
        _show_maps(cells[row], m, words, f"{_LABEL.get(name, name)}:\n{how}")
    bottom.suptitle("each word's share of the picture's attention to the text (each map stretched to its own "
                    "range: where, not how much)", fontsize=9)
    return fig


def _short(label: str) -> str:
    """A segment's label short enough to print inside it."""
    if "(" in label and label.startswith("text_encoder"):
        return label.split("(")[-1].rstrip(")")
    return label.replace("MMDiT blocks: ", "MMDiT: ").replace("double-stream: ", "double: ")


def hub_figure(hubs=None):
    """The Hub families' published architectures, built without weights: parameters per part (text encoders,
    denoiser parts, VAE; one bar per family) and FLOPs per denoising step at each family's default size and guidance.

    `hubs` reuses `hub()`'s result; by default it is computed (about half a minute on one CPU thread, the FLOPs
    counted on the meta device).

    >>> from imagegen_nb.teach import architecture
    >>> fig = architecture.hub_figure(architecture.hub(["sd15", "zimage-turbo"], count_flops=False))
    >>> fig.axes[0].get_xlabel()
    'parameters (billions)'
    """
    import numpy as np
    from matplotlib.patches import Patch

    hubs = hub() if hubs is None else hubs
    if not hubs:
        raise ValueError("`hubs` is empty: pass hub()'s result, or None to compute it")
    names = list(hubs)
    with_flops = any(h.flops_per_step for h in hubs.values())
    fig, axes = new_figure(1, 2 if with_flops else 1, cell=5.0,
                           title="Published architectures: configs from the Hub, built on the meta device "
                                 "(parameters counted and FLOPs traced, no weights loaded)",
                           width_ratios=[1.25, 1.0] if with_flops else None)
    fig.set_size_inches(15.0 if with_flops else 9.0, 5.2)
    ax = axes[0, 0]
    widest = max(h.total_parameters for h in hubs.values()) / 1e9
    for k, name in enumerate(names):
        left = 0.0
        for label, n, category in _rows(hubs[name]):
            ax.barh(k, n / 1e9, left=left, height=0.7, color=_CATEGORY_COLOR[category], edgecolor="white",
                    linewidth=0.8)
            if n / 1e9 > 0.13 * widest:  # label the segments wide enough to hold one
                ax.text(left + n / 2e9, k, f"{_short(label)}\n{_count(n)}", ha="center", va="center", fontsize=6.5)
            left += n / 1e9
        ax.text(left + 0.15, k, _count(hubs[name].total_parameters), va="center", fontsize=7)
    ax.set_yticks(range(len(names)), [f"{_LABEL.get(n, n)}\n{hubs[n].kind}\ndenoiser "
                                      f"{_count(hubs[n].denoiser_parameters)}" for n in names], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("parameters (billions)")
    ax.set_xlim(0, widest * 1.08)
    used = {c for h in hubs.values() for _, _, c in _rows(h)}
    ax.legend(handles=[Patch(color=_CATEGORY_COLOR[c], label=f"denoiser: {c}" if c not in ("text encoder", "VAE")
                             else c) for c in _CATEGORY_COLOR if c in used], fontsize=7, loc="upper center",
              bbox_to_anchor=(0.5, -0.14), ncols=4, frameon=False)
    ax.set_title("text encoders, then the denoiser's parts, then the VAE (segments too thin to label are left "
                 "unlabelled)", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    if with_flops:
        ax = axes[0, 1]
        y = np.arange(len(names))
        values = [(hubs[n].flops_per_step or 0) / 1e12 for n in names]
        ax.barh(y, values, height=0.7, color="tab:gray")
        for k, n in enumerate(names):
            h = hubs[n]
            tokens = (f"{h.latent_shape[1]}x{h.latent_shape[2]} latent positions" if h.patch_size == 1 else
                      f"{h.image_tokens} image tokens (patch {h.patch_size})")
            ax.text(values[k], k, f"  {values[k]:.1f} TFLOPs, batch {h.batch}: {h.height}x{h.width} px\n"
                                  f"  {tokens}, {h.text_tokens} text tokens\n"
                                  f"  longest attention: {h.sequence_length}", va="center", fontsize=7)
        ax.set_yticks(y, [_LABEL.get(n, n) for n in names], fontsize=7)
        ax.invert_yaxis()
        ax.set_xlim(0, max(values) * 1.95)
        ax.set_xlabel("TFLOPs per denoising step (the whole denoiser call)")
        ax.set_title("batch 2: classifier-free guidance runs uncond + cond together;\nFLUX.1-dev takes guidance "
                     "as an input, Z-Image-Turbo runs without it (batch 1)", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
    return fig
