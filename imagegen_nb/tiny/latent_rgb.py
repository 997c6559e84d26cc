"""The built-in models' latent -> RGB preview map, fitted on the shapes world and shipped beside the VAE weights.

Live previews show `rgb = latent @ W + b` instead of decoding every step (see `imagegen_nb.previews`). The published
tables fit SD's and FLUX's VAEs; the built-in VAE is the project's own, so its map is fitted here, at export, by
least squares, and written to `vae/latent_rgb.json` where the runtime finds it without knowing the shapes world.

    python -m imagegen_nb.tiny.latent_rgb imagegen_nb/tiny/weights/sd/vae

>>> from imagegen_nb import tiny
>>> import json
>>> sorted(json.loads((tiny.model_path() / "vae" / "latent_rgb.json").read_text()))
['bias', 'fitted_on', 'weights']
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .. import latents
from . import world

FIT_PICTURES = 32  # shapes-world pictures encoded for the fit (8192 latent pixels at 16x16)
FILE = "latent_rgb.json"  # in a VAE folder; `imagegen_nb.previews` reads it


def fit(vae, n: int = FIT_PICTURES, seed: int = 0):
    """Least-squares W (C x 3) and b (3) with pixels ~ latent @ W + b, fitted on `n` shapes-world pictures.

    Each picture is encoded (posterior mean, times `scaling_factor` after `shift_factor`, as the diffusion model
    sees latents) and averaged down to latent resolution, so every latent pixel is paired with the mean colour (in
    [-1, 1]) of the patch it summarises. Solved as one `torch.linalg.lstsq` on [latent, 1] -> rgb.
    """
    import torch

    pictures, _, _ = world.batch(n, seed=seed, training=True, flip=False)
    px = latents.pixels(pictures)  # (n, 3, 64, 64) in [-1, 1]
    with torch.inference_mode():
        z = latents.encode(vae, px).float().cpu()  # x0 as the diffusion model sees it, (n, C, h, w)
    rgb = torch.nn.functional.adaptive_avg_pool2d(px, z.shape[-2:])  # patch means, (n, 3, h, w)
    X = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
    Y = rgb.permute(0, 2, 3, 1).reshape(-1, 3)
    X1 = torch.cat([X, torch.ones(len(X), 1)], dim=1)
    solution = torch.linalg.lstsq(X1.double(), Y.double()).solution.float()
    return solution[:-1].contiguous(), solution[-1].contiguous()


def write(vae_folder: str | Path, n: int = FIT_PICTURES) -> Path:
    """Fit the map of the VAE saved in `vae_folder` and write it there as `latent_rgb.json`."""
    import torch
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(vae_folder, torch_dtype=torch.float32)
    weights, bias = fit(vae, n)
    path = Path(vae_folder) / FILE
    rows = ",\n  ".join(json.dumps([round(v, 6) for v in row]) for row in weights.tolist())
    path.write_text(f'{{"weights": [\n  {rows}],\n "bias": {json.dumps([round(v, 6) for v in bias.tolist()])},\n'
                    f' "fitted_on": "{n} shapes-world pictures, least squares"}}\n')
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("vae_folder", nargs="+", type=Path)
    args = parser.parse_args(argv)
    for folder in args.vae_folder:
        write(folder)


if __name__ == "__main__":
    main()
