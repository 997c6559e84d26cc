"""Tiny random-weight diffusers pipelines saved as model folders for tests. (The published full-size architectures,
for benchmarks and the architecture lesson, live in `imagegen_nb.full_size`.)"""

from __future__ import annotations

import json
import os
import pathlib
import tempfile

from . import registry

__all__ = [
    "CALL_KWARGS",
    "CONTROLNET_CLASS",
    "CONTROLNET_FAMILIES",
    "CONTROL_IMAGE_ARG",
    "FAMILIES",
    "IP_ADAPTER_FILE",
    "SAMPLE_SIZE",
    "TASKS",
    "clip_tokenizer",
    "make_tiny_controlnet",
    "make_tiny_ip_adapter",
    "make_tiny_model",
    "t5_tokenizer",
]

FAMILIES = ("sd15", "sdxl", "sd3", "flux-dev", "zimage-turbo", "pixart-sigma", "sana")
CONTROLNET_FAMILIES = ("sd15", "sdxl", "sd3", "flux-dev", "zimage-turbo")

# (height, width) a test should ask each tiny family for: the smallest its VAE and patching accept.
SAMPLE_SIZE: dict[str, tuple[int, int]] = {family: (32, 32) for family in FAMILIES}

# Extra call arguments the tiny builds need: PixArt and Sana would otherwise snap 32x32 to their smallest
# trained aspect-ratio bucket (256 px and up), and Sana's default prompt preamble is long English instructions.
# PixArt-Sigma's `clean_caption` defaults to True and, without beautifulsoup4 and ftfy, logs a warning each call.
CALL_KWARGS: dict[str, dict[str, object]] = {
    "sd15": {},
    "sdxl": {},
    "sd3": {},
    "flux-dev": {},
    "zimage-turbo": {},
    "pixart-sigma": {"use_resolution_binning": False, "clean_caption": False},
    "sana": {"use_resolution_binning": False, "complex_human_instruction": None},
}

# What each tiny build runs end to end, its ControlNet class and the call argument of its ControlNet text-to-image
# pipeline that takes the control image: the registry's facts for the family, gathered here for tests. "edit" runs
# via AutoPipelineForImage2Image.from_pipe, "inpaint" via AutoPipelineForInpainting.from_pipe, "control" via
# AutoPipelineForText2Image.from_pipe(base, controlnet=cn).
TASKS: dict[str, tuple[str, ...]] = {family: registry.FAMILIES[family].tasks for family in FAMILIES}
CONTROL_IMAGE_ARG: dict[str, str] = {f: registry.FAMILIES[f].control_image_arg for f in CONTROLNET_FAMILIES}
CONTROLNET_CLASS: dict[str, str] = {f: registry.FAMILIES[f].controlnet_class for f in CONTROLNET_FAMILIES}

