"""Lesson: samplers (diffusers' schedulers) and step counts. Every sampler solves the same reverse process from the
same starting noise; they differ in how they step between noise levels (first-order Euler/DDIM, multistep
DPM-Solver++ and UniPC reusing earlier predictions, ancestral samplers adding fresh noise), hence in how many steps
they need before the picture stops changing.

>>> from imagegen_nb.teach import samplers
>>> fig = samplers.compare("a red circle", schedulers=("ddim", "euler"), steps=(2, 4))
>>> len(fig.axes)
4
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ._common import new_figure, show_image

__all__ = ["DEFAULT_SCHEDULERS", "Sample", "compare", "run"]

# Those that need no optional dependency (LMS needs scipy, DPM++ SDE needs torchsde).
DEFAULT_SCHEDULERS = ("ddim", "euler", "euler_a", "dpm++", "unipc")


@dataclass
class Sample:
    """One picture of the comparison and how long `ig.generate` took for it."""

    scheduler: str
    steps: int
    image: Any
    seconds: float


def run(prompt: str, schedulers=DEFAULT_SCHEDULERS, steps=(4, 8, 20), *, seed: int = 0, **kwargs) -> list[Sample]:
    """`ig.generate(prompt, seed=seed, scheduler=s, num_inference_steps=n)` for every scheduler s and step count
    n, timed with `time.perf_counter` (the model is loaded once beforehand, so load time is not counted).

    >>> from imagegen_nb.teach import samplers
    >>> [(s.scheduler, s.steps) for s in samplers.run("a red circle", ("ddim",), (2, 3))]
    [('ddim', 2), ('ddim', 3)]
    """
    from ..schedulers import SCHEDULERS
    from ..tasks import generate

    schedulers = (schedulers,) if isinstance(schedulers, str) else tuple(schedulers)
    unknown = [s for s in schedulers if s not in SCHEDULERS]
    if unknown:
        raise ValueError(f"unknown scheduler {unknown[0]!r}; choose from {', '.join(SCHEDULERS)}")
    generate(prompt, seed=seed, num_inference_steps=1, progress=False, **kwargs)  # load and warm up
    out = []
    for name in schedulers:
        for n in steps:
            start = time.perf_counter()
            image = generate(prompt, seed=seed, scheduler=name, num_inference_steps=int(n), progress=False, **kwargs)
            out.append(Sample(name, int(n), image, time.perf_counter() - start))
    return out


def compare(prompt: str, schedulers=DEFAULT_SCHEDULERS, steps=(4, 8, 20), *, seed: int = 0, **kwargs):
    """A grid: one row per scheduler, one column per step count, same seed everywhere, wall time in each title.

    >>> from imagegen_nb.teach import samplers
    >>> fig = samplers.compare("two blue squares", schedulers=("dpm++",), steps=(2, 4))
    >>> fig.axes[1].get_title().splitlines()[0]
    'dpm++, 4 steps'
    """
    schedulers = (schedulers,) if isinstance(schedulers, str) else tuple(schedulers)
    steps = tuple(steps)
    samples = run(prompt, schedulers, steps, seed=seed, **kwargs)
    fig, axes = new_figure(len(schedulers), len(steps), cell=1.9, title=f"{prompt!r}, seed {seed}")
    for k, s in enumerate(samples):
        show_image(axes[k // len(steps), k % len(steps)], s.image, f"{s.scheduler}, {s.steps} steps\n{s.seconds:.2f} s")
    return fig
