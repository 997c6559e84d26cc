"""The built-in model's second form: a tiny single-stream diffusion transformer trained by rectified flow, built from
config out of standard diffusers/transformers classes so the stock `ZImagePipeline` runs it unchanged.

Parts: the shapes world's word-level tokenizer (carrying the chat template Z-Image applies), a tiny causal
`Qwen3Model` text encoder, a `ZImageTransformer2DModel` (noise refiner, context refiner, then one stream of image
and word tokens), the U-Net model's VAE (64x64 pixels -> 16x16x4 latents) and a `FlowMatchEulerDiscreteScheduler`.

What the pipeline does with them, and so what training must match (diffusers 0.42, `pipeline_z_image.py`):

- the prompt goes through `tokenizer.apply_chat_template`, then the tokenizer, then the text encoder; the
  pipeline keeps the *second-to-last* hidden state of the real (unpadded) tokens. The encoder's last layer is
  therefore never used: `Architecture.text_layers` counts it, and it stays at its random start.
- latents are x_sigma = (1 - sigma) x0 + sigma eps, from sigma = 1 (noise) to 0; the transformer gets the
  timestep 1 - sigma (0 at pure noise), and its output is negated into the Euler step's velocity
  d x_sigma / d sigma = eps - x0. So the transformer is trained to predict x0 - eps.
- guidance is `pos + g (pos - neg)`: Z-Image's g is ordinary classifier-free guidance's scale minus one.

>>> from imagegen_nb.tiny import dit
>>> dit.Architecture().patch
2
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from . import components, latent_rgb

# Z-Image applies a chat template to every prompt. Ours writes the prompt's words and nothing else, so token k is
# word k (what the side and binding labels of tiny.sides and tiny.binding assume); the tokenizer then appends
# </s>, so even the empty prompt of classifier-free guidance has one token.
CHAT_TEMPLATE = "{% for message in messages %}{{ message['content'] }}{% endfor %}"


@dataclass
class Architecture:
    """Sizes of the transformer model's parts (the shipped model uses the defaults)."""

    dim: int = 128  # transformer width
    layers: int = 4  # joint image+word layers
    refiner_layers: int = 2  # noise-refiner layers (image tokens alone) and as many context-refiner layers (words)
    heads: int = 4  # head width dim / heads = 32, split into RoPE axes (word position, row, column)
    rope_axes: tuple[int, int, int] = (8, 12, 12)  # must sum to dim / heads
    patch: int = 2  # 16x16 latents -> 8x8 = 64 image tokens
    text_width: int = 128  # Qwen3 hidden size, the transformer's cap_feat_dim
    text_layers: int = 3  # the last one is unused: the pipeline reads the second-to-last hidden state
    text_heads: int = 4
    text_kv_heads: int = 2
    text_ffn: int = 256
    max_tokens: int = 24  # captions of the world are at most 16 words; labels of tiny.sides use this many tokens
    latent_channels: int = 4  # the VAE's


SMOKE = Architecture(dim=32, layers=1, refiner_layers=1, heads=2, rope_axes=(4, 6, 6), text_width=16, text_layers=2,
                     text_heads=2, text_kv_heads=1, text_ffn=32)
ARCHITECTURES = {"default": Architecture(), "smoke": SMOKE}


def vae_folder() -> Path:
    """The VAE this model's latents come from: the U-Net model's (`tiny.model_path() / "vae"`)."""
    from . import model_path

    return model_path("sd") / "vae"


def build_tokenizer(folder: str | Path, arch: Architecture = Architecture()):
    """The world's word-level tokenizer (one token per known word, `<unk>` for others, `</s>` appended) with
    `CHAT_TEMPLATE`, saved to `folder` and loaded back from it (a `tokenizer.json`, no network)."""
    return components.build_tokenizer(folder, components.Architecture(max_tokens=arch.max_tokens),
                                      chat_template=CHAT_TEMPLATE)


