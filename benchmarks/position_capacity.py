"""Can the built-in model's UNet say "this goes on the left" from pure noise? A capacity check, not a quality one.

A fresh UNet of the built-in architecture is trained, at the last timestep only (x_T = pure noise), to output a
latent that is 1 on the left half and 0 on the right for "a red circle to the left of a blue square", and the other
way round for "... to the right of ...". That is the least a model must do to draw a position prompt from pure
noise: make where something goes depend on the prompt. Printed per variant: the loss (0.25 = the prompt is ignored,
0 = solved) and the left-minus-right contrast of the output for each prompt (+1 and -1 when solved).

Variants: the UNet without and with text FiLM (components.Architecture.text_film: the pooled prompt scales and
shifts every ResNet's features), and, as controls, a target that depends only on the prompt (uniform) and one that
depends only on the place (always left). About a minute per variant on 2 CPU cores.

`--part pictures` asks the same of real pictures: a fresh text-FiLM UNet and text encoder learn, again at the last
timestep only, to predict the world's position pictures (x0, as v-prediction does there) from their captions, for
one colour pair ("a red circle to the left/right of a blue square"), for the same two named in either order, and for
every pair the world draws, and for every pair again with side labels (tiny.sides: the text encoder first learns
which side each word's object is on). Printed: how far the predictions for a caption and for its left/right swap
point the way the picture and its mirror differ (cosine: 0 when the prompt does not decide the side; about 0.5 when
it does, as one picture is a noisy stand-in for the average the model learns). About three minutes per variant on
2 CPU cores.

    python benchmarks/position_capacity.py [--steps 300] [--threads 2] [--part halves|pictures|all]
"""

from __future__ import annotations

import argparse
import time


