"""The library's cost over a raw diffusers call: `ig.generate` against `pipe(...)` with identical settings,
paired runs, median ratio (target <= 1.02 at 20 steps). A warm cache must load nothing.

    python benchmarks/overhead.py                       # the built-in model on this machine's best device
    python benchmarks/overhead.py --full-size sd15      # an SD 1.5-sized UNet at 512x512, random weights
    python benchmarks/overhead.py --full-size sdxl      # an SDXL-sized UNet at 1024x1024 (needs a GPU to be quick)

Full-size runs build the real UNet architectures from config with random weights and hand the pipeline to the
cache with `ig.cache.add`, so nothing is downloaded; on a CUDA GPU they run unchanged.
"""

from __future__ import annotations

import argparse
import statistics
import time


def full_size_pipeline(kind: str):
    """A pipeline with the real SD 1.5 or SDXL UNet (random weights, from config), text encoders of the real width
    (two layers) and an 8x-downsampling VAE of small width: the UNet's cost is the real one."""
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from imagegen_nb import full_size, testing

    torch.manual_seed(0)
    unet = full_size.denoiser(kind)

    def encoder(width, projection=False):
        tok = testing.clip_tokenizer()
        cfg = CLIPTextConfig(vocab_size=len(tok), hidden_size=width, intermediate_size=2 * width,
                             num_hidden_layers=2, num_attention_heads=8, projection_dim=width,
                             bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                             pad_token_id=tok.pad_token_id)
        return tok, (CLIPTextModelWithProjection if projection else CLIPTextModel)(cfg).eval()

    vae = AutoencoderKL(down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                        block_out_channels=(32, 32, 64, 64), layers_per_block=1, latent_channels=4,
                        norm_num_groups=16).eval()
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       steps_offset=1)
    if kind == "sd15":
        tok, te = encoder(768)
        return StableDiffusionPipeline(vae=vae, text_encoder=te, tokenizer=tok, unet=unet, scheduler=scheduler,
                                       safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    tok, te = encoder(768)
    tok2, te2 = encoder(1280, projection=True)
    return StableDiffusionXLPipeline(vae=vae, text_encoder=te, text_encoder_2=te2, tokenizer=tok, tokenizer_2=tok2,
                                     unet=unet, scheduler=scheduler)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--full-size", choices=["sd15", "sdxl"], default=None)
    args = parser.parse_args()

    import torch

    import imagegen_nb as ig
    from imagegen_nb import cache

    torch.set_num_threads(args.threads)
    model = None
    size = None
    if args.full_size:
        model = f"full-size-{args.full_size}"
        cache.shared.add(model, full_size_pipeline(args.full_size), family=args.full_size)
        size = 512 if args.full_size == "sd15" else 1024
    kw = dict(num_inference_steps=args.steps, guidance_scale=5.0)
    if size:
        kw.update(width=size, height=size)
    ig.generate("a red circle to the left of a blue square", model=model, seed=0, progress=False, **kw)  # warm up
    loads = cache.shared.loads
    _, pipe = cache.shared.pipeline(model, "generate")
    w = h = size or ig.registry.FAMILIES["tiny"].default_size
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)

    def raw(seed):
        with torch.inference_mode():
            return pipe("a red circle to the left of a blue square", width=w, height=h,
                        generator=torch.Generator("cpu").manual_seed(seed), **kw).images[0]

    def lib(seed):
        return ig.generate("a red circle to the left of a blue square", model=model, seed=seed, progress=False, **kw)

    ratios, t_raw, t_lib = [], [], []
    for k in range(args.pairs):
        order = (raw, lib) if k % 2 == 0 else (lib, raw)  # alternate order so drift does not favour either
        times = {}
        for fn in order:
            sync()
            t = time.perf_counter()
            fn(k)
            sync()
            times[fn] = time.perf_counter() - t
        t_raw.append(times[raw])
        t_lib.append(times[lib])
        ratios.append(times[lib] / times[raw])
    print(f"model: {args.full_size or 'built-in'} {w}x{h}, {args.steps} steps, device {pipe.device}, "
          f"{args.pairs} pairs")
    print(f"raw diffusers: median {statistics.median(t_raw) * 1000:.1f} ms")
    print(f"ig.generate:   median {statistics.median(t_lib) * 1000:.1f} ms")
    print(f"ratio (median of pairs): {statistics.median(ratios):.3f} (target <= 1.02)")
    print(f"models loaded during timing: {cache.shared.loads - loads} (must be 0)")


if __name__ == "__main__":
    main()
