"""The built-in teaching model: a tiny text-to-image latent diffusion model of a world of flat shapes.

Its weights ship inside the package as a standard diffusers `StableDiffusionPipeline` folder, with a canny
ControlNet beside it. `world` makes the pictures and captions, `checker` reads pictures back, `train` and
`evaluate` are the scripts that made and measured the shipped weights.

>>> from imagegen_nb import tiny
>>> (tiny.model_path() / "model_index.json").exists()
True
"""

from __future__ import annotations

from pathlib import Path

WEIGHTS = Path(__file__).parent / "weights"


def model_path(name: str = "sd") -> Path:
    """The folder of a built-in model: "sd", the U-Net model (`StableDiffusionPipeline.from_pretrained(path)`), or
    "dit", the flow-matching transformer (`ZImagePipeline.from_pretrained(path)`)."""
    if name not in ("sd", "dit"):
        raise ValueError(f"name must be 'sd' or 'dit', not {name!r}")
    return WEIGHTS / name


def controlnet_path(kind: str = "canny") -> Path:
    """The folder of the built-in model's ControlNet for `kind`: "canny" or "segmentation" ship."""
    return WEIGHTS / f"controlnet-{kind}"


def ip_adapter_path() -> Path:
    """The built-in U-Net model's IP-Adapter weights file (`style=`), with its image encoder in the
    `image_encoder` folder beside it (trained by `imagegen_nb.tiny.style_adapter`)."""
    return WEIGHTS / "ip-adapter" / "ip-adapter.safetensors"