# Sizes shared by a family's denoiser and its ControlNet.
_CLIP_WIDTH = 32  # hidden size of every tiny CLIP text encoder
_T5_WIDTH = 32  # d_model of the tiny T5 encoders (FLUX, PixArt)
# SD3 pads its two CLIP outputs, side by side, up to T5's width (768 + 1280 -> 4096); a narrower T5 would make
# that pad negative and silently cut the CLIP features.
_SD3_T5_WIDTH = 2 * _CLIP_WIDTH + 32
_SD_UNET = dict(block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4,
                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"))
_SD_CONTROL_EMBEDDING = (8, 16)  # two entries: one stride-2 step, like the two-block tiny VAE
# Two layers: the last SD3 block is "context pre-only" and takes no ControlNet residual, so one layer would
# silently ignore the control image.
_SD3_TRANSFORMER = dict(sample_size=16, patch_size=2, in_channels=16, out_channels=16, num_layers=2,
                        attention_head_dim=8, num_attention_heads=2, joint_attention_dim=_SD3_T5_WIDTH,
                        caption_projection_dim=16, pooled_projection_dim=2 * _CLIP_WIDTH, pos_embed_max_size=32)
_FLUX_TRANSFORMER = dict(patch_size=1, in_channels=16, num_layers=1, num_single_layers=1, attention_head_dim=16,
                         num_attention_heads=2, joint_attention_dim=_T5_WIDTH, pooled_projection_dim=_CLIP_WIDTH,
                         guidance_embeds=True, axes_dims_rope=(4, 4, 8))
_ZIMAGE_TRANSFORMER = dict(all_patch_size=(2,), all_f_patch_size=(1,), dim=32, n_refiner_layers=1, n_heads=2,
                           n_kv_heads=2, norm_eps=1e-5, qk_norm=True)
_ZIMAGE_TEXT_WIDTH = 16


# ----------------------------------------------------------------------------------------------------------------
# Offline tokenizers


def _byte_chars() -> list[str]:
    """The 256 printable stand-ins byte-level BPE uses for the bytes 0..255 (GPT-2's `bytes_to_unicode`)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    codes = keep[:]
    extra = 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            codes.append(256 + extra)
            extra += 1
    return [chr(c) for c in codes]


_WORDS = ("a", "an", "the", "of", "and", "in", "on", "with", "photo", "cat", "dog", "red", "blue", "green", "house",
          "tree", "sky", "car", "man", "woman", "portrait", "painting", "landscape", "city", "sun")


def clip_tokenizer():
    """A CLIPTokenizer over single bytes plus a few whole words: any text tokenizes, nothing is downloaded."""
    from transformers import CLIPTokenizer

    specials = ["<|startoftext|>", "<|endoftext|>"]
    chars = _byte_chars()
    pieces = chars + [c + "</w>" for c in chars]
    merges: list[str] = []
    for word in _WORDS:  # merge left to right so each listed word becomes one token
        if len(word) < 2:
            continue
        current = word[0]
        for i, ch in enumerate(word[1:], start=1):
            right = ch + ("</w>" if i == len(word) - 1 else "")
            merged = current + right
            if f"{current} {right}" not in merges:
                merges.append(f"{current} {right}")
            if merged not in pieces:
                pieces.append(merged)
            current = merged
    vocab = {token: i for i, token in enumerate(pieces + specials)}
    with tempfile.TemporaryDirectory() as folder:
        path = pathlib.Path(folder)
        (path / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
        (path / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
        (path / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 77}), encoding="utf-8")
        return CLIPTokenizer.from_pretrained(folder, local_files_only=True)


def t5_tokenizer():
    """A T5Tokenizer (unigram) over printable ASCII and a few whole words; other characters become <unk>."""
    from transformers import T5Tokenizer

    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    vocab += [("▁" + word, -1.0) for word in _WORDS]
    vocab += [(chr(c), -5.0) for c in range(ord("!"), ord("~") + 1)]
    return T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=512)


_QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _qwen_tokenizer():
    """A byte-level Qwen2Tokenizer with Qwen's chat markers and a minimal chat template (Z-Image applies one)."""
    from transformers import Qwen2Tokenizer

    vocab = {ch: i for i, ch in enumerate(_byte_chars())}
    for special in ("<|endoftext|>", "<|im_start|>", "<|im_end|>"):
        vocab[special] = len(vocab)
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=[], model_max_length=512)
    tokenizer.chat_template = _QWEN_CHAT_TEMPLATE
    return tokenizer


def _gemma_tokenizer():
    """A GemmaTokenizer with byte fallback: printable ASCII pieces, every other byte as <0xNN>."""
    from transformers import GemmaTokenizer

    pieces = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]
    pieces += [f"<0x{b:02X}>" for b in range(256)]
    pieces += ["▁"] + [chr(c) for c in range(ord("!"), ord("~") + 1)]
    return GemmaTokenizer(vocab={piece: i for i, piece in enumerate(pieces)}, model_max_length=512)


# ----------------------------------------------------------------------------------------------------------------
# Text encoders


def _clip_text_encoder(tokenizer, *, with_projection: bool, seed: int):
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=_CLIP_WIDTH, intermediate_size=37,
                            num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=77,
                            projection_dim=_CLIP_WIDTH, hidden_act="gelu", layer_norm_eps=1e-5,
                            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                            pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    return (CLIPTextModelWithProjection if with_projection else CLIPTextModel)(config).eval()


