"""Train a ControlNet of the built-in U-Net model on the frozen shipped model: "canny" (edge maps, continuing from
the shipped canny ControlNet) or "segmentation" (flat class-colour maps of where each shape goes, `world.segmentation`,
started from the UNet's encoder as ControlNet does), and measure it with the world's checker.

    python -m imagegen_nb.tiny.train_control --kind canny --out runs/canny --steps 1500       # resumable
    python -m imagegen_nb.tiny.train_control --kind canny --out runs/canny --evaluate

The score (`evaluate.evaluate_control`) counts a scene as placed when `checker.same_layout` accepts the picture: as
many shapes as the scene, each within 4 pixels of where the map puts it, of its kind, and of its colour where the
caption names the colour (a caption that leaves it open, "two circles", lets the model choose; no map carries colour).
"""

from __future__ import annotations

import argparse
import copy
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from . import controlnet_path, model_path, world
from .checkpoint import Checkpoint
from .evaluate import control_map

KINDS = ("canny", "segmentation")


@dataclass
class ControlConfig:
    steps: int = 1500
    batch: int = 32
    lr: float = 1e-4
    warmup: int = 50
    empty_caption: float = 0.1  # captions dropped, so guidance's unconditional branch also follows the map
    min_snr: float = 5.0
    ema_decay: float = 0.999
    seed: int = 0
    data_seed: int = 40_000_000  # far from the U-Net's and the first ControlNet's data
    checkpoint_every: int = 100


def _load(kind: str, base: Path | None):
    from diffusers import ControlNetModel, StableDiffusionPipeline

    from .components import build_controlnet

    pipe = StableDiffusionPipeline.from_pretrained(base or model_path("sd"), dtype=torch.float32)
    start = controlnet_path(kind)
    if (start / "config.json").exists():
        controlnet = ControlNetModel.from_pretrained(start, dtype=torch.float32)
    else:
        controlnet = build_controlnet(pipe.unet)
    return pipe, controlnet


def train(kind: str, out: Path, cfg: ControlConfig, steps: int | None = None, *, base: Path | None = None):
    """Train the `kind` ControlNet on the frozen built-in model, resumable from `out/controlnet.pt`; the EMA
    weights go to `out/controlnet`."""
    from .. import latents
    from ..lora_training import _noise_schedule
    from .train import _noised, ema_update, lr_lambda

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps({"kind": kind, **asdict(cfg)}, indent=1))
    torch.manual_seed(cfg.seed)
    pipe, controlnet = _load(kind, base)
    for part in (pipe.unet, pipe.text_encoder, pipe.vae):
        part.requires_grad_(False)
    controlnet.train()
    ema = copy.deepcopy(controlnet).requires_grad_(False)
    opt = torch.optim.AdamW(controlnet.parameters(), lr=cfg.lr, weight_decay=0.01)
    total = steps or cfg.steps
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg.warmup, total))
    ckpt = Checkpoint(out / "controlnet.pt")
    parts = {"model": controlnet, "ema": ema, "opt": opt, "sched": sched}
    start, losses = ckpt.restore(parts)
    scheduler = _noise_schedule(pipe.scheduler)
    bar = tqdm(range(start, total), initial=start, total=total, desc=f"{kind} controlnet")
    for step in bar:
        gen = torch.Generator().manual_seed(cfg.seed * 7_000_003 + step)
        images, captions, scenes = world.batch(cfg.batch, seed=cfg.data_seed + step, training=True)
        drop = torch.rand(len(captions), generator=gen) < cfg.empty_caption
        captions = ["" if d else c for c, d in zip(captions, drop.tolist())]
        maps = np.stack([control_map(kind, s) for s in scenes])
        cond = torch.from_numpy(maps).permute(0, 3, 1, 2).float() / 255.0
        with torch.no_grad():
            x0 = latents.encode(pipe.vae, latents.pixels(images))
            states, _ = pipe.encode_prompt(captions, "cpu", 1, False)
        x_t, v_target, t, weight = _noised(scheduler, x0, gen, cfg.min_snr)
        down, mid = controlnet(x_t, t, states, controlnet_cond=cond, return_dict=False)
        v_pred = pipe.unet(x_t, t, states, down_block_additional_residuals=down,
                           mid_block_additional_residual=mid).sample
        loss = (weight * (v_pred - v_target).pow(2).mean(dim=(1, 2, 3))).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(controlnet.parameters(), 1.0)
        opt.step()
        sched.step()
        ema_update(ema, controlnet, min(cfg.ema_decay, (1 + step) / (10 + step)))
        losses.append(loss.item())
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == total:
            ckpt.store(parts, step + 1, losses)
    ema.save_pretrained(out / "controlnet")
    return losses


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kind", choices=KINDS, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--evaluate", action="store_true", help="score out/controlnet instead of training")
    parser.add_argument("-n", type=int, default=32, help="scenes to score")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.evaluate:
        from .evaluate import evaluate_control  # (heavy: imports the library)

        scores = evaluate_control(kind=args.kind, controlnet=str(args.out / "controlnet"), n=args.n)
        (args.out / "scores.json").write_text(json.dumps(scores, indent=1))
        print(json.dumps(scores, indent=1))
        return
    train(args.kind, args.out, ControlConfig(), args.steps)


if __name__ == "__main__":
    main()
