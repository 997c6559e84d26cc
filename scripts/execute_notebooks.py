"""Execute the notebooks in `notebooks/` in place, so they are committed with their outputs (pictures included) and
read on GitHub without running.

    python scripts/execute_notebooks.py                       # every notebook
    python scripts/execute_notebooks.py quickstart studio     # some (with or without .ipynb)
    python scripts/execute_notebooks.py --quick               # IMAGEGEN_NB_QUICK=1: train a few steps only
    python scripts/execute_notebooks.py --threads 1           # OMP_NUM_THREADS for the kernels (a shared machine)

Each notebook runs top to bottom in a fresh `python3` kernel of this interpreter (so the installed `imagegen_nb` is
the one used), with `notebooks/` as the working directory. A cell that fails stops that notebook, which is then
left unchanged; the script goes on with the others and exits with status 1. `tests/test_notebooks.py` uses the
functions here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
KERNEL = "python3"


def kernel_dir(parent: str | os.PathLike) -> Path:
    """Write a kernelspec named "python3" that runs this interpreter into `parent`/kernels and return `parent`.

    Put first on JUPYTER_PATH, it takes precedence over any other "python3" kernel (a user-wide one may run another
    Python, without imagegen_nb), so notebooks run the same on a fresh CI machine and on a laptop.
    """
    spec = Path(parent) / "kernels" / KERNEL
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"Python 3 ({sys.executable})",
        "language": "python",
        "metadata": {"debugger": True},
    }))
    return Path(parent)


def kernel_env(*, quick: bool = False, threads: int | None = None, base: dict | None = None) -> dict[str, str]:
    """The environment of the notebook kernels: this one, with IMAGEGEN_NB_QUICK and OMP_NUM_THREADS when asked.

    MPLBACKEND is removed so the kernel uses the inline backend and figures land in the outputs (a test run may
    have set it to Agg for itself)."""
    env = dict(os.environ if base is None else base)
    env.pop("MPLBACKEND", None)
    if quick:
        env["IMAGEGEN_NB_QUICK"] = "1"
    if threads is not None:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[name] = str(threads)
    return env


def find(names: list[str]) -> list[Path]:
    """Notebook paths for names given with or without `.ipynb` (all notebooks when none)."""
    if not names:
        return sorted(NOTEBOOKS.glob("*.ipynb"))
    paths = []
    for name in names:
        path = NOTEBOOKS / (name if name.endswith(".ipynb") else f"{name}.ipynb")
        if not path.exists():
            known = ", ".join(p.stem for p in sorted(NOTEBOOKS.glob("*.ipynb")))
            raise SystemExit(f"no notebook {path.name} in {NOTEBOOKS}; known: {known}")
        paths.append(path)
    return paths


def execute(path: Path, *, out: Path | None = None, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: int = 900):
    """Run the notebook at `path` top to bottom and write it with its outputs to `out` (default: in place).

    Returns the executed notebook. Raises nbclient's CellExecutionError (naming the cell) when a cell fails, and
    then writes nothing. The kernelspec comes from JUPYTER_PATH: call inside `with_kernel()`.
    """
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name=KERNEL, record_timing=False,
                            resources={"metadata": {"path": str(cwd or path.parent)}})
    client.execute(env=env if env is not None else kernel_env())
    _drop_jpeg_copies(nb)
    nbformat.write(nb, out or path)
    return nb


def _drop_jpeg_copies(nb) -> None:
    """PIL images display as both PNG and JPEG; front-ends show the PNG, so the JPEG only makes the file bigger."""
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "image/png" in data:
                data.pop("image/jpeg", None)


class with_kernel:
    """Context manager: a temporary "python3" kernelspec for this interpreter, first on JUPYTER_PATH."""

    def __enter__(self) -> Path:
        self._tmp = tempfile.TemporaryDirectory(prefix="imagegen-nb-kernel-")
        self._old = os.environ.get("JUPYTER_PATH")
        path = kernel_dir(self._tmp.name)
        os.environ["JUPYTER_PATH"] = os.pathsep.join([str(path)] + ([self._old] if self._old else []))
        return path

    def __exit__(self, *exc) -> None:
        if self._old is None:
            os.environ.pop("JUPYTER_PATH", None)
        else:
            os.environ["JUPYTER_PATH"] = self._old
        self._tmp.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="notebooks to run (default: all in notebooks/)")
    parser.add_argument("--quick", action="store_true", help="set IMAGEGEN_NB_QUICK=1 (few training steps)")
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for the kernels")
    parser.add_argument("--timeout", type=int, default=900, help="seconds a cell may run (default 900)")
    args = parser.parse_args(argv)

    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    failed = []
    env = kernel_env(quick=args.quick, threads=args.threads)
    with with_kernel():
        for path in find(args.names):
            started = time.perf_counter()
            print(f"{path.name} ...", end=" ", flush=True)
            try:
                execute(path, env=env, timeout=args.timeout)
            except (CellExecutionError, CellTimeoutError, DeadKernelError) as err:
                failed.append(path.name)
                print(f"FAILED after {time.perf_counter() - started:.0f} s\n{err}")
                continue
            print(f"{time.perf_counter() - started:.0f} s")
    if failed:
        print(f"failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
