"""Pictures to latents and back, as a latent diffusion model sees them: the one place that knows the VAE's
conventions, for the runtime, the training of the built-in models and the lessons alike.

A KL autoencoder (SD, SDXL, SD3, FLUX, Z-Image, PixArt, the built-in models) encodes pixels in [-1, 1] to a Gaussian
posterior; the diffusion model's clean latent is its mean, shifted and scaled to about unit variance:

    x0 = (z - shift_factor) * scaling_factor,        z = x0 / scaling_factor + shift_factor  (to decode)

A deep-compression autoencoder (Sana's DC-AE) is deterministic and gives z directly.

>>> import numpy as np, torch
>>> from diffusers import AutoencoderKL
>>> from imagegen_nb import latents
>>> vae = AutoencoderKL(block_out_channels=(8,), norm_num_groups=4, latent_channels=4)
>>> pixels = latents.pixels(np.zeros((2, 16, 16, 3), np.uint8))
>>> pixels.shape, float(pixels.min())                    # black is -1
(torch.Size([2, 3, 16, 16]), -1.0)
>>> x0 = latents.encode(vae, pixels)
>>> x0.shape, latents.decode(vae, x0).shape
(torch.Size([2, 4, 16, 16]), torch.Size([2, 3, 16, 16]))
"""

from __future__ import annotations

__all__ = ["decode", "encode", "pixels"]


def pixels(images):
    """Pictures as the float tensor a VAE reads, (n, 3, H, W) in [-1, 1]: from a uint8 array (n, H, W, 3) or
    (H, W, 3), or a list of PIL images of one size."""
    import numpy as np
    import torch

    array = np.asarray(images) if isinstance(images, np.ndarray) else np.stack([np.asarray(im) for im in images])
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4 or array.shape[-1] != 3:
        raise ValueError(f"pictures must be RGB, (n, H, W, 3) or (H, W, 3); got shape {array.shape}")
    return torch.from_numpy(np.ascontiguousarray(array)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def encode(vae, x):
    """The clean latents x0 = (z - shift_factor) * scaling_factor of pixels `x` in [-1, 1] (n, 3, H, W), z the
    posterior mean (a DC-AE's latent). Runs on the VAE's device and dtype, in the caller's grad mode; returns the
    VAE's dtype on its device."""
    param = next(vae.parameters())
    encoded = vae.encode(x.to(param.device, param.dtype))
    dist = getattr(encoded, "latent_dist", None)
    z = dist.mean if dist is not None else encoded.latent
    return (z - (vae.config.get("shift_factor") or 0.0)) * vae.config.scaling_factor


def decode(vae, x0):
    """Pixels in about [-1, 1] (n, 3, H, W) of clean latents x0: `vae.decode(x0 / scaling_factor + shift_factor)`.
    In the caller's grad mode, on the VAE's device and dtype."""
    param = next(vae.parameters())
    z = x0.to(param.device, param.dtype) / vae.config.scaling_factor + (vae.config.get("shift_factor") or 0.0)
    return vae.decode(z).sample
