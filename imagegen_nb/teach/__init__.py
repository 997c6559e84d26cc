"""Teaching figures: one module per lesson, each returning matplotlib figures (or animations) built from the same
functions users call (`ig.generate`, `ig.trace`, ...) and the step records of `imagegen_nb.steps`.

Lessons: `tokens` (prompt -> tokens -> embeddings), `forward` (noising a picture), `schedules` (noise level over
time), `reverse` (a trace step by step), `guidance` (classifier-free guidance), `samplers` (schedulers and step
counts), `latent` (what the VAE keeps), `attention` (which word goes where), `seeds` (the starting noise),
`inpaint` and `control` (the conditioned tasks), `style` (a picture as a prompt: IP-Adapter),
`geneval` (how the built-in model scores next to real models),
`terminal_snr` (what the last timestep of a schedule leaks of the picture); and the field's story:
`architecture` (U-Net against DiT), `flow` (diffusion against flow matching, and step counts), `prediction` (what
the network should predict: the JiT toy), `gan` (a GAN against a diffusion model on the same toy data) and
`failures` (what models still get wrong: position, colour attribution, counting).

Figures are `matplotlib.figure.Figure` objects made without pyplot, so they work under any backend and never
pop up windows; a notebook shows one when it is the cell's value.

>>> import imagegen_nb as ig
>>> fig = ig.teach.latent.explain()
>>> len(fig.axes)
7
"""

from __future__ import annotations

import importlib
from typing import Any

LESSONS = ("tokens", "forward", "schedules", "reverse", "guidance", "samplers", "latent", "attention", "seeds",
           "inpaint", "control", "style", "geneval", "terminal_snr", "architecture", "flow", "prediction", "gan",
           "failures")

__all__ = list(LESSONS)


def __getattr__(name: str) -> Any:
    # Lessons import matplotlib and torch: load each on first use so `import imagegen_nb.teach` stays instant.
    if name not in LESSONS:
        raise AttributeError(f"module 'imagegen_nb.teach' has no attribute {name!r}")
    module = importlib.import_module(f".{name}", __name__)
    globals()[name] = module
    return module


def __dir__() -> list[str]:
    return __all__
