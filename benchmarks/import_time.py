"""`import imagegen_nb` must be instant: it may not import torch or diffusers (target < 0.3 s).

    python benchmarks/import_time.py
"""

from __future__ import annotations

import subprocess
import sys

CODE = ("import time, sys; t = time.perf_counter(); import imagegen_nb; dt = time.perf_counter() - t; "
        "print(dt, 'torch' in sys.modules, 'diffusers' in sys.modules)")


def main(repeats: int = 5) -> None:
    times = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True).stdout.split()
        times.append(float(out[0]))
        heavy = out[1] == "True" or out[2] == "True"
    best = min(times)
    print(f"import imagegen_nb: best {best * 1000:.1f} ms of {repeats} (target < 300 ms); "
          f"imports torch/diffusers: {heavy}")
    print(f"ratio to target: {best / 0.3:.3f}")


if __name__ == "__main__":
    main()
