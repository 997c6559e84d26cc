"""Lesson: a picture as a prompt (IP-Adapter, Ye et al. 2023). An image encoder reads the reference picture, a
projection turns its embedding into four tokens, and every cross-attention layer of the UNet attends to them
beside the prompt's words:

    out = Attention(q, K_text, V_text) + style_scale * Attention(q, K_image, V_image)

`sweep` moves `style_scale` from 0 (the prompt alone) to 1; `style_vs_content` crosses two references with two
prompts: the pictures of a row share the reference's look, those of a column the prompt's content. On the
built-in model the look is the world's: the background and the colour of the shapes, which captions may leave
open; what a prompt names, it keeps. `measure` counts both over many prompts.

>>> from imagegen_nb.teach import style
>>> fig = style.sweep("two squares", scales=(0.0, 1.0), num_inference_steps=2)
>>> [ax.get_title().split(chr(10))[0] for ax in fig.axes]
['reference', 'style_scale 0', 'style_scale 1']
"""

from __future__ import annotations

from ._common import new_figure, show_image, to_rgb

__all__ = ["measure", "style_vs_content", "sweep"]


def _reference(seed: int = 5):
    """A one-colour scene of the shapes world: a reference with a look to carry."""
    from ..tiny import world

    return world.render(world.sample_scene(seed=seed, category="counting"))


def _look_text(image, model, prompt: str | None = None) -> str:
    """The look the world's checker reads, and whether the picture shows what `prompt` asks for (built-in model
    only: elsewhere pictures are not of its world)."""
    if model not in (None, "tiny"):
        return ""
    from ..tiny import checker

    background, colour = checker.look(image)
    content = "" if prompt is None else (" · ✓" if checker.grade(image, prompt) else " · ✗ content")
    return f"\n{background}, {colour or 'no shape'}{content}"


def sweep(prompt: str = "two squares", reference=None, scales=(0.0, 0.25, 0.5, 0.75, 1.0), *, seed: int = 0,
          model=None, **kwargs):
    """The reference picture and `prompt` made at each `style_scale`, same seed. Under each picture of the
    built-in model, the look the world's checker reads (background, colour) and whether the picture shows what
    the prompt asks for (✓, or ✗ content). Other keyword arguments go to
    `ig.generate` (`ip_adapter=`, `num_inference_steps=`, ...).

    At 0 the adapter adds nothing (bit for bit the picture without `style=`); as the scale grows, the image tokens
    pull the picture towards the reference's look.
    """
    from ..tasks import generate

    scales = [float(s) for s in scales]
    if not scales:
        raise ValueError("scales must name at least one style_scale")
    picture = to_rgb(reference) if reference is not None else _reference()
    fig, axes = new_figure(1, 1 + len(scales), cell=2.0, title=f"{prompt!r}, seed {seed}: style_scale")
    show_image(axes[0, 0], picture, "reference" + _look_text(picture, model))
    for ax, scale in zip(axes[0, 1:], scales):
        image = generate(prompt, style=picture, style_scale=scale, seed=seed, model=model, progress=False, **kwargs)
        show_image(ax, image, f"style_scale {scale:g}" + _look_text(image, model, prompt))
    return fig


def style_vs_content(prompts=("a circle", "three triangles"), references=None, *, seed: int = 0, model=None,
                     **kwargs):
    """Two (or more) references down the side, prompts across the top: each picture takes its look from its row's
    reference and its content from its column's prompt. Under each picture of the built-in model, the look the
    world's checker reads and whether the content is right (the model still miscounts sometimes, with or without
    a reference: ✗ content)."""
    from ..tasks import generate

    refs = [to_rgb(r) for r in references] if references is not None else [_reference(5), _reference(8)]
    fig, axes = new_figure(len(refs), 1 + len(prompts), cell=2.0, title="look from the reference, content from the "
                                                                        "prompt")
    for row, picture in enumerate(refs):
        show_image(axes[row, 0], picture, "reference" + _look_text(picture, model))
        for col, prompt in enumerate(prompts):
            image = generate(prompt, style=picture, seed=seed, model=model, progress=False, **kwargs)
            show_image(axes[row, 1 + col], image, repr(prompt) + _look_text(image, model, prompt))
    return fig


def measure(n: int = 16, scales=(0.0, 0.5, 1.0), *, seed: int = 0, **kwargs):
    """On the built-in model: over `n` prompts that leave the look open, the share of pictures with the
    reference's background and colour, and the share the content checker passes, at each `style_scale`. Returns
    the figure and the numbers ({scale: {"background": %, "colour": %, "content": %}}).

    The reference's look is drawn at random (3 backgrounds, 8 colours), so at scale 0 a picture matches it by
    chance only: about a third of backgrounds and an eighth of colours.
    """
    import random

    import numpy as np

    from ..tasks import generate
    from ..tiny import checker, world
    from ..tiny.style_adapter import OPEN_CATEGORIES, pair

    rng = random.Random(seed)
    cases = []
    while len(cases) < n:
        reference, target, prompt = pair(rng)
        if target.category in OPEN_CATEGORIES:
            cases.append((world.render(reference), prompt))
    scores: dict[float, dict[str, float]] = {}
    for scale in [float(s) for s in scales]:
        rows = []
        for i, (picture, prompt) in enumerate(cases):
            image = generate(prompt, style=picture, style_scale=scale, seed=seed + i, progress=False, **kwargs)
            got, want = checker.look(image), checker.look(picture)
            rows.append((got[0] == want[0], got[1] == want[1], checker.grade(image, prompt)))
        shares = 100 * np.mean(rows, axis=0)
        scores[scale] = {"background": float(shares[0]), "colour": float(shares[1]), "content": float(shares[2])}
    fig, axes = new_figure(1, 1, cell=3.2, title=f"{n} prompts that leave the look open")
    ax = axes[0, 0]
    xs = list(scores)
    for key, marker in (("background", "o"), ("colour", "s"), ("content", "^")):
        ax.plot(xs, [scores[x][key] for x in xs], marker=marker, label=key)
    ax.set_xlabel("style_scale")
    ax.set_ylabel("% of pictures")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=7)
    return fig, scores
