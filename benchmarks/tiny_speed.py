"""Seconds for one 64x64 picture of the built-in model at its default settings, after warm-up (target <= 0.3 s on
2 CPU cores).

    python benchmarks/tiny_speed.py [--threads 2] [--steps N]
"""

from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=None, help="num_inference_steps (default: the model's)")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()


    import imagegen_nb as ig

    ig.set_threads(args.threads)  # the library chooses one thread for small models unless told
    kw = {} if args.steps is None else {"num_inference_steps": args.steps}
    for seed in range(3):  # warm-up: load, allocate, first-call paths
        ig.generate("a red circle to the left of a blue square", seed=seed, progress=False, **kw)
    times = []
    for seed in range(args.repeats):
        t = time.perf_counter()
        image = ig.generate("a red circle to the left of a blue square", seed=seed, progress=False, **kw)
        times.append(time.perf_counter() - t)
    r = ig.recipe(image)
    med = statistics.median(times)
    print(f"built-in model, {r['num_inference_steps']} steps, guidance {r['guidance_scale']}, {args.threads} threads: "
          f"median {med * 1000:.0f} ms, best {min(times) * 1000:.0f} ms per 64x64 picture")
    print(f"ratio to the 0.3 s target: {med / 0.3:.2f}")


if __name__ == "__main__":
    main()
