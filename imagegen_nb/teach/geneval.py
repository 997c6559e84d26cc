"""Lesson: measuring prompt following. GenEval (Ghosh, Hajishirzi & Schmidt 2023, "GenEval: An Object-Focused
Framework for Evaluating Text-to-Image Alignment", NeurIPS Datasets and Benchmarks, arXiv:2310.11513) generates
pictures for templated prompts in six categories and checks them with an object detector; a prompt counts only if
everything it asks for is there. The built-in model's world has the same six categories and `imagegen_nb.tiny.checker`
plays the detector. The scores are fractions of prompts on the same rules, but not comparable with real models':
the shapes world is far easier (three shapes, eight colours, plain backgrounds), and its checker reads flat shapes
where GenEval's detector reads photographs. `CHANCE` gives what ignoring the prompt scores in each category of the
shapes world.

>>> from imagegen_nb.teach import geneval
>>> fig = geneval.figure(scores={"single object": 1.0, "two object": 0.5, "counting": 0.25, "colors": 1.0,
...                              "position": 0.0, "color attribution": 0.0})
>>> len(fig.axes)
1
"""

from __future__ import annotations

from .. import arguments

__all__ = ["CATEGORIES", "CHANCE", "PUBLISHED", "chance", "figure", "prompts", "score"]

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


# Chance in the shapes world: `chance(n=5000, seed=0)`, rounded. Exactly, for the first four: a random shape is
# right 1 time in 3, so is a random pair of two different shapes out of three; a random count (2, 3 or 4) of a
# random shape 1 in 9; a random colour x shape pair 1 in 21 (8 colours x 3 shapes, less the 3 held-out pairs).
CHANCE: dict[str, float] = {"single object": 0.340, "two object": 0.334, "counting": 0.113, "colors": 0.045,
                            "position": 0.003, "color attribution": 0.008}


def chance(n: int = 1000, *, seed: int = 0) -> dict[str, float]:
    """Each category's chance level in the shapes world: the share of prompts that `checker.grade` accepts for a
    picture drawn without reading the prompt, a random well-formed scene of the same category (`world.sample_scene`,
    so random shapes, colours, counts, places and relations as the world draws them), over `n` prompt x picture
    pairs. A model that draws the world perfectly but ignores the prompt scores this.

    >>> from imagegen_nb.teach import geneval
    >>> 0.2 < geneval.chance(60)["single object"] < 0.5
    True
    """
    import random

    from ..tiny import checker, world

    n = arguments.integer("n", n, low=1)
    rng = random.Random(seed)
    out = {}
    for name, category in CATEGORIES.items():
        hits = 0
        for _ in range(n):
            prompt = world.caption(world.sample_scene(category=category, rng=rng))
            picture = world.render(world.sample_scene(category=category, rng=rng))  # blind to the prompt
            hits += checker.grade(picture, prompt)
        out[name] = hits / n
    return out


def prompts(n: int = 8, *, seed: int = 0, held_out: bool = False) -> dict[str, list[str]]:
    """`n` prompts per GenEval category in the shapes world's grammar (`world.caption`'s plain form).

    `held_out=True` draws scenes that may use the colour x shape pairs the built-in model never saw in training.

    >>> from imagegen_nb.teach import geneval
    >>> geneval.prompts(1, seed=0)["counting"][0].split()[0] in ("two", "three", "four")
    True
    """
    import random

    from ..tiny import world

    n = arguments.integer("n", n, low=1)
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


_CAVEAT = ("Not comparable: the built-in model is scored in the shapes world (3 shapes, 8 colours, plain "
           "backgrounds, 64x64 pixels), graded by a checker of flat colours and outlines; SD 1.5 and SDXL on "
           "GenEval's real-world prompts (80 COCO objects), graded by an object detector.\nThe shapes world is far "
           "easier: compare the pattern across categories, not the heights of bars side by side. Black ticks: chance "
           "in the shapes world (a random scene of the category, prompt ignored).")


def figure(scores: dict[str, float] | None = None, *, label: str = "built-in (shapes world)", **kwargs):
    """Grouped bars: the built-in model's scores (computed with `score(**kwargs)` unless given) next to SD 1.5 and
    SDXL as published in the GenEval paper, with each category's chance level in the shapes world (`CHANCE`) marked
    on the built-in model's bars. The figure says on itself that the two sets are not comparable: the built-in
    model's world is far simpler, so the point is the pattern across categories (counting, position and attribute
    binding are hard), not the absolute level.

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
    series = {label: scores, **{f"{name} (GenEval's real-world prompts)": v for name, v in PUBLISHED.items()}}
    fig, axes = new_figure(1, 1, title="GenEval categories: the shapes world beside real models, not comparable "
                                       "(SD 1.5 and SDXL as published by Ghosh et al. 2023)")
    fig.set_size_inches(12, 4.6)
    ax = axes[0, 0]
    x = np.arange(len(columns))
    width = 0.8 / len(series)
    for k, (name, values) in enumerate(series.items()):
        heights = [values[c] for c in columns]
        bars = ax.bar(x + (k - (len(series) - 1) / 2) * width, heights, width, label=name,
                      hatch=None if k == 0 else "//", alpha=1.0 if k == 0 else 0.75)
        ax.bar_label(bars, fmt="%.2f", fontsize=6, padding=1)
    # chance in the shapes world, on the built-in model's bars
    level = {**CHANCE, "overall": sum(CHANCE.values()) / len(CHANCE)}
    left = x - (len(series) - 1) / 2 * width
    ax.hlines([level[c] for c in columns], left - width / 2, left + width / 2, colors="black", lw=2,
              label="chance in the shapes world")
    for xi, c in zip(left, columns):
        ax.annotate(f"chance {level[c]:.2f}", (xi, level[c]), xytext=(0, 2), textcoords="offset points",
                    ha="center", va="bottom", fontsize=5.5, color="black",
                    bbox=dict(boxstyle="square,pad=0.1", facecolor="white", edgecolor="none", alpha=0.8))
    ax.set_xticks(x, columns, fontsize=8)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("fraction correct")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))  # beside the plot: no bar is hidden
    ax.grid(axis="y", alpha=0.3)
    fig.text(0.01, 0.005, _CAVEAT, fontsize=7.5, ha="left", va="bottom", wrap=True,
             bbox=dict(boxstyle="round,pad=0.4", facecolor="#fff4d6", edgecolor="#c9a227"))
    fig.get_layout_engine().set(rect=(0, 0.13, 1, 0.87))
    return fig
