"""Lesson: the noise schedule, how much signal is left at each timestep, and which timesteps each sampler visits.

Training fixes alpha_bar_t = prod_{s<=t} (1 - beta_s) for t = 0..999 (SD's "scaled linear" betas; the built-in
model's are rescaled to zero terminal SNR, Lin et al. 2024, so alpha_bar_999 = 0 and sampling starts from pure
noise). A sampler with N steps visits only N of those noise levels, and schedulers differ in which: evenly spaced
timesteps ("trailing" ones, which start at t = 999, for a zero-SNR model), Karras-style sigmas, and so on. Three
views of the same numbers:

- alpha_bar_t, the signal's share of the variance;
- SNR_t = alpha_bar_t / (1 - alpha_bar_t), on a log scale (Kingma et al. 2021);
- sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t), the noise level of the k-diffusion ("sigma") form
  x = x_0 + sigma eps that Euler-type samplers use (Karras et al. 2022).

Flow-matching schedulers (x_t = (1 - s) x_0 + s eps) have alpha_bar = (1 - s)^2 / ((1 - s)^2 + s^2) on this scale.

>>> from imagegen_nb.teach import schedules
>>> fig = schedules.figure(("ddim", "euler"), num_inference_steps=10, step=3, strength=0.6)
>>> len(fig.axes)
3
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._common import new_figure, pipe_and_family

__all__ = ["Visited", "DEFAULT_SCHEDULERS", "figure", "visited"]

DEFAULT_SCHEDULERS = ("ddim", "euler", "dpm++", "unipc")


@dataclass
class Visited:
    """The noise levels one scheduler visits in a run of N steps (numpy arrays, one entry per step)."""

    name: str
    timesteps: Any
    alpha_bar: Any  # alpha_bar at each visited step (the VP-equivalent for sigma and flow schedulers)
    sigma: Any  # sqrt((1 - alpha_bar) / alpha_bar); infinite where alpha_bar is exactly 0 (pure noise)


def _scheduler(name: str, config):
    from .. import schedulers

    return schedulers.build(name, config)  # an unknown name is its error


def visited(name: str, num_inference_steps: int = 20, model=None) -> Visited:
    """Set up scheduler `name` (as `ig.generate(scheduler=name)` would) for N steps and read its noise levels.

    >>> from imagegen_nb.teach import schedules
    >>> v = schedules.visited("ddim", 4)
    >>> len(v.timesteps), bool(v.alpha_bar[0] < v.alpha_bar[-1])
    (4, True)
    """
    import numpy as np

    from ..steps import schedule_kind

    if not isinstance(num_inference_steps, int) or num_inference_steps < 1:
        raise ValueError(f"num_inference_steps must be an integer of at least 1, not {num_inference_steps!r}")
    pipe, _ = pipe_and_family(model)
    sched = _scheduler(name, pipe.scheduler.config)
    sched.set_timesteps(num_inference_steps, device="cpu")
    kind = schedule_kind(sched)
    timesteps = sched.timesteps.float().numpy()
    if kind == "vp":
        ab = sched.alphas_cumprod.double().numpy()[np.round(timesteps).astype(int)]
    elif kind == "sigma":
        # sigmas has one entry per model call plus a final 0; x = x_0 + sigma eps  <=>  alpha_bar = 1 / (1 + sigma^2)
        sig = sched.sigmas.double().numpy()[: len(timesteps)]
        ab = 1.0 / (1.0 + sig**2)
    else:
        s = timesteps.astype(np.float64) / sched.config.num_train_timesteps
        ab = (1 - s) ** 2 / ((1 - s) ** 2 + s**2)
    ab = np.clip(ab, 0.0, 1.0)
    with np.errstate(divide="ignore"):
        sigma = np.sqrt((1 - ab) / ab)
    return Visited(name, timesteps, ab, sigma)


def figure(schedulers=DEFAULT_SCHEDULERS, num_inference_steps: int = 20, *, model=None, step: int | None = None,
           strength: float | None = None):
    """alpha_bar and log-SNR over the training timesteps (the model's own schedule, `scheduler.alphas_cumprod`),
    with the timesteps each scheduler visits marked, and sigma per sampling step.

    `step` marks a step of the run (e.g. the one a trace player shows). `strength` marks where `ig.edit` starts:
    it skips the first N - int(N * strength) steps, so the picture is noised only to that step's level.

    >>> from imagegen_nb.teach import schedules
    >>> fig = schedules.figure(num_inference_steps=8)
    >>> fig.axes[0].get_xlabel()
    'training timestep t'
    """
    import numpy as np

    if isinstance(schedulers, str):
        schedulers = (schedulers,)
    pipe, family = pipe_and_family(model)
    base = pipe.scheduler
    if not hasattr(base, "alphas_cumprod"):
        raise ValueError(f"{family.name} models use a flow-matching schedule without alpha_bar; this lesson "
                         "plots VP schedules (the built-in model, SD 1.5, SDXL)")
    runs = [visited(name, num_inference_steps, model) for name in schedulers]
    ab_train = base.alphas_cumprod.double().numpy()
    t_train = np.arange(len(ab_train))
    fig, axes = new_figure(1, 3, cell=3.2,
                           title=f"noise schedule of {family.name} and what {num_inference_steps}-step samplers visit")
    ax_ab, ax_snr, ax_sigma = axes[0]
    ax_ab.plot(t_train, ab_train, color="black", lw=1.5, label="alpha_bar (training)")
    stand_in = ""
    if base.config.get("rescale_betas_zero_snr") and 0 < ab_train[-1] < 1e-6:
        # zero terminal SNR: alpha_bar_999 is 0; Euler-type and multistep schedulers keep 2**-24 in its place
        stand_in = f" (t={len(ab_train) - 1}: {ab_train[-1]:.2g} stands in for 0)"
    ax_snr.plot(t_train, np.log10(ab_train / (1 - ab_train)), color="black", lw=1.5, label="training" + stand_in)
    pure_noise = []  # visited steps at alpha_bar = 0 exactly: log SNR is -inf and sigma infinite, not drawable
    markers = "osD^v<>p*h"
    for k, v in enumerate(runs):
        m = markers[k % len(markers)]
        ax_ab.plot(v.timesteps, v.alpha_bar, m, ms=4, alpha=0.8, label=v.name)
        finite = v.alpha_bar > 0
        ax_snr.plot(v.timesteps[finite], np.log10(v.alpha_bar[finite] / (1 - v.alpha_bar[finite])), m, ms=4,
                    alpha=0.8, label=v.name)
        ax_sigma.semilogy(np.arange(len(v.sigma))[finite], v.sigma[finite], m + "-", ms=4, lw=1, label=v.name)
        pure_noise += [f"{v.name} step {k} (t={v.timesteps[k]:.0f})" for k in np.flatnonzero(~finite)]
    if pure_noise:
        ax_sigma.text(0.02, 0.02, "alpha_bar = 0 exactly, sigma = inf (not drawn):\n" + ", ".join(pure_noise),
                      transform=ax_sigma.transAxes, fontsize=6, va="bottom")
    ax_ab.set_xlabel("training timestep t")
    ax_ab.set_ylabel("alpha_bar_t (signal share)", fontsize=8)
    ax_snr.set_xlabel("training timestep t")
    ax_snr.set_ylabel("log10 SNR,  SNR = alpha_bar / (1 - alpha_bar)", fontsize=8)
    ax_sigma.set_xlabel("sampling step")
    ax_sigma.set_ylabel("sigma = sqrt((1 - alpha_bar) / alpha_bar)", fontsize=8)
    if step is not None:
        if not 0 <= step < num_inference_steps:
            raise ValueError(f"step must be in [0, {num_inference_steps - 1}], not {step!r}")
        ax_sigma.axvline(step, color="crimson", lw=1.5, label=f"step {step}")
        if step < len(runs[0].timesteps):
            ax_ab.axvline(runs[0].timesteps[step], color="crimson", lw=1.5, ls=":")
    if strength is not None:
        if not 0 < strength <= 1:
            raise ValueError(f"strength must be in (0, 1], not {strength!r}")
        start = num_inference_steps - min(int(num_inference_steps * strength), num_inference_steps)
        ax_sigma.axvline(start, color="teal", lw=1.5, ls="--", label=f"edit starts (strength {strength})")
        if start < len(runs[0].timesteps):
            ax_ab.axvline(runs[0].timesteps[start], color="teal", lw=1.5, ls="--")
    for ax in (ax_ab, ax_snr, ax_sigma):
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    return fig
