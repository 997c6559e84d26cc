"""What the lessons share: the cached pipeline, figures made without pyplot, pictures on axes, VAE encoding."""

from __future__ import annotations

from PIL import Image


def pipe_and_family(model=None, task: str = "generate"):
    """The shared cache's pipeline for `model` (None: the built-in one) and its registry family."""
    from .. import cache

    entry, pipe = cache.shared.pipeline(model, task)
    return pipe, entry.family


def new_figure(nrows: int, ncols: int, *, cell: float = 1.8, title: str | None = None, **subplots_kw):
    """A Figure (object API, no pyplot: safe under Agg and never shown by itself) and its grid of axes."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(3.0, ncols * cell), max(2.0, nrows * cell + (0.4 if title else 0))),
                 layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **subplots_kw)
    if title:
        fig.suptitle(title)
    return fig, axes


def show_image(ax, image, title: str | None = None, **kw) -> None:
    """A picture on an axis with crisp pixels and no ticks."""
    import numpy as np

    ax.imshow(np.asarray(image), interpolation="nearest", **kw)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        ax.set_title(title, fontsize=8)


def default_picture(seed: int = 3) -> Image.Image:
    """A picture of the shapes world, for lessons that need one when none is given."""
    from ..tiny import world

    return world.render(world.sample_scene(seed=seed, category="two_object"))


def to_rgb(image) -> Image.Image:
    from .. import inputs

    return inputs.to_image(image)


def encode(pipe, image: Image.Image):
    """The clean latent x0 of a picture as the diffusion model sees it, shifted and scaled
    (`(z - shift_factor) * scaling_factor`). Float32, (1, C, H/f, W/f) on the CPU.

    z is the posterior mean of a KL autoencoder (SD, SDXL, SD3, FLUX, Z-Image, PixArt); a deep-compression
    autoencoder (Sana's DC-AE) is deterministic and gives its latent directly."""
    import torch

    from .. import latents

    pixels = pipe.image_processor.preprocess(image)  # [-1, 1], (1, 3, H, W)
    with torch.inference_mode():
        return latents.encode(pipe.vae, pixels).float().cpu()


def decode(pipe, latent) -> Image.Image:
    from ..previews import vae_decode

    return vae_decode(latent, pipe)


def pixel_tensor(image: Image.Image):
    """A picture as a float tensor in [-1, 1], (1, 3, H, W): the pixel space the VAE is trained on."""
    import numpy as np
    import torch

    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1)[None]


def pixel_image(x) -> Image.Image:
    """The inverse of `pixel_tensor` (clipped to [-1, 1])."""
    import numpy as np

    array = ((x[0].float().clamp(-1, 1) + 1) * 127.5).round().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(array.astype(np.uint8))


def channel_range(z) -> tuple[float, float]:
    """A symmetric colour range for showing latent channels side by side."""
    v = float(z.abs().max()) or 1.0
    return -v, v