def _t5_text_encoder(tokenizer, *, seed: int, width: int = _T5_WIDTH):
    import torch
    from transformers import T5Config, T5EncoderModel

    config = T5Config(vocab_size=len(tokenizer), d_model=width, d_kv=8, d_ff=37, num_layers=1, num_heads=4,
                      relative_attention_num_buckets=8, relative_attention_max_distance=32, dropout_rate=0.0,
                      is_encoder_decoder=False, use_cache=False, pad_token_id=tokenizer.pad_token_id,
                      eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    return T5EncoderModel(config).eval()


def _qwen3_text_encoder(tokenizer, *, seed: int):
    import torch
    from transformers import Qwen3Config, Qwen3Model

    config = Qwen3Config(vocab_size=len(tokenizer), hidden_size=_ZIMAGE_TEXT_WIDTH, intermediate_size=32,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2, head_dim=8,
                         max_position_embeddings=1024, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(seed)
    return Qwen3Model(config).eval()


def _gemma2_text_encoder(tokenizer, *, width: int, seed: int):
    import torch
    from transformers import Gemma2Config, Gemma2Model

    config = Gemma2Config(vocab_size=len(tokenizer), hidden_size=width, intermediate_size=32, num_hidden_layers=1,
                          num_attention_heads=2, num_key_value_heads=2, head_dim=8, max_position_embeddings=1024,
                          pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                          bos_token_id=tokenizer.bos_token_id)
    torch.manual_seed(seed)
    return Gemma2Model(config).eval()


# ----------------------------------------------------------------------------------------------------------------
# VAEs


def _kl_vae(*, latent_channels: int, seed: int, **config):
    """A two-block AutoencoderKL: it downsamples 2x, so a 32x32 image is a 16x16 latent."""
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                         up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16), layers_per_block=1,
                         latent_channels=latent_channels, norm_num_groups=4, sample_size=32, **config).eval()


# ----------------------------------------------------------------------------------------------------------------
# Families


def _sd15_unet(seed: int):
    import torch
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    return UNet2DConditionModel(sample_size=16, in_channels=4, out_channels=4, cross_attention_dim=_CLIP_WIDTH,
                                attention_head_dim=4, **_SD_UNET).eval()


def _sdxl_unet(seed: int):
    import torch
    from diffusers import UNet2DConditionModel

    addition_time_embed_dim = 8
    torch.manual_seed(seed)
    return UNet2DConditionModel(sample_size=16, in_channels=4, out_channels=4, cross_attention_dim=2 * _CLIP_WIDTH,
                                attention_head_dim=(2, 4), use_linear_projection=True,
                                addition_embed_type="text_time", addition_time_embed_dim=addition_time_embed_dim,
                                transformer_layers_per_block=(1, 1),
                                # six micro-conditioning numbers, each embedded, plus the pooled text embedding
                                projection_class_embeddings_input_dim=6 * addition_time_embed_dim + _CLIP_WIDTH,
                                **_SD_UNET).eval()


def _sd15(seed: int):
    from diffusers import PNDMScheduler, StableDiffusionPipeline

    tokenizer = clip_tokenizer()
    text_encoder = _clip_text_encoder(tokenizer, with_projection=False, seed=seed)
    unet = _sd15_unet(seed)
    vae = _kl_vae(latent_channels=4, seed=seed)
    scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", skip_prk_steps=True,
                              set_alpha_to_one=False, steps_offset=1)
    return StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)


def _sdxl(seed: int):
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline

    tokenizer = clip_tokenizer()
    text_encoder = _clip_text_encoder(tokenizer, with_projection=False, seed=seed)
    tokenizer_2 = clip_tokenizer()
    text_encoder_2 = _clip_text_encoder(tokenizer_2, with_projection=True, seed=seed + 1)
    unet = _sdxl_unet(seed)
    vae = _kl_vae(latent_channels=4, seed=seed)
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       steps_offset=1, timestep_spacing="leading")
    return StableDiffusionXLPipeline(vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2,
                                     tokenizer=tokenizer, tokenizer_2=tokenizer_2, unet=unet, scheduler=scheduler)


def _sd3(seed: int):
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline

    tokenizer, tokenizer_2, tokenizer_3 = clip_tokenizer(), clip_tokenizer(), t5_tokenizer()
    text_encoder = _clip_text_encoder(tokenizer, with_projection=True, seed=seed)
    text_encoder_2 = _clip_text_encoder(tokenizer_2, with_projection=True, seed=seed + 1)
    text_encoder_3 = _t5_text_encoder(tokenizer_3, seed=seed, width=_SD3_T5_WIDTH)
    torch.manual_seed(seed)
    transformer = SD3Transformer2DModel(**_SD3_TRANSFORMER).eval()
    vae = _kl_vae(latent_channels=16, seed=seed, use_quant_conv=False, use_post_quant_conv=False,
                  shift_factor=0.0609, scaling_factor=1.5305)
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    return StableDiffusion3Pipeline(transformer=transformer, scheduler=scheduler, vae=vae,
                                    text_encoder=text_encoder, tokenizer=tokenizer, text_encoder_2=text_encoder_2,
                                    tokenizer_2=tokenizer_2, text_encoder_3=text_encoder_3, tokenizer_3=tokenizer_3)


