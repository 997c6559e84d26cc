"""The built-in U-Net model's IP-Adapter: it carries a reference picture's look (its background and the colour of
its shapes) into a new picture wherever the prompt leaves them open, while the prompt decides everything it names.

The world's captions may leave out the background ("a circle") and, in most categories, the colour ("two
squares"); the model then picks them at random. The adapter learns from pairs that share only that look: the
reference is another scene (other shapes, another count, other places) with the same background and shape colour,
so the one thing the reference can teach is the look, not the content.

It is a standard IP-Adapter in h94's safetensors layout, with its own small CLIP image encoder trained beside it
(none pretrained exists offline); `pipe.load_ip_adapter(folder, subfolder="", weight_name=WEIGHTS_NAME)` loads
it, and `style=` uses it by default on the built-in model.

    python -m imagegen_nb.tiny.style_adapter --out runs/style --steps 2000    # resumable: run it again to go on
    python -m imagegen_nb.tiny.style_adapter --out runs/style --evaluate      # the style and content scores

>>> import random
>>> from imagegen_nb.tiny import style_adapter, world
>>> reference, target, caption = style_adapter.pair(random.Random(0))
>>> reference.background == target.background
True
"""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from . import checker, ip_adapter_path, model_path, world
from .checkpoint import Checkpoint

WEIGHTS_NAME = ip_adapter_path().name  # ip-adapter.safetensors
# A small CLIP vision tower at the world's own size: 8x8 patches of the 64x64 picture.
ENCODER = dict(hidden_size=64, projection_dim=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
               image_size=world.SIZE, patch_size=8)
OPEN_CATEGORIES = ("single_object", "counting", "two_object")  # captions of these may leave the colour out
ONE_COLOUR = ("single_object", "colors", "counting")  # scenes whose shapes share one colour: a reference's look


@dataclass
class StyleConfig:
    steps: int = 2000
    batch: int = 32
    lr: float = 3e-4
    warmup: int = 100
    drop_reference: float = 0.1  # share of pairs trained with zero image embeddings: what guidance's negative uses
    named: float = 0.25  # share of targets whose caption names their own colours (the prompt must win there)
    min_snr: float = 5.0
    seed: int = 0
    checkpoint_every: int = 100


def pair(rng: random.Random) -> tuple[world.Scene, world.Scene, str]:
    """A reference scene, a target scene with the reference's look and a caption of the target. The caption leaves
    the colour and background open, except for a share of targets (`named`) whose caption names their own colours."""
    reference = world.sample_scene(rng=rng, category=rng.choice(ONE_COLOUR), training=True)
    colour = reference.shapes[0].color
    if rng.random() < StyleConfig.named:
        target = world.sample_scene(rng=rng, category=rng.choice(("colors", "position", "color_attr")),
                                    training=True)
        target = world.Scene(reference.background, target.shapes, target.category, target.relation)
        return reference, target, world.caption(target)
    target = world.sample_scene(rng=rng, category=rng.choice(OPEN_CATEGORIES), training=True)
    while any(not world.allowed(colour, s.shape, training=True) for s in target.shapes):
        target = world.sample_scene(rng=rng, category=target.category, training=True)
    shapes = tuple(world.Shape(s.shape, colour, s.x, s.y, s.r) for s in target.shapes)
    target = world.Scene(reference.background, shapes, target.category, target.relation)
    return reference, target, world.caption(target)  # the plain form: no colour, no background


def _processor():
    from transformers import CLIPImageProcessor

    # what load_ip_adapter makes for a pipeline without a feature extractor: the encoder's size, CLIP's statistics
    return CLIPImageProcessor(size=world.SIZE, crop_size=world.SIZE)


def _initial_state(unet) -> dict:
    """IP-Adapter weights to start from: a random projection, and each layer's image key/value weights copied from
    its text key/value weights (as the IP-Adapter paper starts them)."""
    cross = unet.config.cross_attention_dim
    proj = torch.nn.Linear(ENCODER["projection_dim"], 4 * cross)
    state = {"image_proj": {"proj.weight": proj.weight.detach().clone(), "proj.bias": proj.bias.detach().clone(),
                            "norm.weight": torch.ones(cross), "norm.bias": torch.zeros(cross)},
             "ip_adapter": {}}
    key = 1
    for name in unet.attn_processors:
        if name.endswith("attn2.processor"):
            attention = unet.get_submodule(name.removesuffix(".processor"))
            state["ip_adapter"][f"{key}.to_k_ip.weight"] = attention.to_k.weight.detach().clone()
            state["ip_adapter"][f"{key}.to_v_ip.weight"] = attention.to_v.weight.detach().clone()
            key += 2
    return state


def _trainable(pipe) -> torch.nn.ModuleDict:
    ip_layers = [p for p in pipe.unet.attn_processors.values() if hasattr(p, "to_k_ip")]
    return torch.nn.ModuleDict({"encoder": pipe.image_encoder, "projection": pipe.unet.encoder_hid_proj,
                                "layers": torch.nn.ModuleList(ip_layers)})


