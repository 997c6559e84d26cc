"""Lesson: classifier-free guidance. At each step the denoiser runs twice, with the prompt and without it (the empty
or negative prompt), and the sampler uses

    eps = eps_uncond + w * (eps_cond - eps_uncond)        (Ho & Salimans 2022, eq. 6)

with guidance scale w: w = 1 is the conditional prediction alone, w > 1 pushes further from "any picture" towards
"this prompt". The difference eps_cond - eps_uncond is where the prompt matters.

>>> import imagegen_nb as ig
>>> from imagegen_nb.teach import guidance
>>> tr = ig.trace("a red circle", seed=0, num_inference_steps=4, guidance_scale=4.0)
>>> len(guidance.at_step(tr, 2).axes)
4
"""

from __future__ import annotations

from ._common import new_figure, show_image

__all__ = ["at_step", "sweep"]


def at_step(trace, step: int | None = None, *, fast: bool = False):
    """What the model would draw at `step` (default: the middle one) from the unconditional prediction, the
    conditional one, and the guided mix the sampler used (each turned into x0), and where they differ: the mean
    over channels of |eps_cond - eps_uncond| at each latent pixel.

    >>> import imagegen_nb as ig
    >>> from imagegen_nb.teach import guidance
    >>> fig = guidance.at_step(ig.trace("two green circles", seed=1, num_inference_steps=3), fast=True)
    >>> fig.axes[3].get_title().startswith("|eps_cond - eps_uncond|")
    True
    """
    from .. import registry
    from ..previews import preview_image, vae_decode
    from ..recipes import recipe

    if trace.noise_cond is None:
        raise ValueError(_no_split_reason(trace, recipe(trace.image).get("guidance_scale")))
    i = len(trace) // 2 if step is None else step
    i = trace.index(i)
    g = recipe(trace.image)["guidance_scale"]
    offset = registry.FAMILIES[trace.family].guidance_offset if trace.family in registry.FAMILIES else 0.0
    w = g + offset  # ordinary CFG's weight (Z-Image's pipelines take g with w = g + 1)
    pipe = trace.pipe
    x0s = [trace.x0_from(i, trace.noise_uncond[i]), trace.x0_from(i, trace.noise_cond[i]), trace.x0[i].float()]
    diff = (trace.tensor(i, "noise_cond") - trace.tensor(i, "noise_uncond")).abs().mean(0)
    fig, axes = new_figure(1, 4, cell=2.3, title=f"step {i} of {len(trace)} (t={float(trace.timesteps[i]):.0f}): "
                                                 f"eps = eps_u + {w:g} (eps_c - eps_u)")
    given = f"w={w:g}" if not offset else f"w={w:g}: guidance_scale {g:g} + {offset:g}"
    labels = ("x0 from eps_uncond\n(no prompt)", "x0 from eps_cond\n(prompt)", f"x0 from guided eps\n({given})")
    for ax, x0, label in zip(axes[0], x0s, labels):
        picture = preview_image(x0[None], pipe, family=trace.family) if fast else vae_decode(x0[None], pipe)
        show_image(ax, picture, label)
    ax = axes[0, 3]
    ax.imshow(diff.numpy(), cmap="magma", interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"|eps_cond - eps_uncond|\n(max {float(diff.max()):.3g})", fontsize=8)
    return fig


def _no_split_reason(trace, w) -> str:
    """Why a trace holds no conditional/unconditional pair, as true as the trace lets us say."""
    family = trace.family or "this"
    if family.startswith("flux"):
        return (f"{family} models are guidance-distilled: guidance_scale is an input of the transformer, which runs "
                "once per step, so there is no unconditional prediction to compare")
    if w is None or w <= 1:
        return (f"this trace was made without classifier-free guidance (guidance_scale={w}); make it with "
                "guidance_scale > 1")
    reasons = {"pixart-sigma": "its transformer also predicts the variance (twice the latent's channels)"}
    why = reasons.get(family, "its denoiser's output does not have the latent's shape")
    return (f"this {family} run used classifier-free guidance (guidance_scale={w:g}), but its trace holds no "
            f"conditional/unconditional split: traces record the split only when the denoiser's output has the "
            f"latent's shape, and {why}")


def sweep(prompt: str, scales=(1.0, 2.0, 4.0, 8.0), *, seed: int = 0, **kwargs):
    """The same prompt and seed at several guidance scales (`ig.generate(..., guidance_scale=w)`): more guidance
    follows the prompt harder, and too much oversaturates. Other keyword arguments go to `ig.generate`.

    >>> from imagegen_nb.teach import guidance
    >>> fig = guidance.sweep("a blue square", scales=(1, 4), num_inference_steps=4)
    >>> [ax.get_title() for ax in fig.axes]
    ['w = 1', 'w = 4']
    """
    from ..tasks import generate

    scales = list(scales)
    if not scales:
        raise ValueError("scales must name at least one guidance scale")
    fig, axes = new_figure(1, len(scales), cell=2.0, title=f"{prompt!r}, seed {seed}: guidance scale w")
    for ax, w in zip(axes[0], scales):
        image = generate(prompt, seed=seed, guidance_scale=w, progress=False, **kwargs)
        show_image(ax, image, f"w = {w:g}")
    return fig