def build_text_encoder(vocab_size: int, arch: Architecture = Architecture()):
    """A tiny causal `Qwen3Model`. Causal: a word's state knows only the words before it; the transformer's
    context refiner, whose attention goes both ways, is where words learn what comes after them."""
    from transformers import Qwen3Config, Qwen3Model

    config = Qwen3Config(vocab_size=vocab_size, hidden_size=arch.text_width, intermediate_size=arch.text_ffn,
                         num_hidden_layers=arch.text_layers, num_attention_heads=arch.text_heads,
                         num_key_value_heads=arch.text_kv_heads, head_dim=arch.text_width // arch.text_heads,
                         max_position_embeddings=512, tie_word_embeddings=False, pad_token_id=0, eos_token_id=1,
                         bos_token_id=1, use_cache=False)
    return Qwen3Model(config)


def build_transformer(arch: Architecture = Architecture()):
    from diffusers import ZImageTransformer2DModel

    if sum(arch.rope_axes) != arch.dim // arch.heads:
        raise ValueError(f"rope_axes {arch.rope_axes} must sum to the head width, dim / heads = "
                         f"{arch.dim // arch.heads}")
    # axes_lens: RoPE tables for word positions (the pipeline pads prompts to at most 512 tokens, and image tokens
    # sit after them) and for rows and columns of patches (64 per side: 512x512 pictures)
    return ZImageTransformer2DModel(all_patch_size=(arch.patch,), all_f_patch_size=(1,),
                                    in_channels=arch.latent_channels, dim=arch.dim, n_layers=arch.layers,
                                    n_refiner_layers=arch.refiner_layers, n_heads=arch.heads, n_kv_heads=arch.heads,
                                    cap_feat_dim=arch.text_width, axes_dims=list(arch.rope_axes),
                                    axes_lens=[1024, 64, 64])


def build_scheduler(shift: float = 1.0):
    """Euler steps of the rectified flow. Z-Image's pipeline passes its own sigmas (1 down to 1/steps) and a
    resolution-dependent `mu`; with `use_dynamic_shifting=False` `mu` is ignored and the sigmas are shifted by
    `shift` (1: unshifted, as this model was trained at one resolution)."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=shift, use_dynamic_shifting=False)


def load_vae(folder: str | Path | None = None, dtype=None):
    """The VAE of `folder` (default: `vae_folder()`) in `dtype` (default float32), with `shift_factor` 0.0: Z-Image's
    pipelines add `vae.config.shift_factor` to latents, and the U-Net model's VAE has none (null)."""
    import torch
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(folder or vae_folder(), torch_dtype=dtype or torch.float32)
    if vae.config.shift_factor is None:
        vae.register_to_config(shift_factor=0.0)
    return vae


