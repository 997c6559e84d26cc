"""Lesson: inpainting with a plain text-to-image model. The mask is shrunk to latent resolution, and at every step
the latent outside it is replaced by the original picture's latent noised to the current level,

    x_t <- m * x_t + (1 - m) * (sqrt(alpha_bar_t) * x0_orig + sqrt(1 - alpha_bar_t) * eps),

so only the masked latent pixels are free (the "replacement" method; Lugmayr et al. 2022 refine it; flow-matching
models, SD3, FLUX and Z-Image, noise the original as (1 - sigma) x0_orig + sigma eps instead). One latent
pixel covers f x f pixels (f = 8 for SD, 4 for the built-in model), so the repainted region is the mask rounded to
that grid; `ig.inpaint` then pastes the original back outside the mask in pixel space.

>>> import numpy as np
>>> from imagegen_nb.teach import inpaint
>>> mask = np.zeros((64, 64), bool); mask[20:44, 30:60] = True
>>> fig = inpaint.explain(None, mask, "a blue square", num_inference_steps=2)
>>> len(fig.axes)
4
"""

from __future__ import annotations

from ._common import default_picture, new_figure, pipe_and_family, show_image, to_rgb

__all__ = ["explain", "latent_mask"]


def latent_mask(mask, size: tuple[int, int], *, model=None):
    """The mask as the inpainting pipeline uses it: binarized at 0.5 by the pipeline's `mask_processor`, then
    resized (nearest) to latent resolution. Returns a float tensor (1, 1, H/f, W/f) of 0s and 1s.

    >>> import numpy as np
    >>> from imagegen_nb.teach import inpaint
    >>> m = np.zeros((64, 64), bool); m[:, 32:] = True
    >>> inpaint.latent_mask(m, (64, 64))[0, 0, 0].tolist()
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    """
    import torch

    from .. import inputs

    pipe, _ = pipe_and_family(model, "inpaint")
    width, height = size
    m = inputs.to_mask(mask, (width, height), resize=True)
    pixels = pipe.mask_processor.preprocess(m, height=height, width=width)
    f = pipe.vae_scale_factor
    return torch.nn.functional.interpolate(pixels.float(), size=(height // f, width // f))


def explain(image, mask, prompt: str, *, seed: int = 0, model=None, **kwargs):
    """The picture (default: a shapes-world picture), the mask, the mask as the latent sees it (over the picture's
    latent grid), and the result of `ig.inpaint(image, mask, prompt, ...)`.

    >>> import numpy as np
    >>> from imagegen_nb.teach import inpaint
    >>> m = np.zeros((64, 64), bool); m[8:24, 8:24] = True
    >>> inpaint.explain(None, m, "a red circle", num_inference_steps=2).axes[2].get_title()
    'mask in latent space (16x16)'
    """
    import numpy as np

    from .. import inputs
    from ..tasks import inpaint as run_inpaint

    picture = to_rgb(image) if image is not None else default_picture()
    m = inputs.to_mask(mask, picture.size)
    lm = latent_mask(m, picture.size, model=model)[0, 0].numpy()
    result = run_inpaint(picture, m, prompt, seed=seed, model=model, progress=False, **kwargs)
    fig, axes = new_figure(1, 4, cell=2.2, title=f"inpainting {prompt!r}")
    row = axes[0]
    show_image(row[0], picture, "picture")
    show_image(row[1], m, "mask (white = repaint)", cmap="gray", vmin=0, vmax=255)
    w, h = picture.size
    show_image(row[2], np.asarray(picture.convert("L")), f"mask in latent space ({lm.shape[1]}x{lm.shape[0]})",
               cmap="gray", vmin=0, vmax=255)
    row[2].imshow(np.ma.masked_equal(lm, 0), cmap="autumn", alpha=0.6, extent=(0, w, h, 0), interpolation="nearest")
    # the latent grid: each cell is one latent pixel, f x f picture pixels
    for k in range(1, lm.shape[1]):
        row[2].axvline(k * w / lm.shape[1], color="white", lw=0.3, alpha=0.6)
    for k in range(1, lm.shape[0]):
        row[2].axhline(k * h / lm.shape[0], color="white", lw=0.3, alpha=0.6)
    show_image(row[3], result, "ig.inpaint result")
    return fig