def build(pipe, seed: int = 0):
    """Give the built-in pipeline a fresh, untrained IP-Adapter and image encoder, installed in its UNet."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    pipe.register_modules(image_encoder=CLIPVisionModelWithProjection(CLIPVisionConfig(**ENCODER)),
                          feature_extractor=_processor())
    pipe.load_ip_adapter(_initial_state(pipe.unet), subfolder="", weight_name="", image_encoder_folder=None)
    return pipe


def save(pipe, folder: Path) -> Path:
    """Write the pipeline's IP-Adapter in h94's layout and its image encoder beside it; returns the weights file."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    pipe.image_encoder.save_pretrained(folder / "image_encoder")
    projection = pipe.unet.encoder_hid_proj.image_projection_layers[0]
    state = {"image_proj.proj.weight": projection.image_embeds.weight,
             "image_proj.proj.bias": projection.image_embeds.bias, "image_proj.norm.weight": projection.norm.weight,
             "image_proj.norm.bias": projection.norm.bias}
    key = 1
    for processor in pipe.unet.attn_processors.values():
        if hasattr(processor, "to_k_ip"):
            state[f"ip_adapter.{key}.to_k_ip.weight"] = processor.to_k_ip[0].weight
            state[f"ip_adapter.{key}.to_v_ip.weight"] = processor.to_v_ip[0].weight
            key += 2
    weights = folder / WEIGHTS_NAME
    save_file({k: v.detach().float().contiguous() for k, v in state.items()}, str(weights))
    return weights


def _batch(rng: random.Random, n: int):
    references, targets, captions = [], [], []
    for _ in range(n):
        reference, target, caption = pair(rng)
        if rng.random() < 0.5:
            target = world.flip_horizontal(target)
            caption = world.caption(target) if target.relation else caption
        references.append(np.asarray(world.render(reference)))
        targets.append(np.asarray(world.render(target)))
        captions.append(caption)
    return references, np.stack(targets), captions


def train(out: Path, cfg: StyleConfig, steps: int | None = None, *, base: Path | None = None) -> list[float]:
    """Train the adapter (and its image encoder) on the frozen built-in model; resumable from `out/style.pt`."""
    from diffusers import StableDiffusionPipeline

    from .. import latents
    from ..lora_training import _noise_schedule
    from .train import _noised, lr_lambda

    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=1))
    pipe = build(StableDiffusionPipeline.from_pretrained(base or model_path("sd"), dtype=torch.float32), cfg.seed)
    for part in (pipe.unet, pipe.text_encoder, pipe.vae):
        part.requires_grad_(False)
    trainable = _trainable(pipe).requires_grad_(True).train()
    params = list(trainable.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.01)
    total = steps or cfg.steps
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg.warmup, total))
    ckpt = Checkpoint(out / "style.pt")
    parts = {"trainable": trainable, "opt": opt, "sched": sched}
    start, losses = ckpt.restore(parts)
    scheduler = _noise_schedule(pipe.scheduler)
    processor = _processor()
    bar = tqdm(range(start, total), initial=start, total=total, desc="style adapter")
    for step in bar:
        rng = random.Random(cfg.seed * 1_000_003 + step)
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        references, targets, captions = _batch(rng, cfg.batch)
        with torch.no_grad():
            x0 = latents.encode(pipe.vae, latents.pixels(targets))
            states, _ = pipe.encode_prompt(captions, "cpu", 1, False)
        pixel_values = processor(images=references, return_tensors="pt").pixel_values
        embeds = pipe.image_encoder(pixel_values).image_embeds
        keep = (torch.rand(len(captions), generator=gen) >= cfg.drop_reference).float()[:, None]
        embeds = embeds * keep
        x_t, v_target, t, weight = _noised(scheduler, x0, gen, cfg.min_snr)  # the built-in model predicts v
        v_pred = pipe.unet(x_t, t, states, added_cond_kwargs={"image_embeds": [embeds[:, None]]}).sample
        loss = (weight * (v_pred - v_target).pow(2).mean(dim=(1, 2, 3))).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == total:
            ckpt.store(parts, step + 1, losses)
    trainable.eval()
    save(pipe, out / "adapter")
    return losses


