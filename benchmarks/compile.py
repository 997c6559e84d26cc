"""The fast path: `ig.set_device(compile=True)` against the eager model, in one process with the repeats
interleaved. The built-in model is loaded twice, once eager (`model=None`) and once from its folder while compile
is on (a second cache entry with its own compiled UNet), so both answer the same call side by side. Prints the
compile's one-time cost (the first compiled picture), the per-picture ratio, and whether the pixels are the same.

    python benchmarks/compile.py                 # 5 repeats, the model's default steps, 1 thread
    python benchmarks/compile.py --repeats 9 --threads 2 --backend inductor

Times are medians over repeats; the ratio is what to read, as absolute times change with the machine and its
load. The compile needs a C++ compiler (inductor writes and builds C++ kernels on a CPU).
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
    parser.add_argument("--backend", default="inductor", help="a torch.compile backend")
    args = parser.parse_args()

    import numpy as np
    import torch

    import imagegen_nb as ig

    torch.set_num_threads(args.threads)
    compiled_model = str(ig.tiny.model_path())  # the same weights under another cache key

    def call(model):
        started = time.perf_counter()
        picture = ig.generate("a red circle above a blue square", seed=0, model=model, progress=False)
        return time.perf_counter() - started, picture

    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, {args.threads} thread(s), "
          f"backend {args.backend!r}")
    call(None)  # the eager model loads and warms up
    ig.set_device(compile=args.backend)
    first, _ = call(compiled_model)
    ig.set_device()  # later loads eager again; the compiled entry stays compiled
    call(compiled_model)

    times: dict[str, list[float]] = {"eager": [], "compiled": []}
    pictures = {}
    for repeat in range(args.repeats):
        for kind in (("eager", "compiled") if repeat % 2 == 0 else ("compiled", "eager")):
            seconds, pictures[kind] = call(None if kind == "eager" else compiled_model)
            times[kind].append(seconds)

    eager, compiled = (statistics.median(times[k]) for k in ("eager", "compiled"))
    diff = np.abs(np.asarray(pictures["eager"], np.int16) - np.asarray(pictures["compiled"], np.int16)).max()
    print(f"first compiled picture (the compile) {first:7.1f} s   = {first / eager:.0f} eager pictures")
    print(f"eager                  {eager * 1000:7.0f} ms a picture")
    print(f"compiled               {compiled * 1000:7.0f} ms a picture   {compiled / eager:.2f}x eager")
    saved = eager - compiled
    if saved > 0:
        print(f"the compile pays for itself after {first / saved:.0f} pictures")
    else:
        print("the compiled model is not faster here: keep compile=False")
    print(f"largest pixel difference, compiled against eager: {diff} (of 255)")


if __name__ == "__main__":
    main()
