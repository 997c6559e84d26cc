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

Flow-matching models (SD3, FLUX, Z-Image, Sana) mix x_t = (1 - sigma) x_0 + sigma eps and start sampling at
sigma = 1, where x_T = eps: their schedule has zero terminal SNR by construction, and `leak` shows that one row.

>>> from imagegen_nb.teach import terminal_snr
>>> leaks = terminal_snr.leak(draws=50)
>>> leaks["SD 1.5 schedule"].read_correctly > 0.7 and leaks["zero terminal SNR"].alpha_bar == 0.0
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._common import decode, encode, new_figure, pipe_and_family, show_image, to_rgb

__all__ = ["Leak", "figure", "follows", "leak"]


@dataclass
class Leak:
    """How much of a picture's layout survives in x_T under one schedule."""

    schedule: str
    # at the last training timestep; for flow matching the same share of signal power,
    # (1 - sigma)^2 / ((1 - sigma)^2 + sigma^2), which is 0 at sigma = 1
    alpha_bar: float
    x_T: Any  # one draw of x_T, (1, C, h, w) float32
    read_correctly: float  # share of draws in which the picture, not its mirror image, matches x_T better
    scores: Any  # per draw: how much better the picture matches x_T than its mirror does (numpy, > 0: right)


def _default_picture():
    from ..tiny import world

    shapes = (world.Shape("circle", "red", 18, 32, 12), world.Shape("square", "blue", 46, 32, 12))
    return world.render(world.Scene("black", shapes, "position", "left of"))


def _schedules(config) -> dict[str, Any]:
    """The model's betas as they are and rescaled to zero terminal SNR. The first is named "SD 1.5 schedule" when
    the betas are SD 1.5's (scaled linear, 0.00085 to 0.012: also the built-in model's before rescaling), else after
    the betas (PixArt's are DDPM's linear 0.0001 to 0.02)."""
    from diffusers import DDPMScheduler

    base = {k: config[k] for k in ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule")
            if k in config}
    plain = DDPMScheduler(**base, rescale_betas_zero_snr=False)
    cfg = plain.config
    if (cfg.beta_schedule, cfg.beta_start, cfg.beta_end) == ("scaled_linear", 0.00085, 0.012):
        name = "SD 1.5 schedule"
    else:
        name = f"{cfg.beta_schedule} betas {cfg.beta_start:g} to {cfg.beta_end:g}"
    return {name: plain, "zero terminal SNR": DDPMScheduler(**base, rescale_betas_zero_snr=True)}


def _first_sigma(scheduler) -> float:
    """The sigma a flow scheduler starts sampling from (1 for FlowMatchEuler; DPM-Solver's flow sigmas start a
    step below 1, shifted), from a fresh copy so the cached scheduler is left as it is."""
    fresh = type(scheduler).from_config(scheduler.config)
    # with dynamic shifting, mu = 0 is no shift; sigma = 1 is a fixed point of every shift anyway
    fresh.set_timesteps(20, **({"mu": 0.0} if fresh.config.get("use_dynamic_shifting") else {}))
    return float(fresh.sigmas[0])


