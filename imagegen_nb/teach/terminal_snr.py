"""Lesson: what the last timestep leaks. Sampling starts from pure noise, but Stable Diffusion 1.5's schedule never
reaches it in training: at t = 999 alpha_bar is 0.0047, so

    x_T = 0.068 * x_0 + 0.998 * eps

still holds 7% of the picture. Spread over a whole latent, that faint copy is enough to tell where things are. A
model trained on this schedule learns to read the layout from x_T instead of deciding it from the prompt; at
sampling time x_T is pure noise, so the noise decides which object goes where. Rescaling the schedule to zero
terminal SNR (Lin et al. 2024, "Common Diffusion Noise Schedules and Sample Steps are Flawed") closes the leak;
it needs v-prediction, since predicting the noise says nothing about the picture when x_t is all noise.
`follows` measures whether a model reads the layout from x_T (the built-in model, trained on the rescaled schedule
with side labels, decides it from the prompt: 98% of its first predictions from pure noise follow the caption).

>>> from imagegen_nb.teach import terminal_snr
>>> leaks = terminal_snr.leak(draws=50)
>>> leaks["SD 1.5 schedule"].read_correctly > 0.7 and leaks["zero terminal SNR"].alpha_bar == 0.0
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._common import decode, encode, new_figure, pipeline, show_image, to_rgb

__all__ = ["Leak", "figure", "follows", "leak"]


@dataclass
class Leak:
    """How much of a picture's layout survives in x_T under one schedule."""

    schedule: str
    alpha_bar: float  # at the last training timestep
    x_T: Any  # one draw of x_T, (1, C, h, w) float32
    read_correctly: float  # share of draws in which the picture, not its mirror image, matches x_T better
    scores: Any  # per draw: how much better the picture matches x_T than its mirror does (numpy, > 0: right)


def _default_picture():
    from ..tiny import world

    shapes = (world.Shape("circle", "red", 18, 32, 12), world.Shape("square", "blue", 46, 32, 12))
    return world.render(world.Scene("black", shapes, "position", "left of"))


def _schedules(config) -> dict[str, Any]:
    from diffusers import DDPMScheduler

    base = {k: config[k] for k in ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule")
            if k in config}
    return {"SD 1.5 schedule": DDPMScheduler(**base, rescale_betas_zero_snr=False),
            "zero terminal SNR": DDPMScheduler(**base, rescale_betas_zero_snr=True)}


def leak(image=None, *, draws: int = 200, seed: int = 0, model=None) -> dict[str, Leak]:
    """For each schedule (the model's betas as they are, and rescaled to zero terminal SNR): x_T of `image`
    (default: a red circle left of a blue square), and how often the best guess from x_T alone, "the picture
    or its mirror image?", is right over `draws` noise draws. That guess is a matched filter, the correlation of x_T
    with the difference of the two latents: a model can learn at least as much.

    >>> from imagegen_nb.teach import terminal_snr
    >>> terminal_snr.leak(draws=50)["zero terminal SNR"].read_correctly < 0.7
    True
    """
    import torch
    from PIL import ImageOps

    if not isinstance(draws, int) or draws < 1:
        raise ValueError(f"draws must be a positive integer, not {draws!r}")
    pipe, family = pipeline(model)
    if not hasattr(pipe.scheduler, "alphas_cumprod"):
        raise ValueError(f"{family.name} models use a flow-matching schedule, which ends at pure noise already; "
                         "this lesson is about VP schedules (the built-in model, SD 1.5, SDXL)")
    picture = to_rgb(image) if image is not None else _default_picture()
    x0, mirror = encode(pipe, picture), encode(pipe, ImageOps.mirror(picture))
    direction = (x0 - mirror).flatten()
    eps = torch.randn((draws, *x0.shape[1:]), generator=torch.Generator("cpu").manual_seed(seed))
    out = {}
    for name, scheduler in _schedules(pipe.scheduler.config).items():
        ab = float(scheduler.alphas_cumprod[-1])
        x_T = ab**0.5 * x0 + (1 - ab) ** 0.5 * eps  # (draws, C, h, w)
        # x_T is closer to a * x0 than to a * mirror  <=>  its correlation with (x0 - mirror) is above the midpoint
        middle = ab**0.5 * float(((x0 + mirror) / 2).flatten() @ direction)
        scores = x_T.flatten(1) @ direction - middle
        out[name] = Leak(name, ab, x_T[:1].clone(), (scores > 0).float().mean().item(), scores.numpy())
    return out


