"""Score a model of the shapes world the way GenEval scores real models: prompts per category, four pictures per
prompt, each graded by the world's checker.

    python -m imagegen_nb.tiny.evaluate                 # the shipped model, prints the table
    python -m imagegen_nb.tiny.evaluate --write-card    # and writes it into the model card

The checker first proves itself on ground-truth renders of the same prompts' scenes.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import latents
from . import checker, world
from .card import TARGETS, render


@dataclass
class Prompt:
    text: str
    category: str
    held_out: bool


def _names_held_out(scene: world.Scene, text: str) -> bool:
    spec = checker.parse(text)
    return any((c, s) in world.HELD_OUT for c, s in spec.objects if c is not None)


def prompts(per_category: int = 16, seed: int = 1234) -> list[Prompt]:
    """Distinct prompts per category in the world's plain grammar, plus prompts naming held-out colour x shape
    pairs (marked `held_out`, scored apart)."""
    rng = random.Random(seed)
    out: list[Prompt] = []
    for category in world.CATEGORIES:
        seen: set[str] = set()
        tries = 0
        while len(seen) < per_category and tries < 10_000:
            tries += 1
            text = world.caption(world.sample_scene(rng=rng, category=category, training=True))
            if text not in seen:
                seen.add(text)
                out.append(Prompt(text, category, False))
    held: set[str] = set()
    for category in ("colors", "color_attr", "position"):
        tries = 0
        while sum(p.category == category for p in out if p.held_out) < max(2, per_category // 4) and tries < 10_000:
            tries += 1
            scene = world.sample_scene(rng=rng, category=category, training=False)
            text = world.caption(scene)
            if text not in held and _names_held_out(scene, text):
                held.add(text)
                out.append(Prompt(text, category, True))
    return out


def checker_accuracy(n: int = 600, seed: int = 99) -> float:
    """The checker's accuracy on ground-truth renders with random captions of every category."""
    rng = random.Random(seed)
    right = 0
    for _ in range(n):
        scene = world.sample_scene(rng=rng, training=False)
        right += checker.grade(world.render(scene), world.caption(scene, rng=rng))
    return right / n


def reconstruction_accuracy(model=None, n: int = 300, seed: int = 98) -> float:
    """The checker's accuracy on the model's VAE round trips (encode, decode) of ground-truth renders: the ceiling
    of every score above, since each generated picture is decoded by the same VAE."""
    import torch

    from ..cache import shared

    # The pipeline's own VAE and pixel conversions, so the round trip is exactly how its pictures are made.
    _, pipe = shared.pipeline(model, "generate")
    vae, processor = pipe.vae, pipe.image_processor
    rng = random.Random(seed)
    scenes = [world.sample_scene(rng=rng, training=False) for _ in range(n)]
    captions = [world.caption(s, rng=rng) for s in scenes]
    with torch.no_grad():
        recon = latents.decode(vae, latents.encode(vae, processor.preprocess([world.render(s) for s in scenes])))
    pictures = processor.postprocess(recon.float().cpu(), output_type="pil")
    return sum(checker.grade(p, c) for p, c in zip(pictures, captions)) / n


def evaluate(model=None, *, per_category: int = 16, images_per_prompt: int = 4, seed: int = 0, **kwargs) -> dict:
    """Generate `images_per_prompt` pictures for each prompt and grade them. Returns per-category scores
    (trained combinations), held-out scores, checker accuracy and seconds per image.

    A category with fewer distinct prompts than `per_category` (the world has three single-object captions and
    nine counting ones) gets more pictures per prompt, so that every category is scored on at least
    `per_category * images_per_prompt` pictures: on 12 pictures a 97% target would hang on a single one."""
    import imagegen_nb as ig

    results: dict[str, list[bool]] = {}
    held: dict[str, list[bool]] = {}
    ps = prompts(per_category)
    distinct = Counter(p.category for p in ps if not p.held_out)
    started = time.perf_counter()
    made = 0
    for k, p in enumerate(ps):
        n = images_per_prompt if p.held_out else max(images_per_prompt,
                                                     math.ceil(per_category * images_per_prompt / distinct[p.category]))
        images = ig.generate(p.text, model=model, seed=seed + 1000 * k, num_images=n, progress=False, **kwargs)
        images = images if isinstance(images, list) else [images]
        made += len(images)
        grades = [checker.grade(im, p.text) for im in images]
        (held if p.held_out else results).setdefault(p.category, []).extend(grades)
    seconds = (time.perf_counter() - started) / made
    score = {c: sum(v) / len(v) for c, v in results.items()}
    return {
        "scores": score,
        "overall": sum(score.values()) / len(score),
        "held_out": {c: sum(v) / len(v) for c, v in held.items()},
        "checker_accuracy": checker_accuracy(),
        "reconstruction_accuracy": reconstruction_accuracy(model),
        "seconds_per_image": seconds,
        "prompts_per_category": per_category,
        "images_per_prompt": images_per_prompt,
        "images": {c: len(v) for c, v in results.items()},
    }


