"""The built-in model's parts, built from config: a word-level tokenizer, a bidirectional text encoder, a VAE, a UNet
and a ControlNet, all standard diffusers/transformers classes so `StableDiffusionPipeline` runs them unchanged.

The text encoder is a tiny `T5EncoderModel` rather than CLIP's: CLIP's text transformer is causal, so in
"a red circle to the left of a blue square" the word "red" never sees "left". A bidirectional encoder (the kind SD3,
FLUX and PixArt use) lets every word know the whole sentence, which is what position and attribute binding need.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import world


@dataclass
class Architecture:
    """Sizes of the built-in U-Net model's parts. The shipped model has these sizes with `text_film=True`
    (`ARCHITECTURES["film"]`, `train --arch film`); the defaults leave text FiLM out."""

    vae_channels: tuple[int, ...] = (16, 32, 64)  # three blocks: 64x64 pixels -> 16x16 latents
    latent_channels: int = 4
    # GroupNorm subtracts each group's mean over the picture: with few channels per group a flat background's
    # colour is normalised away. Four groups keep 4 to 16 channels together, enough to carry absolute colour.
    vae_norm_groups: int = 4
    text_width: int = 128  # T5 d_model, and the UNet's cross-attention width
    text_layers: int = 3
    text_heads: int = 4
    max_tokens: int = 24  # captions of the world are at most 16 words
    unet_channels: tuple[int, ...] = (48, 96, 128)
    unet_layers_per_block: int = 1
    unet_head_dim: int = 32
    # The prompt, pooled, scales and shifts every ResNet block's features (FiLM, through the timestep embedding).
    # Off by default; the shipped model has it (`train --arch film`, grown from a model without it: tiny.surgery).
    # Cross-attention alone adds the prompt's words to features; "red goes left" needs the prompt to multiply a
    # feature that knows where it is (from the border's zero padding), and from pure noise a UNet without FiLM does
    # not learn that (benchmarks/position_capacity.py).
    text_film: bool = False
    controlnet_embedding_channels: tuple[int, ...] = (16, 32, 64)  # 3 entries: downsample 4x like the VAE
    norm_groups: int = 4  # UNet GroupNorm groups: 12 to 32 channels per group (see vae_norm_groups)


SMOKE = Architecture(text_width=32, text_layers=1, text_heads=2, unet_channels=(16, 32, 32), text_film=True,
                     unet_head_dim=8, controlnet_embedding_channels=(8, 16, 16), norm_groups=8)
ARCHITECTURES = {"default": Architecture(), "film": Architecture(text_film=True), "smoke": SMOKE}


def build_tokenizer(folder: str | Path, arch: Architecture = Architecture(), *, chat_template: str | None = None):
    """A word-level tokenizer for the world's vocabulary: lower-cased, one token per known word (and, for
    pipelines that wrap prompts in one, such as Z-Image's, a `chat_template`).

    A word it does not know becomes `<unk>`, so any prompt tokenizes without error. Saved as a plain
    `tokenizer.json` and loaded with `PreTrainedTokenizerFast`, so it needs nothing beyond `tokenizers`.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "</s>", "<unk>"]
    words = specials + world.vocabulary() + [".", ","]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                       special_tokens=[("</s>", 1)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                                   model_max_length=arch.max_tokens)
    if chat_template is not None:
        fast.chat_template = chat_template
    fast.save_pretrained(folder)
    return PreTrainedTokenizerFast.from_pretrained(folder, local_files_only=True)


def build_text_encoder(vocab_size: int, arch: Architecture = Architecture()):
    from transformers import T5Config, T5EncoderModel

    config = T5Config(vocab_size=vocab_size, d_model=arch.text_width, d_kv=arch.text_width // arch.text_heads,
                      d_ff=arch.text_width * 2, num_layers=arch.text_layers, num_heads=arch.text_heads,
                      relative_attention_num_buckets=16, relative_attention_max_distance=32, dropout_rate=0.0,
                      feed_forward_proj="gated-gelu", is_encoder_decoder=False, use_cache=False,
                      pad_token_id=0, eos_token_id=1)
    return T5EncoderModel(config)