def run_halves(film: bool, target_kind: str, steps: int, text, seed: int = 0) -> tuple[float, float, float]:
    import torch

    from imagegen_nb.tiny import components

    torch.manual_seed(seed)
    unet = components.build_unet(components.ARCHITECTURES["film" if film else "default"])
    h = unet.config.sample_size
    target = torch.zeros(2, 4, h, h)
    if target_kind == "prompt x place":
        target[0, ..., : h // 2] = 1
        target[1, ..., h // 2 :] = 1
    elif target_kind == "prompt only":
        target[0] = 1
    else:  # place only
        target[..., : h // 2] = 1
    opt = torch.optim.AdamW(unet.parameters(), lr=1e-3)
    t = torch.full((16,), 999)
    for _ in range(steps):
        which = torch.randint(0, 2, (16,))
        loss = (unet(torch.randn(16, 4, h, h), t, encoder_hidden_states=text[which]).sample - target[which]).pow(2)
        opt.zero_grad()
        loss.mean().backward()
        opt.step()
    with torch.no_grad():
        which = torch.arange(64) % 2
        out = unet(torch.randn(64, 4, h, h), torch.full((64,), 999), encoder_hidden_states=text[which]).sample
        loss = (out - target[which]).pow(2).mean().item()
        contrast = out[..., : h // 2].mean((1, 2, 3)) - out[..., h // 2 :].mean((1, 2, 3))
    return loss, contrast[0::2].mean().item(), contrast[1::2].mean().item()


def halves(steps: int, threads: int) -> None:
    import torch
    from diffusers import StableDiffusionPipeline

    from imagegen_nb.tiny import model_path

    pipe = StableDiffusionPipeline.from_pretrained(model_path())
    prompts = ["a red circle to the left of a blue square", "a red circle to the right of a blue square"]
    with torch.no_grad():
        text, _ = pipe.encode_prompt(prompts, "cpu", 1, False)
    print(f"fresh UNets, {steps} steps at the last timestep (pure noise in), {threads} threads")
    print(f"{'UNet':<16}{'target':<16}{'loss':>8}{'left prompt':>14}{'right prompt':>14}{'seconds':>9}")
    for film in (False, True):
        for kind in ("prompt x place", "prompt only", "place only"):
            start = time.perf_counter()
            loss, left, right = run_halves(film, kind, steps, text)
            name = "text FiLM" if film else "no FiLM"
            print(f"{name:<16}{kind:<16}{loss:>8.3f}{left:>+14.2f}{right:>+14.2f}{time.perf_counter() - start:>9.0f}")
    print("solved: loss near 0; for 'prompt x place' the contrast is +1 for the left prompt and -1 for the right")


# a red circle named first and a blue square second; the same two, either named first; every pair of the world
PAIRS = ("red / blue", "either order", "every pair")


def _position_pictures(rng, n: int, pairs: str):
    """`n` left/right position scenes of the world, drawn from one of PAIRS."""
    from dataclasses import replace

    from imagegen_nb.tiny import world

    scenes = []
    while len(scenes) < n:
        scene = world.sample_scene(rng=rng, category="position")
        if scene.relation not in ("left of", "right of"):
            continue
        if pairs != "every pair":
            a, b = scene.shapes
            first, second = ("circle", "red"), ("square", "blue")
            if pairs == "either order" and rng.random() < 0.5:
                first, second = second, first
            scene = replace(scene, shapes=(replace(a, shape=first[0], color=first[1]),
                                           replace(b, shape=second[0], color=second[1])))
        scenes.append(scene)
    return scenes


def run_pictures(pairs: str, steps: int, seed: int = 0, side_labels: bool = False) -> tuple[float, float]:
    """Train at the last timestep on real position pictures; the final loss and the caption-vs-swap cosine. With
    `side_labels`, the text encoder first learns each word's side (tiny.sides), then keeps that loss beside."""
    import random

    import numpy as np
    import torch

    from imagegen_nb.tiny import components, model_path, sides, world
    from imagegen_nb.tiny.train import TrainConfig, _encode_text, _latents, _load_vae, _teach_sides

    torch.manual_seed(seed)
    arch = components.ARCHITECTURES["film"]
    vae = _load_vae(model_path()).eval().requires_grad_(False)
    tokenizer = components.build_tokenizer(model_path() / "tokenizer", arch)
    text_encoder, unet = components.build_text_encoder(len(tokenizer), arch), components.build_unet(arch)
    params = [*unet.parameters(), *text_encoder.parameters()]
    if side_labels:
        reader = sides.probe(arch.text_width)
        position = tuple(float(c == "position") for c in world.CATEGORIES)
        _teach_sides(tokenizer, text_encoder, reader, TrainConfig(sides_first=600, category_weights=position), "cpu")
        params += reader.parameters()
    opt = torch.optim.AdamW(params, lr=1e-3)
    rng = random.Random(seed)

    def encode(captions):
        return _encode_text(tokenizer, text_encoder, captions, "cpu")

    def predict(text):
        noise = torch.randn(len(text), 4, unet.config.sample_size, unet.config.sample_size)
        return -unet(noise, torch.full((len(text),), 999), text).sample  # v at pure noise is -x0

    def pictures(scenes):
        return _latents(vae, np.stack([np.asarray(world.render(s)) for s in scenes]), "cpu")

    losses = []
    for _ in range(steps):
        scenes = _position_pictures(rng, 32, pairs)
        with torch.no_grad():
            x0 = pictures(scenes)
        captions = [world.caption(s, rng=rng) for s in scenes]
        text = encode(captions)
        loss = total = (predict(text) - x0).pow(2).mean()
        if side_labels:
            labels = torch.from_numpy(sides.targets(scenes, captions, tokenizer.model_max_length))
            total = loss + 0.1 * sides.loss(reader, text, labels)
        opt.zero_grad()
        total.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        losses.append(loss.item())
    probe = _position_pictures(random.Random(seed + 1), 64, pairs)
    mirrored = [world.flip_horizontal(s) for s in probe]
    with torch.no_grad():
        said = predict(encode([world.caption(s) for s in probe]))
        swapped = predict(encode([world.caption(s) for s in mirrored]))
        cos = torch.nn.functional.cosine_similarity((said - swapped).flatten(1),
                                                    (pictures(probe) - pictures(mirrored)).flatten(1))
    return float(np.mean(losses[-50:])), cos.mean().item()


def pictures(steps: int) -> None:
    print(f"\nfresh text-FiLM UNet and text encoder, {steps} steps on position pictures at the last timestep")
    print(f"{'colour pairs':<16}{'side labels':<13}{'loss':>8}{'cosine':>9}{'seconds':>9}")
    for pairs, side_labels in [*((p, False) for p in PAIRS), ("every pair", True)]:
        start = time.perf_counter()
        loss, cos = run_pictures(pairs, steps, side_labels=side_labels)
        print(f"{pairs:<16}{'yes' if side_labels else 'no':<13}{loss:>8.3f}{cos:>+9.2f}"
              f"{time.perf_counter() - start:>9.0f}")
    print("cosine: how far caption vs swapped caption predicts the picture vs its mirror; 0 = the side is not learned")
    print("side labels: the text encoder first learns which side each word's object is on (tiny.sides)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--part", choices=["halves", "pictures", "all"], default="all")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    if args.part in ("halves", "all"):
        halves(args.steps, args.threads)
    if args.part in ("pictures", "all"):
        pictures(args.steps)


if __name__ == "__main__":
    main()