def _flux(seed: int):
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

    tokenizer, tokenizer_2 = clip_tokenizer(), t5_tokenizer()
    text_encoder = _clip_text_encoder(tokenizer, with_projection=False, seed=seed)
    text_encoder_2 = _t5_text_encoder(tokenizer_2, seed=seed)
    torch.manual_seed(seed)
    transformer = FluxTransformer2DModel(**_FLUX_TRANSFORMER).eval()
    # FLUX packs 2x2 latent patches into tokens: 4 latent channels -> 16 transformer channels.
    vae = _kl_vae(latent_channels=_FLUX_TRANSFORMER["in_channels"] // 4, seed=seed, use_quant_conv=False,
                  use_post_quant_conv=False, shift_factor=0.1159, scaling_factor=0.3611)
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                                                base_image_seq_len=256, max_image_seq_len=4096)
    return FluxPipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                        text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2, transformer=transformer)


def _zimage(seed: int):
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, ZImagePipeline, ZImageTransformer2DModel

    tokenizer = _qwen_tokenizer()
    text_encoder = _qwen3_text_encoder(tokenizer, seed=seed)
    torch.manual_seed(seed)
    transformer = ZImageTransformer2DModel(in_channels=16, n_layers=2, cap_feat_dim=_ZIMAGE_TEXT_WIDTH,
                                           rope_theta=256.0, t_scale=1000.0, axes_dims=[8, 4, 4],
                                           axes_lens=[1024, 32, 32], **_ZIMAGE_TRANSFORMER).eval()
    vae = _kl_vae(latent_channels=16, seed=seed, use_quant_conv=False, use_post_quant_conv=False,
                  shift_factor=0.1159, scaling_factor=0.3611)
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=False)
    return ZImagePipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                          transformer=transformer)


def _pixart_sigma(seed: int):
    import torch
    from diffusers import DPMSolverMultistepScheduler, PixArtSigmaPipeline, PixArtTransformer2DModel

    tokenizer = t5_tokenizer()
    text_encoder = _t5_text_encoder(tokenizer, seed=seed)
    torch.manual_seed(seed)
    transformer = PixArtTransformer2DModel(sample_size=16, num_layers=1, patch_size=2, attention_head_dim=8,
                                           num_attention_heads=2, caption_channels=_T5_WIDTH, in_channels=4,
                                           cross_attention_dim=16, out_channels=8,  # learned variance: 2 x 4
                                           attention_bias=True, activation_fn="gelu-approximate",
                                           num_embeds_ada_norm=1000, norm_type="ada_norm_single",
                                           norm_elementwise_affine=False, norm_eps=1e-6).eval()
    vae = _kl_vae(latent_channels=4, seed=seed)
    scheduler = DPMSolverMultistepScheduler(beta_start=0.0001, beta_end=0.02, beta_schedule="linear")
    return PixArtSigmaPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer,
                               scheduler=scheduler)


def _sana(seed: int):
    import torch
    from diffusers import AutoencoderDC, DPMSolverMultistepScheduler, SanaPipeline, SanaTransformer2DModel

    text_width = 16
    tokenizer = _gemma_tokenizer()
    text_encoder = _gemma2_text_encoder(tokenizer, width=text_width, seed=seed)
    torch.manual_seed(seed)
    transformer = SanaTransformer2DModel(patch_size=1, in_channels=4, out_channels=4, num_layers=1,
                                         num_attention_heads=2, attention_head_dim=4, num_cross_attention_heads=2,
                                         cross_attention_head_dim=4, cross_attention_dim=8,
                                         caption_channels=text_width, sample_size=16).eval()
    torch.manual_seed(seed)
    vae = AutoencoderDC(in_channels=3, latent_channels=4, attention_head_dim=2,
                        encoder_block_types=("ResBlock", "EfficientViTBlock"),
                        decoder_block_types=("ResBlock", "EfficientViTBlock"),
                        encoder_block_out_channels=(8, 8), decoder_block_out_channels=(8, 8),
                        encoder_qkv_multiscales=((), (5,)), decoder_qkv_multiscales=((), (5,)),
                        encoder_layers_per_block=(1, 1), decoder_layers_per_block=(1, 1),
                        downsample_block_type="conv", upsample_block_type="interpolate",
                        decoder_norm_types="rms_norm", decoder_act_fns="silu", scaling_factor=0.41407).eval()
    scheduler = DPMSolverMultistepScheduler(beta_schedule="linear", prediction_type="flow_prediction",
                                            use_flow_sigmas=True, flow_shift=3.0)
    return SanaPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer,
                        scheduler=scheduler)


