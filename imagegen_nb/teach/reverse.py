"""Lesson: the reverse process, read off a trace. At every step the model looks at x_t and makes a prediction from
which both the clean picture x0 and the noise eps follow, by the forward process
x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps. What it predicts depends on how it was trained:

- the noise eps (SD 1.5, SDXL): x0_pred = (x_t - sqrt(1 - alpha_bar_t) * eps_pred) / sqrt(alpha_bar_t);
- v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x0 (Salimans & Ho 2022; the built-in model, whose
  zero-terminal-SNR schedule makes alpha_bar = 0 at the first step, where eps would say nothing about x0):
  x0_pred = sqrt(alpha_bar_t) x_t - sqrt(1 - alpha_bar_t) v_pred, eps_pred = sqrt(alpha_bar_t) v_pred +
  sqrt(1 - alpha_bar_t) x_t;
- the velocity eps - x0 of flow matching (SD3, FLUX, Z-Image), on x_t = (1 - sigma) x0 + sigma eps.

A trace keeps the model's output (`trace.model_output`) and both things it implies (`trace.x0`, `trace.noise`),
and the sampler moves x_t a little towards x0_pred (DDIM: Song et al. 2021, eq. 12). Early guesses are blurry
averages of everything the prompt could mean; they sharpen as the noise level falls.

>>> import imagegen_nb as ig
>>> from imagegen_nb.teach import reverse
>>> tr = ig.trace("a red circle", seed=0, num_inference_steps=6)
>>> fig = reverse.grid(tr, n=3)
>>> len(fig.axes)
9
"""

from __future__ import annotations

from pathlib import Path

from ._common import new_figure, show_image

__all__ = ["HTMLAnimation", "animation", "gif", "grid", "html", "pick_steps"]

ROWS = (("latent", "x_t"), ("x0", "x0 predicted"), ("noise", "noise eps implied"))


def pick_steps(trace, n: int) -> list[int]:
    """`n` step indices spread evenly over the trace, first and last included."""
    import numpy as np

    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, not {n!r}")
    if len(trace) == 0:
        raise ValueError("the trace has no steps")
    return sorted({int(i) for i in np.linspace(0, len(trace) - 1, min(n, len(trace))).round()})


def _noise_level(trace, i: int) -> str:
    (name, value), = trace.noise_level(i).items()
    return f"{name}={value:.3g}"


def grid(trace, n: int = 6, *, fast: bool = False):
    """Rows x_t, x0 and the noise eps the model's output implies, at `n` steps of the trace (columns). `fast=True`
    uses the linear latent preview instead of the VAE (a must for big models on a CPU).

    >>> import imagegen_nb as ig
    >>> from imagegen_nb.teach import reverse
    >>> fig = reverse.grid(ig.trace("two blue squares", seed=2, num_inference_steps=4), n=4, fast=True)
    >>> [ax.get_title().split(",")[0] for ax in fig.axes[:2]]
    ['step 0', 'step 1']
    """
    steps = pick_steps(trace, n)
    predicts = {"epsilon": "predicts eps", "v_prediction": "predicts v", "flow": "predicts the velocity eps - x0",
                "sample": "predicts x0"}.get(trace.prediction_type, trace.prediction_type)
    fig, axes = new_figure(3, len(steps), title=f"reverse process ({trace.family}, {len(trace)} steps; the model "
                                                f"{predicts})")
    for j, i in enumerate(steps):
        for row, (what, _) in enumerate(ROWS):
            title = f"step {i}, t={float(trace.timesteps[i]):.0f}\n{_noise_level(trace, i)}" if row == 0 else None
            show_image(axes[row, j], trace.decode(i, what, fast=fast), title)
    for row, (_, label) in enumerate(ROWS):
        axes[row, 0].set_ylabel(label, fontsize=8)
    return fig


def animation(trace, *, fast: bool = True, interval: int = 200):
    """A matplotlib `FuncAnimation`: x_t and x0 side by side, one frame per step. Save it with `gif`, show it
    inline with `html`, or call its own `.save(...)` / `.to_jshtml()`.

    >>> import imagegen_nb as ig
    >>> from imagegen_nb.teach import reverse
    >>> anim = reverse.animation(ig.trace("a red circle", seed=0, num_inference_steps=3))
    >>> "<script" in anim.to_jshtml()
    True
    """
    import numpy as np
    from matplotlib.animation import FuncAnimation

    if len(trace) == 0:
        raise ValueError("the trace has no steps")
    frames = [(np.asarray(trace.decode(i, "latent", fast=fast)), np.asarray(trace.decode(i, "x0", fast=fast)))
              for i in range(len(trace))]
    fig, axes = new_figure(1, 2, cell=2.6)
    images = []
    for ax, picture, label in zip(axes[0], frames[0], ("x_t", "x0 predicted")):
        show_image(ax, picture, label)
        images.append(ax.images[0])
    caption = fig.suptitle("")

    def update(i):
        for image, picture in zip(images, frames[i]):
            image.set_data(picture)
        caption.set_text(f"step {i + 1}/{len(trace)}, t={float(trace.timesteps[i]):.0f}, {_noise_level(trace, i)}")
        return [*images, caption]

    update(0)
    return FuncAnimation(fig, update, frames=len(frames), interval=interval, blit=False, repeat=True)


def gif(trace, path, *, fast: bool = True, fps: int = 5) -> Path:
    """Write the animation as a GIF (matplotlib's PillowWriter: no ffmpeg needed) and return its path.

    >>> import imagegen_nb as ig, tempfile, os
    >>> from imagegen_nb.teach import reverse
    >>> tr = ig.trace("a red circle", seed=0, num_inference_steps=3)
    >>> reverse.gif(tr, os.path.join(tempfile.mkdtemp(), "steps.gif")).stat().st_size > 0
    True
    """
    from matplotlib.animation import PillowWriter

    path = Path(path)
    if path.suffix.lower() != ".gif":
        raise ValueError(f"path must end in .gif, not {path.suffix!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    anim = animation(trace, fast=fast, interval=int(1000 / fps))
    anim.save(path, writer=PillowWriter(fps=fps))
    return path


class HTMLAnimation(str):
    """The HTML of a JavaScript animation player (matplotlib's `to_jshtml`); a notebook shows it as a player."""

    def _repr_html_(self) -> str:
        return str(self)


def html(trace, *, fast: bool = True, interval: int = 200) -> HTMLAnimation:
    """The animation as inline HTML with play/step controls, self-contained (frames embedded as PNG).

    >>> import imagegen_nb as ig
    >>> from imagegen_nb.teach import reverse
    >>> "<script" in reverse.html(ig.trace("a red circle", seed=0, num_inference_steps=3))
    True
    """
    anim = animation(trace, fast=fast, interval=interval)
    return HTMLAnimation(anim.to_jshtml(default_mode="once"))