def evaluate(adapter: Path, n: int = 64, *, seed: int = 0, style_scale: float | None = None) -> dict:
    """Style and content scores on `n` prompts that leave the look open and `n // 2` that name their colours.

    For each prompt a reference scene of another content is drawn; the picture made with `style=` is checked for
    the reference's look (`checker.look`: background and colour; only background where the prompt names colours)
    and, like the same prompt and seed without `style=`, graded for its content by the world's checker."""
    import imagegen_nb as ig

    rng = random.Random(seed)
    rows = []
    for i in range(n + n // 2):
        named = i >= n
        reference, target, prompt = pair(rng)
        while (target.category in ("colors", "position", "color_attr")) != named:
            reference, target, prompt = pair(rng)
        ref_image = world.render(reference)
        kw = dict(seed=seed + i, progress=False)
        plain = ig.generate(prompt, **kw)
        styled = ig.generate(prompt, style=ref_image, ip_adapter=str(adapter), style_scale=style_scale, **kw)
        want = checker.look(ref_image)
        got = checker.look(styled)
        rows.append({"named": named, "background": got[0] == want[0], "colour": got[1] == want[1],
                     "content_styled": checker.grade(styled, prompt), "content_plain": checker.grade(plain, prompt),
                     "background_plain": checker.look(plain)[0] == want[0],
                     "colour_plain": checker.look(plain)[1] == want[1]})

    def share(key, named):
        picked = [r[key] for r in rows if r["named"] == named]
        return round(100 * float(np.mean(picked)), 1)

    return {"open": {k: share(k, False) for k in ("background", "colour", "content_styled", "content_plain",
                                                  "background_plain", "colour_plain")},
            "named": {k: share(k, True) for k in ("background", "content_styled", "content_plain",
                                                  "background_plain")},
            "prompts": {"open": n, "named": n // 2}}


def _default_scale() -> float:
    from ..registry import BUILTIN, FAMILIES

    return FAMILIES[BUILTIN].default_style_scale


def ground_truth(n: int = 200, seed: int = 0) -> float:
    """How often `look` reads the look of a ground-truth render right (the checker's ceiling)."""
    rng = random.Random(seed)
    right = 0
    for _ in range(n):
        reference, target, _ = pair(rng)
        want = (reference.background, reference.shapes[0].color)
        right += checker.look(world.render(reference)) == want
    return right / n


def card(scores: dict, config: dict) -> str:
    """The shipped adapter's card (its README.md), from `evaluate`'s scores and the training config."""
    o, nm = scores["open"], scores["named"]
    return f"""# imagegen_nb built-in model: style adapter

An IP-Adapter for the built-in U-Net model (`../sd`), in h94/IP-Adapter's safetensors layout, with its own small CLIP
image encoder in `image_encoder/` ({ENCODER["hidden_size"]} wide, {ENCODER["num_hidden_layers"]} layers, \
{ENCODER["patch_size"]}x{ENCODER["patch_size"]} patches of the 64x64 picture). It carries a reference picture's look,
its background and the colour of its shapes, into pictures whose prompts leave them open; what a prompt names, it
keeps. Trained by `python -m imagegen_nb.tiny.style_adapter` on pairs of scenes that share only their look, the
U-Net, text encoder and VAE frozen: {config.get("steps")} steps of {config.get("batch")} pairs, about 45 minutes on \
one CPU thread (beside two other training runs on a 2-core machine).

```python
import imagegen_nb as ig
reference = ig.generate("three green circles on a black background", seed=2)
ig.generate("two squares", style=reference, seed=3)  # green squares on black (style_scale {scores["style_scale"]})
```

## Evaluation
`python -m imagegen_nb.tiny.style_adapter --evaluate`: for each prompt a reference scene of other content is drawn;
the picture made with `style=` and the same prompt and seed without it are read by the world's checker (`checker.look`
for background and colour, which reads ground-truth renders right in {scores["ground_truth_look"]:.0f}% of cases;
`checker.grade` for the content).

| prompts | reference's background | reference's colour | content with style | content without |
|---|---|---|---|---|
| {scores["prompts"]["open"]} leaving the look open | {o["background"]:.0f}% (without: {o["background_plain"]:.0f}%) | \
{o["colour"]:.0f}% (without: {o["colour_plain"]:.0f}%) | {o["content_styled"]:.0f}% | {o["content_plain"]:.0f}% |
| {scores["prompts"]["named"]} naming their colours | {nm["background"]:.0f}% \
(without: {nm["background_plain"]:.0f}%) | (the prompt's) | {nm["content_styled"]:.0f}% | {nm["content_plain"]:.0f}% |

Without the reference a picture matches it by chance only (a third of backgrounds, an eighth of colours).

## Training
```json
{json.dumps(config, indent=2)}
```
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/style"))
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--evaluate", action="store_true", help="score out/adapter instead of training")
    parser.add_argument("-n", type=int, default=64, help="prompts that leave the look open (evaluation)")
    parser.add_argument("--write-card", action="store_true", help="with --evaluate: write the shipped adapter's card")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.evaluate:
        scores = evaluate(args.out / "adapter" / WEIGHTS_NAME, args.n)
        scores["ground_truth_look"] = round(100 * ground_truth(), 1)
        scores["style_scale"] = _default_scale()
        (args.out / "scores.json").write_text(json.dumps(scores, indent=1))
        print(json.dumps(scores, indent=1))
        if args.write_card:
            config = json.loads((args.out / "config.json").read_text())
            ip_adapter_path().with_name("README.md").write_text(card(scores, config))
        return
    train(args.out, StyleConfig(), args.steps)


if __name__ == "__main__":
    main()
