"""The built-in model's card: what it is, how it was trained, and how it scores."""

from __future__ import annotations

import json

from . import world

# The score each category should reach (the evaluation measures, the card states them)
TARGETS = {"single_object": 0.97, "colors": 0.95, "position": 0.85, "counting": 0.80, "two_object": 0.85,
           "color_attr": 0.70}

_TEMPLATE = """# imagegen_nb built-in model: tiny shapes

A tiny text-to-image latent diffusion model of a synthetic world of flat shapes, in diffusers'
`StableDiffusionPipeline` format. It is the default model of `imagegen_nb` and the subject of its teaching material.
It was trained from scratch by `python -m imagegen_nb.tiny.train` on pictures from `imagegen_nb.tiny.world`.

```python
from diffusers import StableDiffusionPipeline
from imagegen_nb import tiny
pipe = StableDiffusionPipeline.from_pretrained(tiny.model_path())
image = pipe("a red circle to the left of a blue square", num_inference_steps=12).images[0]
```

## The world
64x64 RGB pictures: one to four flat shapes ({shapes}) in {n_colors} colours ({colors}), small or large, on a
{backgrounds} background. Captions cover the categories of the GenEval benchmark: single object ("a circle"),
colors ("a purple square"), counting ("three green triangles"), two objects ("a circle and a triangle"), position
("a blue square to the left of a yellow circle"), attribute binding ("a red circle and a blue square").
Held out of training entirely: {held_out}.

## Parts
| part | class | notes |
|---|---|---|
| tokenizer | `PreTrainedTokenizerFast` | one token per word of the {n_words}-word vocabulary, else `<unk>` |
| text encoder | `T5EncoderModel` | bidirectional, so every word sees the whole sentence{text_notes} |
| VAE | `AutoencoderKL` | 64x64x3 -> 16x16x4 |
| UNet | `UNet2DConditionModel` | {unet_notes} |
| scheduler | `DPMSolverMultistepScheduler` | {schedule_notes}, trailing spacing |
| ControlNets | `ControlNetModel` (`../controlnet-canny`, `../controlnet-segmentation`) | edges; segmentation maps |

## Evaluation
`python -m imagegen_nb.tiny.evaluate`: {per_category} prompts per category,
{images_per_prompt} pictures per prompt{fewer},
graded by the world's analytic checker (colour segmentation, connected components, overlap with each ideal shape,
centroids for position; a blob that overlaps none with IoU >= 0.75 is no shape), which scores {checker:.1%} on
ground-truth renders and {recon:.1%} on their round trips through the VAE (the ceiling of every score below).
Settings: {settings}.

{table}

Held-out pairs are prompts naming a colour x shape pair never seen in training.
{seconds:.0f} ms per picture during evaluation ({threads}, default settings,
{images_per_prompt} or more pictures a call).
{control}
{short}
## Training
```json
{training}
```
"""


def render(result: dict, table: str, training: dict) -> str:
    return _TEMPLATE.format(**_parts(training),
        shapes=", ".join(world.SHAPES), n_colors=len(world.COLORS), colors=", ".join(world.COLORS),
        backgrounds=" / ".join(world.BACKGROUNDS), held_out=", ".join(f"{c} {s}" for c, s in sorted(world.HELD_OUT)),
        n_words=len(world.vocabulary()), per_category=result["prompts_per_category"],
        images_per_prompt=result["images_per_prompt"], fewer=_fewer(result), checker=result["checker_accuracy"],
        recon=result.get("reconstruction_accuracy", float("nan")),
        settings=json.dumps(result.get("settings") or "model defaults"), table=table,
        seconds=result["seconds_per_image"] * 1000, threads=_threads(result.get("threads")),
        control=_control(result.get("control")), short=_short(result), training=json.dumps(training, indent=2))


def _parts(training: dict) -> dict:
    """The notes of the parts table that depend on how the model was trained (its run's config.json)."""
    arch, cfg = training.get("arch", {}), training.get("train", {})
    v = cfg.get("prediction_type") == "v_prediction"
    unet = f"{'v' if v else 'epsilon'} prediction; cross-attention at 16x16, 8x8 and the middle"
    if arch.get("text_film"):
        unet += "; text FiLM (the pooled prompt scales and shifts every ResNet block's features)"
    return {
        "text_notes": "".join(note for key, note in (
            ("sides", "; taught which side of the picture each word's object is on"),
            ("binding", "; taught which colour goes with which shape word")) if cfg.get(key)),
        "unet_notes": unet,
        "schedule_notes": "SD 1.5's scaled-linear schedule" + (", rescaled to zero terminal SNR (x_T is pure noise)"
                                                               if cfg.get("zero_terminal_snr") else ""),
    }


def _fewer(result: dict) -> str:
    """Where the grammar has fewer distinct prompts than asked, how many pictures each of those categories got."""
    least = result["prompts_per_category"] * result["images_per_prompt"]
    more = {c: n for c, n in result.get("images", {}).items() if n > least}
    if not more:
        return ""
    return (" (categories with fewer distinct captions get more pictures of each, so each is scored on at least "
            f"{least}: " + ", ".join(f"{c} {n}" for c, n in more.items()) + ")")


def _short(result: dict) -> str:
    below = [f"{c} ({result['scores'][c]:.0%} against {t:.0%})" for c, t in TARGETS.items()
             if result["scores"].get(c, 1.0) < t]
    if not below:
        return "Every category meets its target.\n"
    return ("Below target: " + ", ".join(below) + ". Training resumes with the same command (checkpoints in the run "
            "folder), and `--phase export` writes new weights here.\n")


def _threads(n: int | None) -> str:
    return "CPU" if n is None else f"{n} CPU thread{'s' if n > 1 else ''}"


_MAPS = {"canny": "the edge map", "segmentation": "the segmentation map"}


def _control(controls: dict | None) -> str:
    """One sentence per ControlNet scored: `controls` is {kind: evaluate_control's result} (or one canny result)."""
    if not controls:
        return ""
    if "placed" in controls:  # one result: the canny ControlNet's
        controls = {"canny": controls}
    lines = []
    for kind, c in controls.items():
        lines.append(f"The {kind} ControlNet, given {_MAPS.get(kind, 'the map')} of a scene and its caption, puts "
                     "every shape where the map says (as many shapes, each of its kind within 4 pixels, of its "
                     f"colour where the caption names one) in {c['placed']:.0%} of {c['scenes']} scenes "
                     f"({c['free_placed']:.0%} for the same prompts and seeds without it); the prompt's grader "
                     f"passes {c['graded']:.0%} of them.")
    return "\n" + "\n\n".join(lines) + "\n"