def encode_prompts(tokenizer, text_encoder, prompts: list[str]) -> list:
    """The token states the pipeline gives the transformer: chat template, tokens, the text encoder's
    second-to-last hidden state of each prompt's real tokens (a list of (tokens, width) tensors). As
    `ZImagePipeline._encode_prompt`, but padded to the longest prompt: the encoder is causal, so padding on the
    right changes no real token's state."""
    texts = [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                           add_generation_prompt=True, enable_thinking=True) for p in prompts]
    device = next(text_encoder.parameters()).device
    batch = tokenizer(texts, padding="longest", truncation=True, max_length=512, return_tensors="pt")
    ids, mask = batch.input_ids.to(device), batch.attention_mask.to(device).bool()
    states = text_encoder(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[-2]
    return [s[m] for s, m in zip(states, mask)]


def predict(transformer, x_t, sigma, cap_feats: list):
    """The transformer's prediction of x0 - eps for latents x_t (n, C, h, w) at noise levels sigma (n,): called
    as the pipeline calls it (a list of (C, 1, h, w) frames, timestep 1 - sigma)."""
    import torch

    frames = list(x_t.unsqueeze(2).unbind(0))
    out = transformer(frames, 1.0 - sigma, cap_feats, return_dict=False)[0]
    return torch.stack(out).squeeze(2)


def count_parameters(module) -> int:
    return sum(p.numel() for p in module.parameters())


def export(checkpoint: str | Path, folder: str | Path, *, shift: float = 1.0, ema: bool = True,
           fp16: bool = True) -> Path:
    """Write a `ZImagePipeline` folder from a training checkpoint of `tiny.train_dit` (its EMA weights unless
    `ema=False`). The VAE is stored in float16 as the U-Net model's is, and so is the transformer unless
    `fp16=False` (diffusers loads both back in float32); the text encoder stays float32 (transformers would load
    it as stored). Returns `folder`."""
    import torch
    from diffusers import ZImagePipeline

    checkpoint, folder = Path(checkpoint), Path(folder)
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    arch = Architecture(**{k: tuple(v) if isinstance(v, list) else v for k, v in state["arch"].items()})
    staging = folder.with_name(folder.name + ".tmp")
    if staging.exists():
        shutil.rmtree(staging)
    tokenizer = build_tokenizer(staging / "_tokenizer", arch)
    text_encoder, transformer = build_text_encoder(len(tokenizer), arch), build_transformer(arch)
    prefix = "ema_" if ema else ""
    text_encoder.load_state_dict(state[prefix + "text_encoder"])
    transformer.load_state_dict(state[prefix + "transformer"])
    # the run's VAE (an --init-from folder's, else the U-Net model's), or the U-Net model's if that folder moved
    vae_path = state.get("vae_folder")
    vae = load_vae(vae_path if vae_path and Path(vae_path).is_dir() else None, torch.float16)
    if fp16:
        transformer.half()  # (not .to(dtype), which warns about fp32 modules this model does not have)
    pipe = ZImagePipeline(scheduler=build_scheduler(shift), vae=vae, text_encoder=text_encoder.eval(),
                          tokenizer=tokenizer, transformer=transformer.eval())
    pipe.save_pretrained(staging, safe_serialization=True)
    latent_rgb.write(staging / "vae")  # the live previews' map, so the runtime needs no shapes world
    shutil.rmtree(staging / "_tokenizer")
    losses = state.get("losses", [])
    recent = sum(losses[-200:]) / max(1, len(losses[-200:]))
    (staging / "training.json").write_text(json.dumps(
        {"step": state["step"], "loss_last_200": recent, "arch": asdict(arch), "train": state.get("config", {}),
         "weights": "ema" if ema else "raw"}, indent=2) + "\n")
    (staging / "README.md").write_text(_CARD.format(step=state["step"], loss=recent, batch=state.get(
        "config", {}).get("batch", "?"), transformer=count_parameters(transformer) / 1e6,
        text=count_parameters(text_encoder) / 1e6))
    if folder.exists():
        shutil.rmtree(folder)
    staging.replace(folder)
    return folder


_CARD = """# imagegen_nb built-in model, transformer form: tiny shapes DiT

A tiny text-to-image single-stream diffusion transformer of the shapes world of `imagegen_nb.tiny.world`, trained
from scratch by rectified flow with `python -m imagegen_nb.tiny.train_dit`, in diffusers' `ZImagePipeline` format.

```python
from diffusers import ZImagePipeline
from imagegen_nb import tiny
pipe = ZImagePipeline.from_pretrained(tiny.model_path("dit"))
image = pipe("a red circle", height=64, width=64, num_inference_steps=8, guidance_scale=3.0).images[0]
```

Parts: a word-level tokenizer with a chat template, a {text:.2f} M-parameter causal `Qwen3Model` text encoder, a
{transformer:.2f} M-parameter `ZImageTransformer2DModel` (patch 2 on 16x16x4 latents), the U-Net model's VAE, Euler
steps of the flow. The transformer predicts x0 - eps from x_sigma = (1 - sigma) x0 + sigma eps at timestep
1 - sigma. `guidance_scale` follows Z-Image's convention: g is classifier-free guidance's scale minus one.

This export: step {step} (batch {batch}), flow loss {loss:.4f} (mean of the last 200 training steps); EMA weights.
`training.json` holds the run's settings. See `docs/builtin-model/dit.md` in imagegen_nb.
"""
