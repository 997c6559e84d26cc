"""Lesson: the latent space. The VAE encoder squeezes a picture (H x W x 3 numbers) into a latent of
(H/f) x (W/f) x C numbers (f = 8, C = 4 for Stable Diffusion 1.5 and SDXL; f = 8, C = 16 for SD3, FLUX and
Z-Image; f = 32, C = 32 for Sana's deep-compression autoencoder, DC-AE; f = 4, C = 4 for the built-in model), and
the decoder brings it back. Diffusion runs on the latent, which is why it is affordable (Rombach et al. 2022).
A KL autoencoder's latent is the mean of the encoder's posterior; DC-AE's encoder is deterministic.

>>> from imagegen_nb.teach import latent
>>> latent.roundtrip().compression
12.0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._common import channel_range, decode, default_picture, encode, new_figure, pipe_and_family, show_image, to_rgb

__all__ = ["Roundtrip", "explain", "roundtrip"]


@dataclass
class Roundtrip:
    """A picture, its latent and its reconstruction."""

    image: Any  # PIL, the input
    latent: Any  # (1, C, h, w) float32, in the diffusion model's scale
    decoded: Any  # PIL, decoder(encoder(image))
    compression: float  # numbers in the picture / numbers in the latent
    error: float  # mean absolute pixel difference of the round trip, in 0..255


def roundtrip(image=None, model=None) -> Roundtrip:
    """Encode `image` (default: a shapes-world picture) to its latent and decode it again.

    >>> from imagegen_nb.teach import latent
    >>> tuple(latent.roundtrip().latent.shape)
    (1, 4, 16, 16)
    """
    import numpy as np

    pipe, _ = pipe_and_family(model)
    picture = to_rgb(image) if image is not None else default_picture()
    z = encode(pipe, picture)
    back = decode(pipe, z)
    if back.size != picture.size:
        picture = picture.resize(back.size)
    error = float(np.abs(np.asarray(back, np.float32) - np.asarray(picture, np.float32)).mean())
    numbers = picture.width * picture.height * 3
    return Roundtrip(picture, z, back, numbers / z[0].numel(), error)


def explain(image=None, model=None):
    """One row: the picture, each latent channel (same colour scale, blue negative, red positive), the decoded
    round trip and the per-pixel error. Up to 4 channels are shown (SD3 and FLUX latents have 16).

    >>> from imagegen_nb.teach import latent
    >>> fig = latent.explain()
    >>> fig.axes[1].get_title()
    'channel 0'
    """
    import numpy as np

    r = roundtrip(image, model)
    z = r.latent[0]
    shown = min(4, z.shape[0])
    c, h, w = z.shape
    title = (f"{r.image.width}x{r.image.height}x3 = {r.image.width * r.image.height * 3} numbers -> "
             f"{h}x{w}x{c} = {z.numel()} numbers: {r.compression:g}x smaller")
    fig, axes = new_figure(1, shown + 3, cell=1.8, title=title)
    row = axes[0]
    show_image(row[0], r.image, "picture")
    lo, hi = channel_range(z[:shown])
    for k in range(shown):
        show_image(row[1 + k], z[k].numpy(), f"channel {k}", cmap="RdBu_r", vmin=lo, vmax=hi)
    show_image(row[shown + 1], r.decoded, "decoded")
    err = np.abs(np.asarray(r.decoded, np.float32) - np.asarray(r.image, np.float32)).mean(-1)
    show_image(row[shown + 2], err, f"|error| (mean {r.error:.1f})", cmap="gray_r", vmin=0, vmax=255)
    return fig
