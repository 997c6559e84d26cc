"""Lesson: the seed. A picture is fully determined by its recipe; the seed picks the starting noise x_T, a tensor of
independent N(0, 1) numbers of the latent's shape. Different seeds give different pictures of the same prompt,
and moving smoothly between two noises moves smoothly between their pictures.

Interpolate noise spherically (slerp, Shoemake 1985): a straight-line mix (1 - t) a + t b of two independent
Gaussian vectors has norm shrunk by up to sqrt(2) at t = 0.5, a noise level the model never saw; slerp keeps it.

>>> from imagegen_nb.teach import seeds
>>> fig = seeds.grid("a red circle", seeds=range(4), num_inference_steps=2)
>>> len(fig.axes)
4
"""

from __future__ import annotations

from ._common import new_figure, pipe_and_family, show_image

__all__ = ["interpolation", "grid", "noise", "slerp"]


def noise(seed: int, *, model=None, width: int | None = None, height: int | None = None):
    """The starting noise `ig.generate(..., seed=seed)` draws: `torch.randn` of the latent's shape from a CPU
    generator seeded with `seed` (as diffusers' `randn_tensor` does), in the dtype the pipeline draws in (its own;
    float32 for Z-Image). The shape is (1, C, H/f, W/f); FLUX's pipeline packs each 2x2 patch of it into one token,
    (1, H/2f x W/2f, 4C), and so does this. Samplers that start at a noise level above 1 (Euler's sigma_max)
    scale it by `scheduler.init_noise_sigma` themselves, also when it is passed as `latents=`.

    >>> import imagegen_nb as ig
    >>> from imagegen_nb.teach import seeds
    >>> a = ig.generate("a red circle", seed=5, num_inference_steps=2)
    >>> b = ig.generate("a red circle", seed=5, num_inference_steps=2, latents=seeds.noise(5))
    >>> a.tobytes() == b.tobytes()
    True
    """
    import torch

    pipe, family = pipe_and_family(model)
    denoiser = getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)
    if denoiser is None:
        raise ValueError(f"{family.name} models have no denoiser whose noise this lesson knows")
    width = width or family.default_size
    height = height or family.default_size
    f = pipe.vae_scale_factor
    kind = type(pipe).__name__
    channels = denoiser.config.in_channels
    generator = torch.Generator("cpu").manual_seed(int(seed))
    if kind.startswith(("Flux", "ZImage")):  # latent sides rounded to whole 2x2 patches
        h, w = 2 * (height // (2 * f)), 2 * (width // (2 * f))
    else:
        h, w = height // f, width // f
    if kind.startswith("Flux"):
        channels //= 4  # the transformer reads packed 2x2 patches
        x = torch.randn((1, channels, h, w), generator=generator, dtype=pipe.dtype)
        return pipe._pack_latents(x, 1, channels, h, w)
    dtype = torch.float32 if kind.startswith("ZImage") else pipe.dtype
    return torch.randn((1, channels, h, w), generator=generator, dtype=dtype)


def slerp(a, b, t: float):
    """Spherical interpolation: sin((1 - t) theta) / sin(theta) * a + sin(t theta) / sin(theta) * b, with theta the
    angle between a and b (flattened); a straight line where they are (nearly) parallel.

    >>> import torch
    >>> from imagegen_nb.teach import seeds
    >>> a, b = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8)
    >>> bool(torch.allclose(seeds.slerp(a, b, 0.0), a, atol=1e-5))
    True
    """
    import torch

    fa, fb = a.double().flatten(), b.double().flatten()
    cos = torch.dot(fa, fb) / (fa.norm() * fb.norm())
    theta = torch.arccos(cos.clamp(-1.0, 1.0))
    if float(theta.sin().abs()) < 1e-6:
        out = (1 - t) * fa + t * fb
    else:
        out = (torch.sin((1 - t) * theta) * fa + torch.sin(t * theta) * fb) / torch.sin(theta)
    return out.reshape(a.shape).to(a.dtype)


def grid(prompt: str, seeds=range(8), *, cols: int | None = None, **kwargs):
    """The same prompt with several seeds (other keyword arguments go to `ig.generate`).

    >>> from imagegen_nb.teach import seeds
    >>> fig = seeds.grid("a blue square", seeds=[3, 4], num_inference_steps=2)
    >>> [ax.get_title() for ax in fig.axes]
    ['seed 3', 'seed 4']
    """
    import math

    from ..tasks import generate

    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds must name at least one seed")
    cols = cols or min(len(seeds), 8)
    rows = math.ceil(len(seeds) / cols)
    fig, axes = new_figure(rows, cols, title=repr(prompt))
    for ax in axes.flat[len(seeds):]:
        ax.remove()
    for ax, s in zip(axes.flat, seeds):
        show_image(ax, generate(prompt, seed=s, progress=False, **kwargs), f"seed {s}")
    return fig


def interpolation(prompt: str, seed_a: int = 0, seed_b: int = 1, n: int = 5, *, model=None, **kwargs):
    """`n` pictures from the slerp of seed_a's noise to seed_b's (t = 0 ... 1), passed to `ig.generate` as
    `latents=`; the ends are exactly the pictures of the two seeds. Each title gives t and the noise's norm.

    >>> from imagegen_nb.teach import seeds
    >>> fig = seeds.interpolation("a red circle", 0, 1, n=3, num_inference_steps=2)
    >>> fig.axes[0].get_title().splitlines()[0]
    't = 0'
    """
    from ..tasks import generate

    if not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an integer of at least 2 (the two ends), not {n!r}")
    size = {k: kwargs[k] for k in ("width", "height") if k in kwargs}
    a, b = noise(seed_a, model=model, **size), noise(seed_b, model=model, **size)
    fig, axes = new_figure(1, n, title=f"{prompt!r}: slerp from seed {seed_a} to seed {seed_b}")
    for k, ax in enumerate(axes[0]):
        t = k / (n - 1)
        x_T = slerp(a, b, t)
        # the sampler's own noise (ancestral samplers) keeps seed_a, so only the start changes
        image = generate(prompt, seed=seed_a, model=model, latents=x_T, progress=False, **kwargs)
        show_image(ax, image, f"t = {t:.2g}\n|x_T| = {float(x_T.float().norm()):.1f}")
    return fig