def follows(n: int = 64, *, seed: int = 0, model=None) -> dict[str, float]:
    """Does the model decide where things go from the prompt, or read it from x_T? For `n` left/right position
    captions of the shapes world, the share of the model's first predictions of x0 (at its last training timestep)
    that are closer to the caption's picture than to its mirror image, when x_T holds the residue of the caption's
    picture, of its mirror image, or nothing (pure noise, as at sampling time). A model that reads the residue follows
    it (high, low); one that decides from the prompt stays high in all three. On a zero-terminal-SNR schedule, such
    as the built-in model's, x_T holds no residue, so the three are one draw: high if the prompt decides the layout.
    The earlier built-in model, trained on SD 1.5's schedule, gave 69%, 23% and 48%.

    >>> from imagegen_nb.teach import terminal_snr
    >>> shares = terminal_snr.follows(4)
    >>> sorted(shares)
    ['mirror residue', 'picture residue', 'pure noise']
    """
    import random

    import torch

    from ..steps import predict_x0
    from ..tiny import world

    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, not {n!r}")
    pipe, family = pipeline(model)
    unet, scheduler = getattr(pipe, "unet", None), pipe.scheduler
    if unet is None or not hasattr(scheduler, "alphas_cumprod"):
        raise ValueError(f"{family.name} models are not UNets on a VP schedule; this measure is for the built-in "
                         "model (and SD 1.5-like models)")
    rng = random.Random(seed)
    scenes = []
    while len(scenes) < n:
        scene = world.sample_scene(rng=rng, category="position")
        if scene.relation in ("left of", "right of"):
            scenes.append(scene)
    captions = [world.caption(s) for s in scenes]
    x0 = torch.cat([encode(pipe, world.render(s)) for s in scenes])
    mirror = torch.cat([encode(pipe, world.render(world.flip_horizontal(s))) for s in scenes])
    param = next(unet.parameters())
    with torch.no_grad():
        text, _ = pipe.encode_prompt(captions, param.device, 1, False)
        t = scheduler.config.num_train_timesteps - 1
        ab = float(scheduler.alphas_cumprod[t])
        eps = torch.randn(x0.shape, generator=torch.Generator("cpu").manual_seed(seed))
        out = {}
        for name, residue in (("picture residue", x0), ("mirror residue", mirror), ("pure noise", 0 * x0)):
            x_t = ab**0.5 * residue + (1 - ab) ** 0.5 * eps
            pred = unet(x_t.to(param), t, encoder_hidden_states=text.to(param)).sample
            x0_pred = predict_x0(scheduler, pred, x_t.to(param), t).float().cpu()
            closer = (x0_pred - x0).pow(2).mean((1, 2, 3)) < (x0_pred - mirror).pow(2).mean((1, 2, 3))
            out[name] = closer.float().mean().item()
    return out


def figure(image=None, *, draws: int = 200, seed: int = 0, model=None):
    """One row per schedule: the picture; one x_T, decoded (noise to the eye); and over `draws` noise draws, how
    much better x_T matches the picture than its mirror image (right of 0: the layout can be read from x_T).

    >>> from imagegen_nb.teach import terminal_snr
    >>> fig = terminal_snr.figure(draws=20)
    >>> len(fig.axes)
    6
    """
    import numpy as np

    leaks = leak(image, draws=draws, seed=seed, model=model)
    pipe, _ = pipeline(model)
    picture = to_rgb(image) if image is not None else _default_picture()
    fig, axes = new_figure(len(leaks), 3, cell=2.2, title="what x_T, where sampling starts, leaks of the picture")
    spread = max(float(np.abs(item.scores).max()) for item in leaks.values())
    bins = np.linspace(-spread, spread, 31)
    for row, item in zip(axes, leaks.values()):
        show_image(row[0], picture, "x_0 (the picture)")
        row[0].set_ylabel(f"{item.schedule}\nalpha_bar_T = {item.alpha_bar:.4f}", fontsize=8)
        show_image(row[1], decode(pipe, item.x_T), "x_T, decoded")
        row[2].hist(item.scores, bins=bins, color="tab:blue" if item.alpha_bar > 0 else "tab:gray")
        row[2].axvline(0, color="black", lw=1)
        row[2].set_yticks([])
        row[2].set_title(f"picture vs its mirror in x_T:\nright in {item.read_correctly:.0%} of {draws} draws",
                         fontsize=8)
    axes[-1, 2].set_xlabel("x_T . (picture - mirror), centred", fontsize=8)
    return fig