def control_map(kind: str, scene: world.Scene) -> np.ndarray:
    """The control map of a scene as (64, 64, 3) uint8: its picture's canny edges, or its segmentation map."""
    if kind == "canny":
        from ..preprocessors import canny

        return np.asarray(canny(world.render(scene)))
    return np.asarray(world.segmentation(scene))


def evaluate_control(model=None, *, kind: str = "canny", controlnet: str | None = None, n: int = 32, seed: int = 0,
                     tolerance: float = 4.0, **kwargs) -> dict:
    """How well a ControlNet (`kind`'s shipped one, or the folder `controlnet`) puts shapes where its map says: for
    `n` scenes of the world, generate from the scene's map (`control_map`) and its caption, and count
    the scenes whose picture `checker.same_layout` accepts (as many shapes, each of the scene's within `tolerance`
    pixels, of its kind, and of its colour where the caption names colours).

    Returns `placed` (that share), `graded` (the share the prompt's grader passes, as in `evaluate`) and
    `free_placed`, the same layout score for the same prompts and seeds without the ControlNet (the chance level).
    """
    from PIL import Image

    import imagegen_nb as ig

    rng = random.Random(seed + 77)
    scenes = [world.sample_scene(rng=rng, training=True) for _ in range(n)]
    placed = graded = free = 0
    for k, scene in enumerate(scenes):
        text = world.caption(scene)
        cmap = Image.fromarray(control_map(kind, scene))
        image = ig.control(cmap, text, kind=kind, preprocess=False, controlnet=controlnet, model=model,
                           seed=seed + k, progress=False, **kwargs)
        plain = ig.generate(text, model=model, seed=seed + k, progress=False, **kwargs)
        placed += checker.same_layout(image, scene, text, tolerance)
        free += checker.same_layout(plain, scene, text, tolerance)
        graded += checker.grade(image, text)
    return {"placed": placed / n, "graded": graded / n, "free_placed": free / n, "scenes": n}


def table(result: dict) -> str:
    """A Markdown table of the scores against the targets."""
    rows = ["| category | score | target | held-out pairs |", "|---|---|---|---|"]
    for c in world.CATEGORIES:
        s = result["scores"].get(c)
        h = result["held_out"].get(c)
        rows.append(f"| {c} | {s:.0%} | {TARGETS[c]:.0%} | {'' if h is None else f'{h:.0%}'} |")
    rows.append(f"| **overall** | {result['overall']:.0%} | | |")
    return "\n".join(rows)


def write_card(result: dict, path: Path, training: dict | None = None) -> None:
    """Write the model card (README.md of the model folder) with the evaluation table and training settings."""
    path.write_text(render(result, table(result), training or {}))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m imagegen_nb.tiny.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="model folder (default: the built-in model)")
    parser.add_argument("--per-category", type=int, default=16)
    parser.add_argument("--images-per-prompt", type=int, default=4)
    parser.add_argument("--steps", type=int, default=None, help="num_inference_steps (default: the model's)")
    parser.add_argument("--guidance", type=float, default=None)
    parser.add_argument("--scheduler", default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--control", type=int, default=32, metavar="N",
                        help="also score each shipped ControlNet on N scenes (0: skip)")
    parser.add_argument("--json", type=Path, default=None, help="also write the result as JSON here")
    parser.add_argument("--write-card", action="store_true", help="write the table into the model card")
    parser.add_argument("--training", type=Path, default=None, help="training config.json to cite in the card")
    args = parser.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    kwargs = {k: v for k, v in dict(num_inference_steps=args.steps, guidance_scale=args.guidance,
                                     scheduler=args.scheduler).items() if v is not None}
    result = evaluate(args.model, per_category=args.per_category, images_per_prompt=args.images_per_prompt, **kwargs)
    result["settings"] = kwargs
    result["threads"] = torch.get_num_threads()
    print(table(result))
    print(f"checker on ground truth: {result['checker_accuracy']:.1%}, on VAE round trips: "
          f"{result['reconstruction_accuracy']:.1%}; "
          f"{result['seconds_per_image'] * 1000:.0f} ms per image")
    if args.control:
        from ..registry import BUILTIN, FAMILIES

        result["control"] = {}
        for kind in FAMILIES[BUILTIN].controlnets:
            c = result["control"][kind] = evaluate_control(args.model, kind=kind, n=args.control, **kwargs)
            print(f"{kind} ControlNet: every shape where the map says in {c['placed']:.0%} of {c['scenes']} scenes "
                  f"({c['free_placed']:.0%} without it); prompt followed in {c['graded']:.0%}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    if args.write_card:
        from . import model_path

        training = json.loads(args.training.read_text()) if args.training else {}
        write_card(result, model_path() / "README.md", training)


if __name__ == "__main__":
    main()
