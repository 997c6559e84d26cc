"""Teach the built-in model a shape it never saw: stars, from a handful of pictures, with a LoRA (`ig.train_lora`).

The shapes world can draw a star (`world.NEW_SHAPES`) but no caption names one, so the model has never seen the
word: its tokenizer reads "star" as `<unk>`, and "a red star" comes out as some red blob. A LoRA trained on
two dozen pictures of stars with their captions, beside pictures of what it already knows (`preserve=`), teaches
it the word; the checker (which knows stars) measures how many star prompts are drawn right and whether the
prompts it could draw before still are.

    python -m imagegen_nb.tiny.stars --out runs/star-lora --minutes 10   # train, then measure before and after

The stars are large ones: the built-in VAE was never trained on stars, and a small star's points do not survive
its 16x16 latents (a round trip keeps 58% of small-or-large stars, every large one).

>>> from imagegen_nb.tiny import stars
>>> pictures, captions = stars.examples(4)
>>> captions[0].split()[-1] if " on " not in captions[0] else "star"
'star'
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

from . import checker, world

WORD = "star"


def _star_scene(rng: random.Random, color: str | None = None) -> world.Scene:
    color = color or rng.choice(list(world.COLORS))
    r = world.random_radius(rng, "large")
    ((x, y),) = world.place_apart(rng, [r])
    return world.Scene(rng.choice(list(world.BACKGROUNDS)), (world.Shape(WORD, color, x, y, r),), "colors")


def examples(n: int = 24, seed: int = 0):
    """`n` pictures of one large star each, in every colour in turn, and their captions ("a red star", sometimes
    "a star" or "... on a black background")."""
    rng = random.Random(seed)
    colors = list(world.COLORS)
    pictures, captions = [], []
    for i in range(n):
        scene = _star_scene(rng, colors[i % len(colors)])
        s = scene.shapes[0]
        text = f"{world.article(s.color)} {s.color} {WORD}" if rng.random() < 0.8 else f"a {WORD}"
        if rng.random() < 0.25:
            text += f" on {world.article(scene.background)} {scene.background} background"
        pictures.append(world.render(scene))
        captions.append(text)
    return pictures, captions


def everyday(n: int = 64, seed: int = 1):
    """`n` pictures of what the model already draws (the world's own scenes and captions), for `preserve=`."""
    from PIL import Image

    images, captions, _ = world.batch(n, seed=seed)
    return [Image.fromarray(im) for im in images], captions


def star_prompts() -> list[str]:
    """The measured prompts with the new word: one per colour."""
    return [f"{world.article(c)} {c} {WORD}" for c in world.COLORS]


def other_prompts(n: int = 48, seed: int = 12345) -> list[str]:
    """Measured prompts without the new word: the world's captions of every category."""
    _, captions, _ = world.batch(n, seed=seed, training=True)
    return captions


def score(prompts: list[str], *, lora=None, seeds: int = 4, model=None) -> float:
    """The share of pictures the checker grades right: each prompt drawn with `seeds` seeds."""
    import imagegen_nb as ig

    right = total = 0
    for prompt in prompts:
        images = ig.generate(prompt, model=model, seed=0, num_images=seeds, lora=lora, progress=False)
        for image in images:
            right += checker.grade(image, prompt)
            total += 1
    return right / total


def main(argv: list[str] | None = None) -> None:
    import torch

    import imagegen_nb as ig
    from imagegen_nb.lora_training import LoraConfig, Training

    parser = argparse.ArgumentParser(prog="python -m imagegen_nb.tiny.stars", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/star-lora"))
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--minutes", type=float, default=10.0, help="stop training after this much CPU time")
    parser.add_argument("--examples", type=int, default=24)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    pictures, captions = examples(args.examples)
    cpu_start = time.process_time()

    def budget(training: Training) -> None:
        if time.process_time() - cpu_start > args.minutes * 60:
            training.stop()

    result = ig.train_lora(pictures, captions, args.out, steps=args.steps, preserve=everyday(), config=LoraConfig(),
                           run=Training(on_step=budget))
    cpu = time.process_time() - cpu_start
    others = other_prompts()
    report = {
        "steps": result.steps, "cpu_minutes": round(cpu / 60, 2), "wall_minutes": round(result.seconds / 60, 2),
        "lora_bytes": result.file.stat().st_size, "first_loss": result.losses[0], "last_loss_mean_50":
            sum(result.losses[-50:]) / len(result.losses[-50:]),
        "star_before": score(star_prompts()), "star_after": score(star_prompts(), lora=result.path),
        "others_before": score(others), "others_after": score(others, lora=result.path),
    }
    (args.out / "measurement.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))  # a script's report (library code never prints)


if __name__ == "__main__":
    main()
