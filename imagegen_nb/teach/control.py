"""Lesson: ControlNet. A copy of the UNet's encoder reads a control map (edges, depth, pose) and adds its features
to the UNet's skip connections, each scaled by `controlnet_conditioning_scale` (Zhang et al. 2023): 0 ignores the
map, 1 is what it was trained for, more forces it harder.

>>> from PIL import Image, ImageDraw
>>> from imagegen_nb.teach import control
>>> sketch = Image.new("RGB", (64, 64), "black"); ImageDraw.Draw(sketch).ellipse([16, 16, 48, 48], fill="white")
>>> fig = control.sweep(sketch, "a red circle", scales=(0.0, 1.0), num_inference_steps=2)
>>> len(fig.axes)
4
"""

from __future__ import annotations

from ._common import default_picture, new_figure, show_image, to_rgb

__all__ = ["sweep"]


def sweep(control_image=None, prompt: str = "a red circle", scales=(0.0, 0.5, 1.0, 1.5), *, kind: str = "canny",
          seed: int = 0, **kwargs):
    """The source picture (default: a shapes-world picture), its control map (`ig.preprocess(image, kind)`), and
    `ig.control` at each conditioning scale with the same seed. Other keyword arguments go to `ig.control`.

    >>> from imagegen_nb.teach import control
    >>> fig = control.sweep(None, "a blue square", scales=(0.5,), num_inference_steps=2)
    >>> [ax.get_title() for ax in fig.axes]
    ['picture', 'canny map', 'scale 0.5']
    """
    from ..preprocessors import preprocess
    from ..tasks import control

    scales = [float(s) for s in scales]
    if not scales:
        raise ValueError("scales must name at least one controlnet_conditioning_scale")
    picture = to_rgb(control_image) if control_image is not None else default_picture()
    cmap = preprocess(picture, kind) if kind != "none" else picture
    fig, axes = new_figure(1, 2 + len(scales), cell=2.0, title=f"{prompt!r}, seed {seed}: "
                                                               "controlnet_conditioning_scale")
    show_image(axes[0, 0], picture, "picture")
    show_image(axes[0, 1], cmap, f"{kind} map")
    for ax, scale in zip(axes[0, 2:], scales):
        image = control(cmap, prompt, kind=kind, preprocess=False, controlnet_conditioning_scale=scale, seed=seed,
                        progress=False, **kwargs)
        show_image(ax, image, f"scale {scale:g}")
    return fig
