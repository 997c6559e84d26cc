"""What watching costs: `ig.trace` (every step's x_t, eps, x0 and the cond/uncond split copied to the CPU in fp16,
no decoding) against a plain `ig.generate` with the same settings, paired runs, median ratio (target <= 1.05);
and the cheap linear preview of a step (x0 from the step, then latent -> RGB) against one denoising step of an
SD 1.5-sized UNet on SD-sized latents, 1x4x64x64 with guidance (target <= 3%).

    python benchmarks/trace_overhead.py                 # both parts
    python benchmarks/trace_overhead.py --skip-unet     # trace overhead only (the full-size UNet takes ~4 GB)

The full-size UNet has the real SD 1.5 architecture with random weights (`imagegen_nb.testing`), so nothing is
downloaded; its speed does not depend on its weights.
"""

from __future__ import annotations

import argparse
import statistics
import time


def trace_overhead(steps: int, pairs: int) -> float:
    import torch

    import imagegen_nb as ig

    prompt = "a red circle to the left of a blue square"
    kw = dict(num_inference_steps=steps, guidance_scale=4.0, progress=False)
    ig.generate(prompt, seed=0, **kw)  # load and warm up both paths
    ig.trace(prompt, seed=0, **kw)
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)

    def plain(seed):
        ig.generate(prompt, seed=seed, **kw)

    def traced(seed):
        ig.trace(prompt, seed=seed, **kw)

    ratios, t_plain, t_traced = [], [], []
    for k in range(pairs):
        order = (plain, traced) if k % 2 == 0 else (traced, plain)  # alternate so drift favours neither
        times = {}
        for fn in order:
            sync()
            start = time.perf_counter()
            fn(k)
            sync()
            times[fn] = time.perf_counter() - start
        t_plain.append(times[plain])
        t_traced.append(times[traced])
        ratios.append(times[traced] / times[plain])
    ratio = statistics.median(ratios)
    print(f"built-in model, {steps} steps, {pairs} pairs")
    print(f"  ig.generate: median {statistics.median(t_plain) * 1000:.1f} ms")
    print(f"  ig.trace:    median {statistics.median(t_traced) * 1000:.1f} ms")
    print(f"  ratio (median of pairs): {ratio:.3f} (target <= 1.05)")
    return ratio


def preview_vs_step(repeats: int) -> float:
    import torch
    from diffusers import DPMSolverMultistepScheduler

    from imagegen_nb import full_size
    from imagegen_nb.previews import preview_image
    from imagegen_nb.steps import Step

    unet = full_size.denoiser("sd15")
    scheduler = DPMSolverMultistepScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    scheduler.set_timesteps(20)
    t = scheduler.timesteps[10]
    latents = torch.randn(1, 4, 64, 64)
    context = torch.randn(2, 77, unet.config.cross_attention_dim)

    def denoise():  # one step's model call: batch 2 for classifier-free guidance
        with torch.inference_mode():
            return unet(torch.cat([latents] * 2), t, encoder_hidden_states=context).sample

    denoise()  # warm up
    unet_times = []
    for _ in range(repeats):
        start = time.perf_counter()
        eps = denoise()
        unet_times.append(time.perf_counter() - start)
    eps = eps[1:]

    class _Pipe:  # what preview_image reads off a step's pipeline: the scheduler for x0; no VAE is touched
        pass

    pipe = _Pipe()
    pipe.scheduler = scheduler

    def preview():
        # a fresh Step each time, so x0 = (x_t - sqrt(1 - alpha_bar) eps) / sqrt(alpha_bar) is computed every time
        step = Step(index=10, total=20, timestep=float(t), latents=latents, model_output=eps, raw_output=None,
                    pipe=pipe)
        return preview_image(step, family="sd15")

    preview()
    preview_times = []
    for _ in range(200):
        start = time.perf_counter()
        preview()
        preview_times.append(time.perf_counter() - start)
    unet_ms, preview_ms = statistics.median(unet_times) * 1000, statistics.median(preview_times) * 1000
    share = preview_ms / unet_ms
    print(f"SD 1.5-sized UNet, latents 1x4x64x64 with guidance, threads {torch.get_num_threads()}")
    print(f"  one denoising step (UNet, batch 2): median {unet_ms:.1f} ms over {repeats}")
    print(f"  cheap preview (x0 + linear map):    median {preview_ms:.3f} ms over 200")
    print(f"  preview / step: {share * 100:.2g}% (target <= 3%)")
    return share


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--unet-repeats", type=int, default=3)
    parser.add_argument("--skip-unet", action="store_true")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    trace_overhead(args.steps, args.pairs)
    if not args.skip_unet:
        preview_vs_step(args.unet_repeats)


if __name__ == "__main__":
    main()