def leak(image=None, *, draws: int = 200, seed: int = 0, model=None) -> dict[str, Leak]:
    """For each schedule (the model's betas as they are, and rescaled to zero terminal SNR): x_T of `image`
    (default: a red circle left of a blue square), and how often the best guess from x_T alone, "the picture
    or its mirror image?", is right over `draws` noise draws. That guess is a matched filter, the correlation of x_T
    with the difference of the two latents: a model can learn at least as much. A flow-matching model has one
    schedule, ending at sigma = 1 (x_T = eps): one entry, named after it.

    >>> from imagegen_nb.teach import terminal_snr
    >>> terminal_snr.leak(draws=50)["zero terminal SNR"].read_correctly < 0.7
    True
    """
    import torch
    from PIL import ImageOps

    from ..steps import schedule_kind

    if not isinstance(draws, int) or draws < 1:
        raise ValueError(f"draws must be a positive integer, not {draws!r}")
    pipe, _ = pipe_and_family(model)
    picture = to_rgb(image) if image is not None else _default_picture()
    x0, mirror = encode(pipe, picture), encode(pipe, ImageOps.mirror(picture))
    direction = (x0 - mirror).flatten()
    eps = torch.randn((draws, *x0.shape[1:]), generator=torch.Generator("cpu").manual_seed(seed))
    if schedule_kind(pipe.scheduler) == "flow":
        # x_T = (1 - sigma) x0 + sigma eps at the first sampling step
        sigma = _first_sigma(pipe.scheduler)
        weights = {f"flow matching (sigma_T = {sigma:.4g})": (1 - sigma, sigma)}
    else:
        weights = {name: (float(s.alphas_cumprod[-1]) ** 0.5, (1 - float(s.alphas_cumprod[-1])) ** 0.5)
                   for name, s in _schedules(pipe.scheduler.config).items()}
    out = {}
    for name, (a, s) in weights.items():
        x_T = a * x0 + s * eps  # (draws, C, h, w)
        # x_T is closer to a * x0 than to a * mirror  <=>  its correlation with (x0 - mirror) is above the midpoint
        middle = a * float(((x0 + mirror) / 2).flatten() @ direction)
        scores = x_T.flatten(1) @ direction - middle
        out[name] = Leak(name, a**2 / (a**2 + s**2), x_T[:1].clone(), (scores > 0).float().mean().item(),
                         scores.numpy())
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

    from ..steps import schedule_kind
    from ..tiny import world

    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, not {n!r}")
    pipe, family = pipe_and_family(model)
    unet, scheduler = getattr(pipe, "unet", None), pipe.scheduler
    if schedule_kind(scheduler) == "flow":
        raise ValueError(f"{family.name} models are trained by flow matching, whose sampling starts from pure noise "
                         "(sigma = 1, or within a thousandth of it): x_T holds no residue to follow, so the three "
                         "shares would be one draw; `leak` shows that schedule")
    if unet is None:
        raise ValueError(f"{family.name} models denoise with a transformer; this measure calls a UNet directly (the "
                         "built-in model, SD 1.5 and SDXL). `leak` measures the residue in x_T for any VP schedule")
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
        encoded = pipe.encode_prompt(prompt=captions, device=param.device, num_images_per_prompt=1,
                                     do_classifier_free_guidance=False)
        text, added = encoded[0], None
        if getattr(pipe, "text_encoder_2", None) is not None:  # SDXL: pooled text and size micro-conditioning too
            size = tuple(int(v) * pipe.vae_scale_factor for v in x0.shape[-2:])  # (height, width) in pixels
            time_ids = pipe._get_add_time_ids(size, (0, 0), size, dtype=text.dtype,
                                              text_encoder_projection_dim=pipe.text_encoder_2.config.projection_dim)
            added = {"text_embeds": encoded[2], "time_ids": time_ids.repeat(len(captions), 1).to(param.device)}
        t = scheduler.config.num_train_timesteps - 1
        ab = float(scheduler.alphas_cumprod[t])
        eps = torch.randn(x0.shape, generator=torch.Generator("cpu").manual_seed(seed))
        out = {}
        for name, residue in (("picture residue", x0), ("mirror residue", mirror), ("pure noise", 0 * x0)):
            x_t = ab**0.5 * residue + (1 - ab) ** 0.5 * eps
            pred = unet(x_t.to(param), t, encoder_hidden_states=text.to(param), added_cond_kwargs=added).sample
            x0_pred = _x0_from(pred.float().cpu(), x_t, ab, scheduler.config.get("prediction_type", "epsilon"))
            closer = (x0_pred - x0).pow(2).mean((1, 2, 3)) < (x0_pred - mirror).pow(2).mean((1, 2, 3))
            out[name] = closer.float().mean().item()
    return out


def _x0_from(pred, x_t, alpha_bar: float, prediction_type: str):
    """x0 from the model's output at a VP timestep (x_t in the VP form the denoiser reads, whatever the sampler)."""
    if prediction_type == "v_prediction":  # v = sqrt(ab) eps - sqrt(1 - ab) x0
        return alpha_bar**0.5 * x_t - (1 - alpha_bar) ** 0.5 * pred
    if prediction_type == "sample":
        return pred
    return (x_t - (1 - alpha_bar) ** 0.5 * pred) / alpha_bar**0.5  # epsilon


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
    pipe, _ = pipe_and_family(model)
    picture = to_rgb(image) if image is not None else _default_picture()
    fig, axes = new_figure(len(leaks), 3, cell=2.2, title="what x_T, where sampling starts, leaks of the picture")
    spread = max(float(np.abs(item.scores).max()) for item in leaks.values())
    bins = np.linspace(-spread, spread, 31)
    for row, item in zip(axes, leaks.values()):
        show_image(row[0], picture, "x_0 (the picture)")
        level = "signal share" if item.schedule.startswith("flow") else "alpha_bar_T ="
        row[0].set_ylabel(f"{item.schedule}\n{level} {item.alpha_bar:.2g}", fontsize=8)
        show_image(row[1], decode(pipe, item.x_T), "x_T, decoded")
        row[2].hist(item.scores, bins=bins, color="tab:blue" if item.alpha_bar > 0 else "tab:gray")
        row[2].axvline(0, color="black", lw=1)
        row[2].set_yticks([])
        row[2].set_title(f"picture vs its mirror in x_T:\nright in {item.read_correctly:.0%} of {draws} draws",
                         fontsize=8)
    axes[-1, 2].set_xlabel("x_T . (picture - mirror), centred", fontsize=8)
    return fig
