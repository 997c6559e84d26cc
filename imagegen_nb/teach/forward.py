"""Lesson: the forward process, a picture drowned in noise step by step. Training teaches the model to undo it.

For the VP schedule of Stable Diffusion (and the built-in model), noise is mixed in at timestep t as

    x_t = sqrt(alpha_bar_t) * x_0 + sqrt(1 - alpha_bar_t) * eps,   eps ~ N(0, I)     (Ho et al. 2020, eq. 4)

with alpha_bar_t falling from ~1 (t=0, clean) to ~0 (t=999, pure noise). Latent diffusion does this to the VAE's
latent, not to the pixels: the figure shows both, and the noised latent decoded back to a picture.
Flow-matching models (SD3, FLUX, Z-Image, Sana) mix linearly instead: x_t = (1 - sigma) x_0 + sigma eps,
sigma = t / 1000.

>>> from imagegen_nb.teach import forward
>>> fig = forward.figure(timesteps=(0, 500, 999))
>>> len(fig.axes)
9
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ._common import (
    decode,
    default_picture,
    encode,
    new_figure,
    pipe_and_family,
    pixel_image,
    pixel_tensor,
    show_image,
    to_rgb,
)

__all__ = ["Noised", "figure", "noised"]


@dataclass
class Noised:
    """One picture noised at several timesteps, in latent and in pixel space (tensors are float32, CPU)."""

    image: Any  # the clean picture (PIL)
    timesteps: list[int]
    noise_levels: list[float]  # alpha_bar_t (VP) or sigma_t (flow) at each timestep
    kind: str  # "vp" or "flow"
    latent: Any  # x_0 in latent space, (1, C, h, w)
    noise: Any  # eps in latent space, same shape
    latents: list = field(default_factory=list)  # x_t in latent space per timestep
    pixels: list = field(default_factory=list)  # x_t in pixel space ([-1, 1]) per timestep


def _check_timesteps(timesteps, total: int) -> list[int]:
    out = [int(t) for t in timesteps]
    bad = [t for t in out if not 0 <= t < total]
    if not out or bad:
        raise ValueError(f"timesteps must be integers in [0, {total - 1}], got {list(timesteps)!r}")
    return out


def noised(image=None, timesteps=(0, 200, 400, 600, 800, 999), *, seed: int = 0, model=None) -> Noised:
    """Noise `image` (default: a shapes-world picture) at each timestep with the same eps (seeded), by the formula
    above; the latent's x_0 is the VAE posterior mean in the model's scale. Pixel-space noise uses its own eps of
    the picture's shape, drawn from the same seed.

    >>> from imagegen_nb.teach import forward
    >>> n = forward.noised(timesteps=(0, 999))
    >>> n.noise_levels[0] > 0.99 and n.noise_levels[1] < 0.01
    True
    """
    import torch

    from ..steps import schedule_kind

    pipe, _ = pipe_and_family(model)
    scheduler = pipe.scheduler
    kind = "flow" if schedule_kind(scheduler) == "flow" else "vp"
    total = scheduler.config.num_train_timesteps
    ts = _check_timesteps(timesteps, total)
    picture = to_rgb(image) if image is not None else default_picture()
    x0 = encode(pipe, picture)
    generator = torch.Generator("cpu").manual_seed(seed)
    eps = torch.randn(x0.shape, generator=generator)
    px0 = pixel_tensor(picture)
    px_eps = torch.randn(px0.shape, generator=torch.Generator("cpu").manual_seed(seed))
    out = Noised(picture, ts, [], kind, x0, eps)
    for t in ts:
        if kind == "vp":
            alpha_bar_t = float(scheduler.alphas_cumprod[t])
            a, s = alpha_bar_t**0.5, (1 - alpha_bar_t) ** 0.5  # signal and noise weights
            out.noise_levels.append(alpha_bar_t)
        else:
            sigma_t = t / total
            a, s = 1 - sigma_t, sigma_t
            out.noise_levels.append(sigma_t)
        out.latents.append(a * x0 + s * eps)
        out.pixels.append(a * px0 + s * px_eps)
    return out


def figure(image=None, timesteps=(0, 200, 400, 600, 800, 999), *, seed: int = 0, model=None):
    """Three rows, one column per timestep: noise added to the pixels; noise added to the latent (shown with
    the cheap linear latent->RGB preview); that noised latent decoded by the VAE.

    In pixel space the picture is gone by the middle timesteps; in latent space the same alpha_bar leaves more
    structure, because each latent pixel carries a whole patch.

    >>> from imagegen_nb.teach import forward
    >>> fig = forward.figure(timesteps=(0, 300, 600, 999))
    >>> fig.axes[0].get_title().startswith("t=0")
    True
    """
    from ..previews import preview_image

    n = noised(image, timesteps, seed=seed, model=model)
    pipe, family = pipe_and_family(model)
    label = "alpha_bar" if n.kind == "vp" else "sigma"
    formula = ("x_t = sqrt(alpha_bar) x_0 + sqrt(1 - alpha_bar) eps" if n.kind == "vp"
               else "x_t = (1 - sigma) x_0 + sigma eps")
    fig, axes = new_figure(3, len(n.timesteps), title=f"forward process: {formula}")
    for j, t in enumerate(n.timesteps):
        show_image(axes[0, j], pixel_image(n.pixels[j]), f"t={t}, {label}={n.noise_levels[j]:.3f}")
        show_image(axes[1, j], preview_image(n.latents[j], pipe, family=family.name))
        show_image(axes[2, j], decode(pipe, n.latents[j]))
    for row, name in enumerate(("pixels + noise", "latent + noise", "latent + noise,\ndecoded")):
        axes[row, 0].set_ylabel(name, fontsize=8)
    return fig