def build_vae(arch: Architecture = Architecture()):
    from diffusers import AutoencoderKL

    n = len(arch.vae_channels)
    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * n,
                         up_block_types=("UpDecoderBlock2D",) * n, block_out_channels=arch.vae_channels,
                         layers_per_block=1, latent_channels=arch.latent_channels,
                         norm_num_groups=arch.vae_norm_groups, sample_size=world.SIZE)


def build_unet(arch: Architecture = Architecture()):
    from diffusers import UNet2DConditionModel

    # Cross-attention at every resolution (16x16 and 8x8) and in the middle: where a shape goes is decided at 16x16.
    down = ("CrossAttnDownBlock2D",) * (len(arch.unet_channels) - 1) + ("DownBlock2D",)
    up = ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (len(arch.unet_channels) - 1)
    latent_size = world.SIZE // 2 ** (len(arch.vae_channels) - 1)
    return UNet2DConditionModel(
        sample_size=latent_size, in_channels=arch.latent_channels, out_channels=arch.latent_channels,
        down_block_types=down, up_block_types=up, block_out_channels=arch.unet_channels,
        layers_per_block=arch.unet_layers_per_block, cross_attention_dim=arch.text_width,
        attention_head_dim=[max(1, c // arch.unet_head_dim) for c in arch.unet_channels],
        norm_num_groups=arch.norm_groups,
        **(dict(addition_embed_type="text", addition_embed_type_num_heads=arch.text_heads,
                resnet_time_scale_shift="scale_shift") if arch.text_film else {}))


def build_controlnet(unet, arch: Architecture = Architecture()):
    from diffusers import ControlNetModel

    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=arch.controlnet_embedding_channels)
    heads = unet.config.addition_embed_type_num_heads
    if unet.config.addition_embed_type == "text" and controlnet.config.addition_embed_type_num_heads != heads:
        # from_unet leaves the pooled-text heads at their default; the ControlNet must pool the prompt as its UNet
        copy = ControlNetModel.from_config(controlnet.config, addition_embed_type_num_heads=heads)
        copy.load_state_dict(controlnet.state_dict())
        controlnet = copy
    return controlnet


def build_scheduler(kind: str = "ddpm", *, prediction_type: str = "epsilon", zero_terminal_snr: bool = False):
    """The noise schedule of Stable Diffusion 1.5 (scaled linear betas, 1000 steps), predicting `prediction_type`.
    The defaults (epsilon on SD 1.5's betas, as tiny.train's TrainConfig has them) are not the shipped model's: it
    predicts v with `zero_terminal_snr=True` and samples with `kind="dpm"` (DPM-Solver++, trailing spacing).

    `zero_terminal_snr=True` rescales the betas so that the last timestep is pure noise (Lin et al. 2024, "Common
    Diffusion Noise Schedules and Sample Steps are Flawed"): SD 1.5's schedule leaves 7% of the picture in x_T,
    so a model trained on it reads the layout from that residue instead of deciding it from the prompt, and at
    sampling time, when x_T is pure noise, where things go is left to the noise. Needs v-prediction (epsilon says
    nothing about the picture when x_t is all noise).
    """
    from diffusers import DDPMScheduler, DPMSolverMultistepScheduler

    if zero_terminal_snr and prediction_type == "epsilon":
        raise ValueError("zero_terminal_snr needs prediction_type='v_prediction': at the last timestep x_t is pure "
                         "noise, so predicting the noise says nothing about the picture")
    cfg = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
               prediction_type=prediction_type, steps_offset=1, rescale_betas_zero_snr=zero_terminal_snr)
    if kind == "ddpm":
        return DDPMScheduler(**cfg, clip_sample=False)
    # "trailing" spacing starts sampling at t=999, from pure noise, which few-step sampling needs.
    return DPMSolverMultistepScheduler(**cfg, timestep_spacing="trailing")
