"""The cost of switching LoRAs: the built-in model with two LoRAs already loaded, called with `lora=` alternating
between them, against the same call without a LoRA and against what switching by reloading would cost (the model
evicted and loaded again with the LoRA), in one process with the repeats interleaved. Also the first call with a
LoRA file not seen before (it is loaded then), and the memory: the bytes each loaded LoRA adds to the model, and
the resident memory before and after many switches (switching must not grow it).

    python benchmarks/lora_switch.py                 # 5 repeats, 4 steps a picture, 1 thread
    python benchmarks/lora_switch.py --repeats 9 --steps 12

The LoRAs are rank 4 on every attention projection of the UNet, with small random weights (what a trained one
holds does not change its cost). Times are medians over repeats; the ratios are what to read, as absolute times
change with the machine and its load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from batch import PeakRSS, _rss


def make_lora(folder: Path, seed: int, rank: int = 4) -> Path:
    """A LoRA in diffusers' format for the built-in UNet, with random weights from `seed`."""
    import torch
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig, get_peft_model_state_dict

    import imagegen_nb as ig
    from imagegen_nb.cache import quiet_diffusers

    with quiet_diffusers():
        unet = StableDiffusionPipeline.from_pretrained(ig.tiny.model_path()).unet
    unet.add_adapter(LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in unet.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    StableDiffusionPipeline.save_lora_weights(folder, unet_lora_layers=get_peft_model_state_dict(unet),
                                              safe_serialization=True)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--switches", type=int, default=20, help="switches between the memory readings")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    import imagegen_nb as ig
    from imagegen_nb.cache import param_bytes

    torch.set_num_threads(args.threads)
    root = Path(tempfile.mkdtemp(prefix="lora_switch_"))
    a, b = make_lora(root / "a", seed=1), make_lora(root / "b", seed=2)
    fresh = [make_lora(root / f"new_{i}", seed=100 + i) for i in range(args.repeats)]  # one never-seen LoRA a repeat

    def call(lora=None) -> float:
        started = time.perf_counter()
        ig.generate("a red circle", seed=0, num_inference_steps=args.steps, lora=lora, progress=False)
        return time.perf_counter() - started

    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, {args.threads} thread(s), "
          f"{args.steps} steps a picture")
    call()
    unet = ig.cache.shared.entry(None).base.unet
    before = param_bytes(unet)
    call(str(a))
    one_lora = param_bytes(unet) - before
    call(str(b))
    times: dict[str, list[float]] = {"no LoRA": [], "switch (LoRA loaded)": [], "first use of a LoRA file": [],
                                     "reload the model with the LoRA": []}
    for repeat in range(args.repeats):
        order = list(times) if repeat % 2 == 0 else list(reversed(times))
        for kind in order:
            if kind == "no LoRA":
                times[kind].append(call())
            elif kind == "switch (LoRA loaded)":
                call(str(b))  # b on, then off: the timed call switches to a
                times[kind].append(call(str(a)))
            elif kind == "first use of a LoRA file":
                times[kind].append(call(str(fresh[repeat])))
            else:
                ig.cache.shared.evict(None)
                times[kind].append(call(str(a)))
                call(str(b))  # b loaded again, as before this repeat

    base = statistics.median(times["no LoRA"])
    switch = statistics.median(times["switch (LoRA loaded)"])
    for kind, ts in times.items():
        t = statistics.median(ts)
        print(f"{kind:32} {t * 1000:7.0f} ms a call   {t / base:5.2f}x the call without a LoRA   "
              f"{t / switch:5.2f}x a switch")
    print(f"switching costs {(switch - base) * 1000:.0f} ms a call over no LoRA; reloading the model instead "
          f"costs {statistics.median(times['reload the model with the LoRA']) / switch:.1f}x a switched call")

    rss_start = _rss()
    with PeakRSS() as mem:
        for i in range(args.switches):
            call(str(a if i % 2 else b))
    print(f"memory: one loaded LoRA adds {one_lora / 2**10:.0f} KiB to the UNet's {before / 2**20:.1f} MiB "
          f"(file {(a / 'pytorch_lora_weights.safetensors').stat().st_size / 2**10:.0f} KiB); resident memory "
          f"after {args.switches} switches {(_rss() - rss_start) / 2**20:+.1f} MiB (peak {mem.added / 2**20:+.1f} MiB)")


if __name__ == "__main__":
    main()