_BUILDERS = {"sd15": _sd15, "sdxl": _sdxl, "sd3": _sd3, "flux-dev": _flux, "zimage-turbo": _zimage,
             "pixart-sigma": _pixart_sigma, "sana": _sana}


def _check_family(family: str, known: tuple[str, ...]) -> None:
    if family not in known:
        raise ValueError(f"`family` must be one of {', '.join(known)}, but is {family!r}.")


def _save(model, folder: pathlib.Path) -> None:
    """`model.save_pretrained(folder)`, written to a sibling folder first and renamed into place.

    So an interrupted build leaves no half-written folder that the idempotence check would take as finished.
    """
    import shutil

    folder.parent.mkdir(parents=True, exist_ok=True)
    if folder.exists() and any(folder.iterdir()):  # a folder with other files in it: write in place
        model.save_pretrained(folder)
        return
    partial = pathlib.Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".partial", dir=folder.parent))
    try:
        model.save_pretrained(partial)
        if folder.exists():
            folder.rmdir()
        partial.rename(folder)
    finally:
        if partial.exists():
            shutil.rmtree(partial)


def make_tiny_model(family: str, folder: str | os.PathLike, *, seed: int = 0) -> pathlib.Path:
    """Write a tiny random pipeline of `family` to `folder` (created), return the folder.

    Idempotent: if folder/model_index.json exists, return at once. Every component is built from config after
    `torch.manual_seed(seed)`, so the same seed writes the same weights. Load it back with
    `DiffusionPipeline.from_pretrained(folder)`; call it at `SAMPLE_SIZE[family]` with `CALL_KWARGS[family]`.
    """
    _check_family(family, FAMILIES)
    folder = pathlib.Path(folder)
    if (folder / "model_index.json").exists():
        return folder
    _save(_BUILDERS[family](seed), folder)
    return folder


def _wake_zero_init(module, seed: int) -> None:
    """Re-initialise, with their layer's default random init, the layers a ControlNet starts at zero.

    ControlNets start with zero output projections so that training begins from the base model; with random
    weights that would make the control image have no effect at all, and tests could not tell it was wired in.
    """
    import torch

    torch.manual_seed(seed)
    with torch.no_grad():
        for layer in module.modules():
            weight = getattr(layer, "weight", None)
            if isinstance(weight, torch.nn.Parameter) and hasattr(layer, "reset_parameters") and not weight.any():
                layer.reset_parameters()


def make_tiny_controlnet(family: str, folder: str | os.PathLike, *, seed: int = 0) -> pathlib.Path:
    """Write a tiny random ControlNet matching make_tiny_model(family)'s denoiser to `folder`; return the folder.

    Idempotent like `make_tiny_model` (checks folder/config.json). The layers a ControlNet starts at zero get
    their layer's default random init instead, so the control image visibly changes the result. Load it with
    `getattr(diffusers, CONTROLNET_CLASS[family]).from_pretrained(folder)`; pass the control image as
    `CONTROL_IMAGE_ARG[family]`.
    """
    import torch

    _check_family(family, CONTROLNET_FAMILIES)
    folder = pathlib.Path(folder)
    if (folder / "config.json").exists():
        return folder
    if family in ("sd15", "sdxl"):
        from diffusers import ControlNetModel

        unet = (_sd15_unet if family == "sd15" else _sdxl_unet)(seed)  # the very weights make_tiny_model writes
        torch.manual_seed(seed)
        controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=_SD_CONTROL_EMBEDDING)
    elif family == "sd3":
        from diffusers import SD3ControlNetModel

        torch.manual_seed(seed)
        controlnet = SD3ControlNetModel(**{**_SD3_TRANSFORMER, "num_layers": 1})
    elif family == "flux-dev":
        from diffusers import FluxControlNetModel

        torch.manual_seed(seed)
        controlnet = FluxControlNetModel(**_FLUX_TRANSFORMER)
    else:  # zimage: the control layers only; the pipeline lends it the transformer's embedders and refiners
        from diffusers import ZImageControlNetModel

        torch.manual_seed(seed)
        controlnet = ZImageControlNetModel(control_layers_places=[0], control_refiner_layers_places=[0],
                                           control_in_dim=16, add_control_noise_refiner="control_noise_refiner",
                                           **_ZIMAGE_TRANSFORMER)
    _wake_zero_init(controlnet, seed)
    _save(controlnet.eval(), folder)
    return folder


