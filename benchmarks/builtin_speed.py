"""The two built-in models side by side: seconds per 64x64 picture at each model's defaults (the U-Net: 12 steps
with guidance; the DiT: 8 steps with guidance), and the DiT at 4 steps without guidance, measured interleaved in one
process so both see the same machine. Prints the ratios to the U-Net (the DiT's target: at most 0.5 at its
defaults, 0.25 for a few-step mode, which it does not have yet: its 4-step row is its ordinary sampler).

    python benchmarks/builtin_speed.py [--repeats 10] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time

PROMPT = "a red circle to the left of a blue square"
SETTINGS = {
    "U-Net, defaults": {"model": None},
    "DiT, defaults": {"model": "tiny-dit"},
    "DiT, 4 steps, no guidance": {"model": "tiny-dit", "num_inference_steps": 4, "guidance_scale": 0.0},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads per call (default: the library's)")
    args = parser.parse_args()

    import imagegen_nb as ig

    ig.set_threads(args.threads)
    for kw in SETTINGS.values():  # warm-up: load, allocate, first-call paths
        ig.generate(PROMPT, seed=0, progress=False, **kw)
    times = {name: [] for name in SETTINGS}
    for seed in range(args.repeats):  # interleaved: a slower moment of the machine hits every row alike
        for name, kw in SETTINGS.items():
            t = time.perf_counter()
            image = ig.generate(PROMPT, seed=seed, progress=False, **kw)
            times[name].append(time.perf_counter() - t)
            times.setdefault(f"_{name}", ig.recipe(image))
    base = statistics.median(times["U-Net, defaults"])
    print(f"median of {args.repeats} pictures each, threads: {args.threads or 'the library default'}")
    for name in SETTINGS:
        r = times[f"_{name}"]
        med = statistics.median(times[name])
        print(f"{name:28} {r['num_inference_steps']:2d} steps, guidance {r['guidance_scale']:g}: "
              f"{med * 1000:6.0f} ms  ratio to the U-Net {med / base:.2f}")


if __name__ == "__main__":
    main()
