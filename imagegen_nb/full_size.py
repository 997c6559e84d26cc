"""The published architectures of the known Hub families, as their configs: each denoiser, text encoder and VAE can be
built from here with random weights, or on PyTorch's meta device with no weights at all (shapes only: nothing is
allocated and nothing downloaded), to count its parameters or its FLOPs.

The configs are the `config.json` files the families publish on the Hub (named per entry below); `PUBLISHED` holds
the parameter counts their makers state, and `tests/test_teach_architecture.py` checks the builds against them.

>>> import torch
>>> from imagegen_nb import full_size
>>> with torch.device("meta"):  # shapes only: no 3.4 GB of random weights
...     unet = full_size.denoiser("sd15")
>>> sum(p.numel() for p in unet.parameters())
859520964
"""

from __future__ import annotations

__all__ = ["FAMILIES", "PUBLISHED", "TEXT_TOKENS", "denoiser", "denoiser_inputs", "text_encoders", "vae"]

FAMILIES = ("sd15", "sdxl", "sd3", "flux-dev", "zimage-turbo")

# ----------------------------------------------------------------------------------------------------------------
# Denoisers: (diffusers class, config)

_DENOISERS: dict[str, tuple[str, dict[str, object]]] = {
    # stable-diffusion-v1-5/stable-diffusion-v1-5, unet/config.json
    "sd15": ("UNet2DConditionModel", {
        "act_fn": "silu",
        "attention_head_dim": 8,
        "block_out_channels": [320, 640, 1280, 1280],
        "center_input_sample": False,
        "cross_attention_dim": 768,
        "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
        "downsample_padding": 1,
        "flip_sin_to_cos": True,
        "freq_shift": 0,
        "in_channels": 4,
        "layers_per_block": 2,
        "mid_block_scale_factor": 1,
        "norm_eps": 1e-05,
        "norm_num_groups": 32,
        "out_channels": 4,
        "sample_size": 64,
        "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    }),
    # stabilityai/stable-diffusion-xl-base-1.0, unet/config.json
    "sdxl": ("UNet2DConditionModel", {
        "act_fn": "silu",
        "addition_embed_type": "text_time",
        "addition_embed_type_num_heads": 64,
        "addition_time_embed_dim": 256,
        "attention_head_dim": [5, 10, 20],
        "block_out_channels": [320, 640, 1280],
        "center_input_sample": False,
        "class_embed_type": None,
        "class_embeddings_concat": False,
        "conv_in_kernel": 3,
        "conv_out_kernel": 3,
        "cross_attention_dim": 2048,
        "cross_attention_norm": None,
        "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
        "downsample_padding": 1,
        "dual_cross_attention": False,
        "encoder_hid_dim": None,
        "encoder_hid_dim_type": None,
        "flip_sin_to_cos": True,
        "freq_shift": 0,
        "in_channels": 4,
        "layers_per_block": 2,
        "mid_block_only_cross_attention": None,
        "mid_block_scale_factor": 1,
        "mid_block_type": "UNetMidBlock2DCrossAttn",
        "norm_eps": 1e-05,
        "norm_num_groups": 32,
        "num_attention_heads": None,
        "num_class_embeds": None,
        "only_cross_attention": False,
        "out_channels": 4,
        "projection_class_embeddings_input_dim": 2816,
        "resnet_out_scale_factor": 1.0,
        "resnet_skip_time_act": False,
        "resnet_time_scale_shift": "default",
        "sample_size": 128,
        "time_cond_proj_dim": None,
        "time_embedding_act_fn": None,
        "time_embedding_dim": None,
        "time_embedding_type": "positional",
        "timestep_post_act": None,
        "transformer_layers_per_block": [1, 2, 10],
        "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
        "upcast_attention": None,
        "use_linear_projection": True,
    }),
    # stabilityai/stable-diffusion-3-medium-diffusers, transformer/config.json
    "sd3": ("SD3Transformer2DModel", {
        "attention_head_dim": 64,
        "caption_projection_dim": 1536,
        "in_channels": 16,
        "joint_attention_dim": 4096,
        "num_attention_heads": 24,
        "num_layers": 24,
        "out_channels": 16,
        "patch_size": 2,
        "pooled_projection_dim": 2048,
        "pos_embed_max_size": 192,
        "sample_size": 128,
    }),
    # black-forest-labs/FLUX.1-dev, transformer/config.json
    "flux-dev": ("FluxTransformer2DModel", {
        "attention_head_dim": 128,
        "axes_dims_rope": [16, 56, 56],
        "guidance_embeds": True,
        "in_channels": 64,
        "joint_attention_dim": 4096,
        "num_attention_heads": 24,
        "num_layers": 19,
        "num_single_layers": 38,
        "patch_size": 1,
        "pooled_projection_dim": 768,
    }),
    # Tongyi-MAI/Z-Image-Turbo, transformer/config.json
    "zimage-turbo": ("ZImageTransformer2DModel", {
        "all_f_patch_size": [1],
        "all_patch_size": [2],
        "axes_dims": [32, 48, 48],
        "axes_lens": [1536, 512, 512],
        "cap_feat_dim": 2560,
        "dim": 3840,
        "in_channels": 16,
        "n_heads": 30,
        "n_kv_heads": 30,
        "n_layers": 30,
        "n_refiner_layers": 2,
        "norm_eps": 1e-05,
        "qk_norm": True,
        "rope_theta": 256.0,
        "t_scale": 1000.0,
    }),
}

# ----------------------------------------------------------------------------------------------------------------
# Text encoders: (name, transformers class, config). The CLIP text configs are the text parts of
# openai/clip-vit-large-patch14 (SD 1.5's, SDXL's, SD3's and FLUX's text_encoder/config.json) and
# laion/CLIP-ViT-bigG-14-laion2B-39B-b160k (SDXL's and SD3's text_encoder_2); T5 is google/t5-v1_1-xxl's encoder
# (SD3's text_encoder_3, FLUX's text_encoder_2); Qwen3 is Qwen/Qwen3-4B (Z-Image-Turbo's text_encoder).

_CLIP_L = dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12,
               max_position_embeddings=77, vocab_size=49408, hidden_act="quick_gelu", layer_norm_eps=1e-5,
               projection_dim=768)
_CLIP_G = dict(hidden_size=1280, intermediate_size=5120, num_attention_heads=20, num_hidden_layers=32,
               max_position_embeddings=77, vocab_size=49408, hidden_act="gelu", layer_norm_eps=1e-5,
               projection_dim=1280)
_T5_XXL = dict(d_model=4096, d_ff=10240, d_kv=64, num_heads=64, num_layers=24, vocab_size=32128,
               feed_forward_proj="gated-gelu", relative_attention_num_buckets=32, relative_attention_max_distance=128,
               layer_norm_epsilon=1e-6, is_encoder_decoder=False, use_cache=False)
_QWEN3_4B = dict(hidden_size=2560, intermediate_size=9728, num_attention_heads=32, num_hidden_layers=36,
                 num_key_value_heads=8, head_dim=128, vocab_size=151936, max_position_embeddings=40960,
                 rms_norm_eps=1e-6, tie_word_embeddings=True, attention_bias=False)

_TEXT_ENCODERS: dict[str, dict[str, tuple[str, str, str, dict[str, object]]]] = {
    # component -> (name, transformers model class, transformers config class, config)
    "sd15": {"text_encoder": ("CLIP ViT-L/14", "CLIPTextModel", "CLIPTextConfig", _CLIP_L)},
    "sdxl": {"text_encoder": ("CLIP ViT-L/14", "CLIPTextModel", "CLIPTextConfig", _CLIP_L),
             "text_encoder_2": ("OpenCLIP ViT-bigG/14", "CLIPTextModelWithProjection", "CLIPTextConfig", _CLIP_G)},
    "sd3": {"text_encoder": ("CLIP ViT-L/14", "CLIPTextModelWithProjection", "CLIPTextConfig", _CLIP_L),
            "text_encoder_2": ("OpenCLIP ViT-bigG/14", "CLIPTextModelWithProjection", "CLIPTextConfig", _CLIP_G),
            "text_encoder_3": ("T5-XXL encoder", "T5EncoderModel", "T5Config", _T5_XXL)},
    "flux-dev": {"text_encoder": ("CLIP ViT-L/14", "CLIPTextModel", "CLIPTextConfig", _CLIP_L),
                 "text_encoder_2": ("T5-XXL encoder", "T5EncoderModel", "T5Config", _T5_XXL)},
    "zimage-turbo": {"text_encoder": ("Qwen3-4B", "Qwen3Model", "Qwen3Config", _QWEN3_4B)},
}

# ----------------------------------------------------------------------------------------------------------------
# VAEs (AutoencoderKL): vae/config.json of stable-diffusion-v1-5, stable-diffusion-xl-base-1.0,
# stable-diffusion-3-medium-diffusers, FLUX.1-dev and Z-Image-Turbo (which ships FLUX's). Four blocks: 8x downsampling.

_KL_BLOCKS = dict(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 4,
                  up_block_types=["UpDecoderBlock2D"] * 4, block_out_channels=[128, 256, 512, 512],
                  layers_per_block=2, norm_num_groups=32, act_fn="silu")
_VAES: dict[str, dict[str, object]] = {
    "sd15": dict(_KL_BLOCKS, latent_channels=4, sample_size=512, scaling_factor=0.18215),
    "sdxl": dict(_KL_BLOCKS, latent_channels=4, sample_size=1024, scaling_factor=0.13025, force_upcast=True),
    "sd3": dict(_KL_BLOCKS, latent_channels=16, sample_size=1024, scaling_factor=1.5305, shift_factor=0.0609,
                use_quant_conv=False, use_post_quant_conv=False),
    "flux-dev": dict(_KL_BLOCKS, latent_channels=16, sample_size=1024, scaling_factor=0.3611, shift_factor=0.1159,
                     use_quant_conv=False, use_post_quant_conv=False),
    "zimage-turbo": dict(_KL_BLOCKS, latent_channels=16, sample_size=1024, scaling_factor=0.3611,
                         shift_factor=0.1159, use_quant_conv=False, use_post_quant_conv=False),
}

# Parameter counts as the makers state them (rounded as they state them), to check the builds against:
# SD 1.5: "860M UNet and 123M text encoder" (the Stable Diffusion v1 model cards; Rombach et al. 2022);
# SDXL: a 2.6B UNet, 817M of text encoders (Podell et al. 2023, "SDXL", Table 1);
# SD3 medium: "2 billion parameters" (the stable-diffusion-3-medium model card); T5-XXL's encoder 4.7B (Esser et al.
# 2024, "Scaling Rectified Flow Transformers", section 5.3); FLUX.1-dev: "a 12 billion parameter rectified flow
# transformer" (its model card); Z-Image: 6B parameters (Z-Image team 2025, "Z-Image: an efficient image generation
# foundation model with single-stream diffusion transformer"); Qwen3-4B: 4.0B (its model card); the KL VAEs ~84M.
PUBLISHED: dict[str, dict[str, float]] = {
    "sd15": {"denoiser": 860e6, "text encoders": 123e6, "vae": 84e6},
    "sdxl": {"denoiser": 2.6e9, "text encoders": 817e6, "vae": 84e6},
    "sd3": {"denoiser": 2e9, "text_encoder_3": 4.7e9},
    "flux-dev": {"denoiser": 12e9, "text_encoder_2": 4.7e9},
    "zimage-turbo": {"denoiser": 6e9, "text encoders": 4.0e9},
}

# How many text vectors each family's denoiser reads per prompt, as its pipeline pads them by default: CLIP's 77
# (SD, SDXL); SD3 77 CLIP + 256 T5 (`max_sequence_length=256`); FLUX 512 T5 (`max_sequence_length=512`). Z-Image drops
# the padding and reads the prompt's own tokens in its chat template; 128 is an assumed prompt length, not a default.
TEXT_TOKENS: dict[str, int] = {"sd15": 77, "sdxl": 77, "sd3": 77 + 256, "flux-dev": 512, "zimage-turbo": 128}


def _check_family(family: str) -> None:
    if family not in FAMILIES:
        raise ValueError(f"`family` must be one of {', '.join(FAMILIES)}, but is {family!r}.")


def denoiser(family: str = "sd15"):
    """The family's published denoiser (UNet or transformer), built from config with random weights, in eval mode.

    Under `with torch.device("meta"):` nothing is allocated. On a real device the fp32 weights take 4 bytes per
    parameter: about 3.4 GB for SD 1.5's UNet (860 M), 10.3 GB for SDXL's (2.57 G), 48 GB for FLUX.1's (11.9 G).

    >>> import torch
    >>> from imagegen_nb import full_size
    >>> with torch.device("meta"):
    ...     type(full_size.denoiser("flux-dev")).__name__
    'FluxTransformer2DModel'
    """
    import diffusers

    _check_family(family)
    cls, config = _DENOISERS[family]
    return getattr(diffusers, cls).from_config(dict(config)).eval()


def text_encoders(family: str) -> dict[str, tuple[str, object]]:
    """The family's text encoders by pipeline component name (`text_encoder`, `text_encoder_2`, ...), each as
    (what it is, the transformers model built from config with random weights).

    >>> import torch
    >>> from imagegen_nb import full_size
    >>> with torch.device("meta"):
    ...     encoders = full_size.text_encoders("sdxl")
    >>> [(k, name) for k, (name, _) in encoders.items()]
    [('text_encoder', 'CLIP ViT-L/14'), ('text_encoder_2', 'OpenCLIP ViT-bigG/14')]
    """
    import transformers

    _check_family(family)
    out = {}
    for component, (name, model_class, config_class, config) in _TEXT_ENCODERS[family].items():
        cfg = getattr(transformers, config_class)(**config)
        out[component] = (name, getattr(transformers, model_class)(cfg).eval())
    return out


def vae(family: str):
    """The family's AutoencoderKL, built from its published config with random weights.

    >>> import torch
    >>> from imagegen_nb import full_size
    >>> with torch.device("meta"):
    ...     full_size.vae("sd3").config.latent_channels
    16
    """
    from diffusers import AutoencoderKL

    _check_family(family)
    return AutoencoderKL.from_config(dict(_VAES[family])).eval()


def denoiser_inputs(family: str, *, height: int | None = None, width: int | None = None, batch: int = 1,
                    text_tokens: int | None = None) -> dict[str, object]:
    """Keyword arguments for one call of `denoiser(family)` as the family's pipeline makes it, filled with zeros on
    the current default device (under `with torch.device("meta"):` shapes only).

    `height` and `width` are the picture's, in pixels (default: the family's size in the registry); the latent is
    8x smaller and the transformers cut it into 2x2 patches (FLUX packs them into 64 channels). `batch` counts the
    pictures in the call: 2 for one picture with classifier-free guidance (unconditional and conditional together).
    `text_tokens` defaults to `TEXT_TOKENS[family]`.

    >>> import torch
    >>> from imagegen_nb import full_size
    >>> with torch.device("meta"):
    ...     inputs = full_size.denoiser_inputs("flux-dev", height=512, width=512)
    >>> tuple(inputs["hidden_states"].shape), tuple(inputs["encoder_hidden_states"].shape)
    ((1, 1024, 64), (1, 512, 4096))
    """
    import torch

    from . import registry

    _check_family(family)
    size = registry.FAMILIES[family].default_size
    height, width = height or size, width or size
    factor = registry.FAMILIES[family].size_factor
    for name, value in (("height", height), ("width", width)):
        if not isinstance(value, int) or value <= 0 or value % factor:
            raise ValueError(f"`{name}` must be a positive multiple of {factor} for {family}, but is {value!r}.")
    if not isinstance(batch, int) or batch < 1:
        raise ValueError(f"`batch` must be a positive integer, but is {batch!r}.")
    length = TEXT_TOKENS[family] if text_tokens is None else text_tokens
    if not isinstance(length, int) or length < 1:
        raise ValueError(f"`text_tokens` must be a positive integer, but is {text_tokens!r}.")
    h, w = height // 8, width // 8  # the latent: every KL VAE here downsamples 8x
    cls, config = _DENOISERS[family]
    t = torch.full((batch,), 500.0)
    if cls == "UNet2DConditionModel":
        inputs = {"sample": torch.zeros(batch, config["in_channels"], h, w), "timestep": t,
                  "encoder_hidden_states": torch.zeros(batch, length, config["cross_attention_dim"])}
        if config.get("addition_embed_type") == "text_time":  # SDXL: pooled text + six size numbers
            pooled = config["projection_class_embeddings_input_dim"] - 6 * config["addition_time_embed_dim"]
            inputs["added_cond_kwargs"] = {"text_embeds": torch.zeros(batch, pooled),
                                           "time_ids": torch.zeros(batch, 6)}
        return inputs
    if cls == "SD3Transformer2DModel":
        return {"hidden_states": torch.zeros(batch, config["in_channels"], h, w), "timestep": t,
                "encoder_hidden_states": torch.zeros(batch, length, config["joint_attention_dim"]),
                "pooled_projections": torch.zeros(batch, config["pooled_projection_dim"])}
    if cls == "FluxTransformer2DModel":
        tokens = (h // 2) * (w // 2)  # 2x2 latent patches of 16 channels, packed into 64
        inputs = {"hidden_states": torch.zeros(batch, tokens, config["in_channels"]), "timestep": t / 1000,
                  "encoder_hidden_states": torch.zeros(batch, length, config["joint_attention_dim"]),
                  "pooled_projections": torch.zeros(batch, config["pooled_projection_dim"]),
                  "img_ids": torch.zeros(tokens, 3), "txt_ids": torch.zeros(length, 3)}
        if config.get("guidance_embeds"):
            inputs["guidance"] = torch.full((batch,), 3.5)
        return inputs
    # Z-Image: lists, one (C, frames, h, w) latent and one (tokens, width) caption per picture
    return {"x": [torch.zeros(config["in_channels"], 1, h, w) for _ in range(batch)], "t": t / 1000,
            "cap_feats": [torch.zeros(length, config["cap_feat_dim"]) for _ in range(batch)]}