IP_ADAPTER_FILE = "ip-adapter.safetensors"
_IMAGE_ENCODER = dict(hidden_size=32, projection_dim=32, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=37, image_size=32, patch_size=4)


def make_tiny_ip_adapter(denoiser, folder: str | os.PathLike, *, seed: int = 0) -> pathlib.Path:
    """Write a tiny random IP-Adapter for `denoiser` to `folder`, with a tiny random CLIP image encoder in
    `folder/image_encoder`; returns the weights file. Idempotent. For a UNet2DConditionModel (SD, SDXL, the
    built-in model) the weights are in h94/IP-Adapter's safetensors layout (`image_proj.*`,
    `ip_adapter.{k}.to_k_ip/to_v_ip.weight` for cross-attention layers k = 1, 3, 5, ...); for FLUX's transformer in
    XLabs' (`ip_adapter_proj_model.*`, `double_blocks.{i}.processor.ip_adapter_double_stream_k_proj/v_proj.*`).
    `style=` reads them with `ip_adapter=` this file, as `pipe.load_ip_adapter(folder, subfolder="",
    weight_name=IP_ADAPTER_FILE)` would.

    The adapter's key/value weights are random, not zero, so a style picture visibly changes the result.
    """
    import torch
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    folder = pathlib.Path(folder)
    weights = folder / IP_ADAPTER_FILE
    if weights.is_file():
        return weights
    torch.manual_seed(seed)
    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**_IMAGE_ENCODER)).eval()
    _save(encoder, folder / "image_encoder")
    embed_dim, tokens = _IMAGE_ENCODER["projection_dim"], 4
    if hasattr(denoiser.config, "joint_attention_dim"):  # FLUX: only the double-stream blocks read the image
        cross, inner = denoiser.config.joint_attention_dim, denoiser.inner_dim
        state = {"ip_adapter_proj_model.proj.weight": torch.randn(tokens * cross, embed_dim) * 0.2,
                 "ip_adapter_proj_model.proj.bias": torch.zeros(tokens * cross),
                 "ip_adapter_proj_model.norm.weight": torch.ones(cross),
                 "ip_adapter_proj_model.norm.bias": torch.zeros(cross)}
        for i in range(denoiser.config.num_layers):
            for part in ("k", "v"):
                prefix = f"double_blocks.{i}.processor.ip_adapter_double_stream_{part}_proj"
                state[f"{prefix}.weight"] = torch.randn(inner, cross) * cross ** -0.5
                state[f"{prefix}.bias"] = torch.zeros(inner)
        save_file({k: v.contiguous() for k, v in state.items()}, str(weights))
        return weights
    cross = denoiser.config.cross_attention_dim
    state = {"image_proj.proj.weight": torch.randn(tokens * cross, embed_dim) * 0.2,
             "image_proj.proj.bias": torch.zeros(tokens * cross),
             "image_proj.norm.weight": torch.ones(cross), "image_proj.norm.bias": torch.zeros(cross)}
    channels = denoiser.config.block_out_channels
    key = 1  # diffusers numbers the cross-attention layers 1, 3, 5, ... in attn_processors order
    for name in denoiser.attn_processors:
        if not name.endswith("attn2.processor"):
            continue
        block = int(name.split(".")[1]) if not name.startswith("mid_block") else None
        hidden = (channels[-1] if block is None else
                  list(reversed(channels))[block] if name.startswith("up_blocks") else channels[block])
        for part in ("to_k_ip", "to_v_ip"):
            state[f"ip_adapter.{key}.{part}.weight"] = torch.randn(hidden, cross) * cross ** -0.5
        key += 2
    save_file({k: v.contiguous() for k, v in state.items()}, str(weights))
    return weights
