"""Lesson: measuring prompt following. GenEval (Ghosh, Hajishirzi & Schmidt 2023, "GenEval: An Object-Focused
Framework for Evaluating Text-to-Image Alignment", NeurIPS Datasets and Benchmarks, arXiv:2310.11513) generates
pictures for templated prompts in six categories and checks them with an object detector; a prompt counts only if
everything it asks for is there. The built-in model's world has the same six categories and `imagegen_nb.tiny.checker`
plays the detector, so its scores sit on the same scale as those of real models (on a far easier world).

>>> from imagegen_nb.teach import geneval
>>> fig = geneval.figure(scores={"single object": 1.0, "two object": 0.5, "counting": 0.25, "colors": 1.0,
...                              "position": 0.0, "color attribution": 0.0})
>>> len(fig.axes)
1
"""

from __future__ import annotations

__all__ = ["CATEGORIES", "PUBLISHED", "figure", "prompts", "score"]

# GenEval's category names, and the shapes world's name for each.
CATEGORIES = {"single object": "single_object", "two object": "two_object", "counting": "counting",
              "colors": "colors", "position": "position", "color attribution": "color_attr"}

# As reported in the GenEval paper (Ghosh et al. 2023): fraction of prompts judged correct.
PUBLISHED: dict[str, dict[str, float]] = {
    "SD 1.5": {"overall": 0.43, "single object": 0.97, "two object": 0.38, "counting": 0.35, "colors": 0.76,
               "position": 0.04, "color attribution": 0.06},
    "SDXL": {"overall": 0.55, "single object": 0.98, "two object": 0.74, "counting": 0.39, "colors": 0.85,
             "position": 0.15, "color attribution": 0.23},
}


def prompts(n: int = 8, *, seed: int = 0, held_out: bool = False) -> dict[str, list[str]]:
    """`n` prompts per GenEval category in the shapes world's grammar (`world.caption`'s plain form).

    `held_out=True` draws scenes that may use the colour x shape pairs the built-in model never saw in training.

    >>> from imagegen_nb.teach import geneval
    >>> geneval.prompts(1, seed=0)["counting"][0].split()[0] in ("two", "three", "four")
    True
    """
    import random

    from ..tiny import world

    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, not {n!r}")
    rng = random.Random(seed)
    out = {}
    for name, category in CATEGORIES.items():
        out[name] = [world.caption(world.sample_scene(category=category, rng=rng, training=not held_out))
                     for _ in range(n)]
    return out


def score(n: int = 8, *, seed: int = 0, model=None, held_out: bool = False, **kwargs) -> dict[str, float]:
    """The built-in model's GenEval-style scores: for each category, the fraction of `n` prompts whose picture
    `checker.grade` accepts; "overall" is the mean of the six categories (as in GenEval). Pictures come from
    `ig.generate(prompt, seed=seed + k)`; other keyword arguments go to it.

    >>> from imagegen_nb.teach import geneval
    >>> s = geneval.score(1, num_inference_steps=2)
    >>> sorted(s) == sorted([*geneval.CATEGORIES, "overall"]) and all(0 <= v <= 1 for v in s.values())
    True
    """
    from ..tasks import generate
    from ..tiny import checker

    out: dict[str, float] = {}
    for name, items in prompts(n, seed=seed, held_out=held_out).items():
        hits = [checker.grade(generate(p, seed=seed + k, model=model, progress=False, **kwargs), p)
                for k, p in enumerate(items)]
        out[name] = sum(hits) / len(hits)
    out["overall"] = sum(out[c] for c in CATEGORIES) / len(CATEGORIES)
    return out


def figure(scores: dict[str, float] | None = None, *, label: str = "built-in (shapes world)", **kwargs):
    """Grouped bars: the built-in model's scores (computed with `score(**kwargs)` unless given) next to SD 1.5 and
    SDXL as published in the GenEval paper. The built-in model's world is much simpler, so the point is the
    pattern across categories (counting, position and attribute binding are hard), not the absolute level.

    >>> from imagegen_nb.teach import geneval
    >>> fig = geneval.figure(n=1, num_inference_steps=2)
    >>> fig.axes[0].get_ylabel()
    'fraction correct'
    """
    import numpy as np

    from ._common import new_figure

    if scores is None:
        scores = score(**kwargs)
        label = f"{label}, {kwargs.get('n', 8)} prompts each"
    missing = [c for c in CATEGORIES if c not in scores]
    if missing:
        raise ValueError(f"scores lacks categories {missing}; expected keys {list(CATEGORIES)}")
    scores = dict(scores)
    scores.setdefault("overall", sum(scores[c] for c in CATEGORIES) / len(CATEGORIES))
    columns = ["overall", *CATEGORIES]
    series = {label: scores, **PUBLISHED}
    fig, axes = new_figure(1, 1, title="GenEval categories (SD 1.5 and SDXL as published by Ghosh et al. 2023)")
    fig.set_size_inches(11, 3.6)
    ax = axes[0, 0]
    x = np.arange(len(columns))
    width = 0.8 / len(series)
    for k, (name, values) in enumerate(series.items()):
        heights = [values[c] for c in columns]
        bars = ax.bar(x + (k - (len(series) - 1) / 2) * width, heights, width, label=name)
        ax.bar_label(bars, fmt="%.2f", fontsize=6, padding=1)
    ax.set_xticks(x, columns, fontsize=8)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("fraction correct")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))  # beside the plot: no bar is hidden
    ax.grid(axis="y", alpha=0.3)
    return fig
