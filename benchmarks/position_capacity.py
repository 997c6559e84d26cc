"""Can the built-in model's UNet say "this goes on the left" from pure noise? A capacity check, not a quality one.

A fresh UNet of the built-in architecture is trained, at the last timestep only (x_T = pure noise), to output a
latent that is 1 on the left half and 0 on the right for "a red circle to the left of a blue square", and the other
way round for "... to the right of ...". That is the least a model must do to draw a position prompt from pure
noise: make where something goes depend on the prompt. Printed per variant: the loss (0.25 = the prompt is ignored,
0 = solved) and the left-minus-right contrast of the output for each prompt (+1 and -1 when solved).

Variants: the UNet without and with text FiLM (components.Architecture.text_film: the pooled prompt scales and
shifts every ResNet's features), and, as controls, a target that depends only on the prompt (uniform) and one that
depends only on the place (always left). About a minute per variant on 2 CPU cores.

    python benchmarks/position_capacity.py [--steps 300] [--threads 2]
"""

from __future__ import annotations

import argparse
import time


def run(film: bool, target_kind: str, steps: int, text, seed: int = 0) -> tuple[float, float, float]:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch
    from diffusers import StableDiffusionPipeline

    from imagegen_nb.tiny import model_path

    torch.set_num_threads(args.threads)
    pipe = StableDiffusionPipeline.from_pretrained(model_path())
    prompts = ["a red circle to the left of a blue square", "a red circle to the right of a blue square"]
    with torch.no_grad():
        text, _ = pipe.encode_prompt(prompts, "cpu", 1, False)
    print(f"fresh UNets, {args.steps} steps at the last timestep (pure noise in), {args.threads} threads")
    print(f"{'UNet':<16}{'target':<16}{'loss':>8}{'left prompt':>14}{'right prompt':>14}{'seconds':>9}")
    for film in (False, True):
        for kind in ("prompt x place", "prompt only", "place only"):
            start = time.perf_counter()
            loss, left, right = run(film, kind, args.steps, text)
            name = "text FiLM" if film else "no FiLM"
            print(f"{name:<16}{kind:<16}{loss:>8.3f}{left:>+14.2f}{right:>+14.2f}{time.perf_counter() - start:>9.0f}")
    print("solved: loss near 0; for 'prompt x place' the contrast is +1 for the left prompt and -1 for the right")


if __name__ == "__main__":
    main()
