"""The command line: the task functions as subcommands, writing PNGs that carry their recipe.

    python -m imagegen_nb generate "a red circle to the left of a blue square" -o out.png
    imagegen-nb edit in.png "a blue square" --strength 0.7 -o edited.png
    imagegen-nb inpaint in.png mask.png "a green triangle" -o filled.png
    imagegen-nb control sketch.png "a red circle" --kind canny -o controlled.png
    imagegen-nb generate "a cat" --model MODEL --style painting.png --style-scale 0.6 --lora cat.safetensors=0.8
    imagegen-nb regenerate out.png -o again.png
    imagegen-nb models

An existing output file is never replaced unless --overwrite is given; without -o, pictures go to the first free
name of out.png, out-2.png, ... User errors print one line and exit with status 2 (130 when interrupted).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("prompt")
    _output(p, "out.png")
    p.add_argument("--model", default=None, help="Hub id or local diffusers folder (default: the built-in model)")
    p.add_argument("--negative-prompt", dest="negative_prompt", default=None)
    p.add_argument("--steps", dest="num_inference_steps", type=int, default=None)
    p.add_argument("--guidance", dest="guidance_scale", type=float, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--scheduler", default=None)
    p.add_argument("-n", "--num-images", dest="num_images", type=int, default=1)
    p.add_argument("--lora", action="append", default=None, metavar="PATH[=WEIGHT]",
                   help="a LoRA file or folder, at weight 1 or the one given; repeat for several")
    p.add_argument("--style", type=Path, default=None, help="a style picture (style=, through an IP-Adapter)")
    p.add_argument("--style-scale", dest="style_scale", type=float, default=None)
    p.add_argument("--ip-adapter", dest="ip_adapter", default=None,
                   help="the IP-Adapter's .safetensors file (default: the model family's)")


def _loras(given: list[str]) -> dict[str, float]:
    """--lora a.safetensors --lora b=0.4 as lora={"a.safetensors": 1.0, "b": 0.4}."""
    loras = {}
    for item in given:
        path, _, weight = item.rpartition("=") if "=" in item else (item, "", "1")
        try:
            loras[path] = float(weight)
        except ValueError:
            raise ValueError(f"--lora {item}: the weight after '=' must be a number") from None
    return loras


def _output(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument("-o", "--output", type=Path, default=None,
                   help=f"PNG to write (default: the first free name of {default}, ...)")
    p.add_argument("--overwrite", action="store_true", help="replace the output file if it exists")
    p.set_defaults(default_output=default)


def _sized(p: argparse.ArgumentParser) -> None:
    p.add_argument("--width", type=int, default=None)
    p.add_argument("--height", type=int, default=None)


def build_parser() -> argparse.ArgumentParser:
    from . import tasks  # the task signatures own the defaults

    parser = argparse.ArgumentParser(prog="imagegen-nb", description="Make images with diffusion models.")
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="text to image")
    _common(g); _sized(g)
    e = sub.add_parser("edit", help="image to image")
    e.add_argument("image", type=Path)
    _common(e); _sized(e)
    e.add_argument("--strength", type=float, default=tasks.default("edit", "strength"))
    i = sub.add_parser("inpaint", help="repaint where the mask is white")
    i.add_argument("image", type=Path)
    i.add_argument("mask", type=Path)
    _common(i)
    i.add_argument("--strength", type=float, default=tasks.default("inpaint", "strength"))
    i.add_argument("--mask-blur", dest="mask_blur", type=float, default=None)
    i.add_argument("--resize", action="store_true", help="resize the mask to the image")
    c = sub.add_parser("control", help="ControlNet generation from a control picture")
    c.add_argument("control_image", type=Path)
    _common(c); _sized(c)
    c.add_argument("--kind", default=tasks.default("control", "kind"))
    c.add_argument("--controlnet", default=None)
    c.add_argument("--scale", dest="controlnet_conditioning_scale", type=float,
                   default=tasks.default("control", "controlnet_conditioning_scale"))
    c.add_argument("--no-preprocess", dest="preprocess", action="store_false")
    r = sub.add_parser("regenerate", help="make a saved picture again from its recipe")
    r.add_argument("source", type=Path)
    _output(r, "regenerated.png")
    r.add_argument("--image", type=Path, default=None, help="input picture of an edit/inpaint")
    r.add_argument("--mask", type=Path, default=None, help="mask of an inpaint")
    r.add_argument("--control-image", dest="control_image", type=Path, default=None,
                   help="the original control picture (the PNG carries the map it made)")
    r.add_argument("--style", type=Path, default=None, help="the style picture it was made with (not in the PNG)")
    sub.add_parser("models", help="list the model families and their defaults")
    return parser


def _outputs(args, n: int) -> list[Path]:
    """The files the pictures go to, all checked before any picture is made."""
    from .recipes import next_free

    if args.output is None:
        first = next_free(Path(args.default_output))
        paths = [first] if n == 1 else [next_free(first.with_name(f"{first.stem}-{k}.png")) for k in range(n)]
        return paths
    path = args.output if args.output.suffix else args.output.with_suffix(".png")
    if path.suffix.lower() != ".png":
        raise ValueError(f"-o {args.output}: the output must be a .png file (PNG keeps the recipe)")
    paths = [path] if n == 1 else [path.with_name(f"{path.stem}-{k}{path.suffix}") for k in range(n)]
    taken = [str(p) for p in paths if p.exists()]
    if taken and not args.overwrite:
        raise FileExistsError(f"{', '.join(taken)} already exists; pass --overwrite to replace it, or another -o")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"-o {args.output}: no folder {str(path.parent)!r}")
    return paths


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _main(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, OSError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _main(args) -> int:
    import imagegen_nb as ig

    if args.command == "models":
        for f in ig.models():
            print(f"{f.name:14} {f.default_size:>5}px {f.default_steps:>3} steps  guidance {f.default_guidance:<4} "
                  f"{', '.join(f.tasks):32} {f.description}")
        return 0
    skip = ("command", "output", "overwrite", "default_output")
    kw = {k: v for k, v in vars(args).items() if k not in skip and v is not None}
    if "lora" in kw:
        kw["lora"] = _loras(kw["lora"])
    paths = _outputs(args, 1 if args.command == "regenerate" else kw.get("num_images", 1))
    if args.command == "regenerate":
        images = ig.regenerate(kw.pop("source"), **kw)
    else:
        images = getattr(ig, args.command)(**kw)
    images = images if isinstance(images, list) else [images]
    for image, path in zip(images, paths):
        print(ig.save(image, path, overwrite=args.overwrite))
    return 0


if __name__ == "__main__":
    sys.exit(main())
