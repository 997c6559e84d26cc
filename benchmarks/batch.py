"""Batched generation against one picture per pipeline call: 8 pictures of the built-in model made with
`batch_size=8` and with `batch_size=1`, in the same process, repeats interleaved (the order alternates), at 1 and
2 threads. Prints the time per picture of each, their ratio (target >= 2x per picture on 2 cores), the peak
resident memory each call added, and how many batched pictures are bit-identical to the same picture made alone.

    python benchmarks/batch.py                      # 8 pictures, 3 repeats, 1 and 2 threads
    python benchmarks/batch.py --pictures 16 --repeats 5 --threads 2

The time is the median over repeats. Memory is the resident set size sampled every 2 ms during a call, less the
size just before it (torch's CPU allocations are not Python objects, so tracemalloc cannot see them).
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """The largest resident set size seen while the block runs, less the size at its start."""

    def __enter__(self):
        self.start = self.peak = _rss()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._done.wait(0.002):
            self.peak = max(self.peak, _rss())

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())
        self.added = self.peak - self.start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pictures", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--prompt", default="a red circle to the left of a blue square")
    args = parser.parse_args()

    import numpy as np
    import torch

    import imagegen_nb as ig

    n = args.pictures

    def make(batch_size: int):
        with PeakRSS() as mem:
            started = time.perf_counter()
            images = ig.generate(args.prompt, seed=0, num_images=n, batch_size=batch_size, progress=False)
            seconds = time.perf_counter() - started
        return images, seconds / n, mem.added

    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} (other processes count against this)")
    make(1), make(n)  # load the model and warm both paths
    for threads in args.threads:
        torch.set_num_threads(threads)
        times: dict[int, list[float]] = {1: [], n: []}
        memory: dict[int, list[int]] = {1: [], n: []}
        pictures = {}
        for repeat in range(args.repeats):
            for size in ((1, n) if repeat % 2 == 0 else (n, 1)):
                pictures[size], per_picture, added = make(size)
                times[size].append(per_picture)
                memory[size].append(added)
        alone, batched = statistics.median(times[1]), statistics.median(times[n])
        diffs = [int(np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).max())
                 for a, b in zip(pictures[1], pictures[n])]
        print(f"{threads} thread{'s' if threads > 1 else ''}: one at a time {alone * 1000:.0f} ms/picture, "
              f"batch of {n} {batched * 1000:.0f} ms/picture, ratio {alone / batched:.2f}x per picture; peak RSS "
              f"added {max(memory[1]) / 2**20:.0f} MiB alone, {max(memory[n]) / 2**20:.0f} MiB batched; "
              f"{diffs.count(0)}/{n} batched pictures bit-identical to alone (largest pixel difference "
              f"{max(diffs)}/255)")
        print(f"   per-picture times (ms): alone {[round(t * 1000) for t in times[1]]}, "
              f"batched {[round(t * 1000) for t in times[n]]}")


if __name__ == "__main__":
    main()
