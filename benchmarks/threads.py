"""CPU threads for the built-in model, idle and next to a busy process: seconds per picture with one thread against
all cores, measured side by side in one run. The library's default (`ig.set_threads(None)`: one thread for small
models) is the row it should not lose on.

    python benchmarks/threads.py [--repeats 5]

"as it is" is the machine with whatever else runs on it (idle only if nothing does); "+ a busy process" adds one
that keeps a core busy (one thread of matrix products, like a training run); on a 2-core
machine torch's threads then wait for each other at every operation.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

BUSY = "import torch\ntorch.set_num_threads(1)\na = torch.randn(512, 512)\nwhile True:\n    a @ a\n"


def _seconds(ig, threads: int | None, repeats: int) -> float:
    ig.set_threads(threads)
    times = []
    for seed in range(repeats):
        t = time.perf_counter()
        ig.generate("a red circle to the left of a blue square", seed=seed, progress=False)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import imagegen_nb as ig

    cores = os.cpu_count() or 1
    for seed in range(2):  # warm-up: load, allocate, first-call paths
        ig.generate("a red circle", seed=seed, progress=False)
    rows = []
    for load in ("as it is", "+ a busy process"):
        busy = subprocess.Popen([sys.executable, "-c", BUSY]) if load != "as it is" else None
        try:
            time.sleep(1.0 if busy else 0.0)
            one = _seconds(ig, 1, args.repeats)
            every = _seconds(ig, cores, args.repeats)
        finally:
            if busy:
                busy.kill()
                busy.wait()
        rows.append((load, one, every))
    ig.set_threads(None)
    print(f"built-in model, default settings, median of {args.repeats} pictures, {cores} cores")
    print(f"{'machine':16} {'1 thread':>10} {f'{cores} threads':>11} {'ratio':>7}")
    for load, one, every in rows:
        print(f"{load:16} {one * 1000:8.0f} ms {every * 1000:8.0f} ms {every / one:7.2f}")
    print("ratio = seconds with every core / seconds with one thread (above 1: the extra threads cost time)")


if __name__ == "__main__":
    main()
