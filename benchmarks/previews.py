"""What a live preview costs a step, for an SD 1.5-sized latent (4 x 64 x 64, a 512 x 512 picture): the linear
latent -> RGB map, a tiny autoencoder (diffusers' `AutoencoderTiny` at TAESD's published sizes) and the full SD 1.5
VAE decode, beside one step of the SD 1.5 UNet with guidance (batch 2), all built from their configs with random
weights (the weights do not change the cost) and timed in one process, interleaved.

    python benchmarks/previews.py                   # 5 repeats, 1 thread, 512 x 512
    python benchmarks/previews.py --size 256 --threads 2 --repeats 9

Prints each one's median time and its share of a denoising step: what showing a preview every step adds to a run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--size", type=int, default=512, help="picture side in pixels (the latent is 1/8 of it)")
    parser.add_argument("--no-unet", action="store_true", help="skip timing the UNet step (it takes the longest)")
    args = parser.parse_args()

    import torch
    from diffusers import AutoencoderTiny

    from imagegen_nb import full_size, previews

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    side = args.size // 8
    latent = torch.randn(1, 4, side, side)
    taesd = AutoencoderTiny().eval()  # TAESD's architecture: diffusers' defaults are its published sizes
    vae = full_size.vae("sd15")

    def linear():
        previews.preview_image(latent, family="sd15")

    def tiny():
        previews.use_tiny_autoencoder(taesd, family="sd15")
        try:
            previews.preview_image(latent, family="sd15")
        finally:
            previews.use_tiny_autoencoder(None, family="sd15")

    def full():
        with torch.inference_mode():
            vae.decode(latent / vae.config.scaling_factor)

    jobs = {"linear map (latent size)": linear, "tiny autoencoder (TAESD)": tiny, "full VAE decode": full}
    if not args.no_unet:
        unet = full_size.denoiser("sd15").eval()
        inputs = full_size.denoiser_inputs("sd15", height=args.size, width=args.size, batch=2)

        def step():
            with torch.inference_mode():
                unet(**inputs)

        jobs["one UNet step (batch 2)"] = step
    for job in jobs.values():  # warm up
        job()
    times: dict[str, list[float]] = {name: [] for name in jobs}
    for repeat in range(args.repeats):
        for name in (list(jobs) if repeat % 2 == 0 else list(reversed(jobs))):
            started = time.perf_counter()
            jobs[name]()
            times[name].append(time.perf_counter() - started)

    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, {args.threads} thread(s), "
          f"{args.size} x {args.size} picture ({side} x {side} latent); parameters: TAESD decoder "
          f"{sum(p.numel() for p in taesd.decoder.parameters()) / 1e6:.1f} M, VAE decoder "
          f"{sum(p.numel() for p in vae.decoder.parameters()) / 1e6:.1f} M")
    step_time = statistics.median(times["one UNet step (batch 2)"]) if not args.no_unet else None
    full_time = statistics.median(times["full VAE decode"])
    for name, ts in times.items():
        t = statistics.median(ts)
        share = f"   {t / step_time:6.1%} of a UNet step" if step_time else ""
        print(f"{name:28} {t * 1000:8.1f} ms   {t / full_time:8.2g}x the full decode{share}")


if __name__ == "__main__":
    main()
