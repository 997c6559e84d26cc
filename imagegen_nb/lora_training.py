"""Teach a UNet text-to-image model something new from a handful of (picture, caption) pairs: LoRA layers on its
attention, trained with the model's own objective, written in diffusers' LoRA format (`lora=` of the task functions
and plain `StableDiffusionPipeline.load_lora_weights` both load it).

The base weights stay frozen; only the low-rank matrices A (rank x in) and B (out x rank) of each attention
projection learn, so the layer computes W x + (alpha / rank) B A x (Hu et al. 2021, "LoRA"). B starts at zero, so
step 0 is exactly the base model. The loss is the one the model was trained with: noise a clean latent x0 to
x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps on its own noise schedule, and regress what it predicts
(eps, or v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x0 for a v-prediction model such as the built-in one),
weighted by min-SNR-5 as `tiny/train.py` does. `preserve=` mixes in pictures of what the model already knows, with
the same loss, so what it could draw before stays as it was (prior preservation, as in DreamBooth).

>>> import imagegen_nb as ig
>>> ig.train_lora([], [], "out")
Traceback (most recent call last):
ValueError: train_lora needs at least one picture and its caption
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import arguments, registry

TARGETS = ("to_q", "to_k", "to_v", "to_out.0")  # the UNet's attention projections (self- and cross-attention)
CHECKPOINT = "checkpoint.pt"  # in the output folder: everything needed to continue a stopped run


@dataclass
class LoraConfig:
    """How `train_lora` trains (recorded in the checkpoint: a resumed run must match it)."""

    rank: int = 8  # the rank of each A, B pair: 8 at 128 channels is about 100 k numbers, ~0.4 MB
    learning_rate: float = 1e-3  # AdamW; LoRA matrices take a larger rate than full fine-tuning
    batch_size: int = 8  # pictures per step (half from `preserve`, when given)
    min_snr: float = 5.0  # min-SNR-gamma loss weighting, as the built-in model was trained
    seed: int = 0  # the data and noise of step k come from seed and k: a resumed run continues the same sequence
    targets: tuple[str, ...] = TARGETS


@dataclass
class Training:
    """A training run you can watch and stop: `stop()` (from a button or a thread) ends it after the current step,
    keeping what was trained. `on_step(training)` is called after every step."""

    on_step: Callable[[Training], None] | None = None
    step: int = 0
    losses: list[float] = field(default_factory=list)
    stop_requested: bool = False

    def stop(self) -> None:
        self.stop_requested = True


@dataclass
class TrainedLora:
    """What `train_lora` made: the LoRA folder (pass it as `lora=`), the steps done, the loss of every step, and
    whether the run was stopped before its last step."""

    path: Path
    steps: int
    losses: list[float]
    stopped: bool = False
    seconds: float = 0.0

    @property
    def file(self) -> Path:
        return self.path / "pytorch_lora_weights.safetensors"


def _check_data(pictures, captions, name: str):
    from PIL import Image

    from .inputs import to_image

    if not isinstance(pictures, Sequence) or isinstance(pictures, (str, bytes)):
        raise TypeError(f"{name} pictures must be a list of pictures, not {type(pictures).__name__}")
    if not isinstance(captions, Sequence) or isinstance(captions, (str, bytes)):
        raise TypeError(f"{name} captions must be a list of strings, not {type(captions).__name__}")
    if len(pictures) != len(captions):
        raise ValueError(f"{name}: {len(pictures)} pictures but {len(captions)} captions; pass one caption each")
    images = [to_image(p, "picture") if not isinstance(p, Image.Image) else p.convert("RGB") for p in pictures]
    sizes = {im.size for im in images}
    if len(sizes) > 1:
        raise ValueError(f"{name} pictures have different sizes ({sorted(sizes)}); resize them to one size")
    return images, [arguments.text("caption", c) for c in captions]


def train_lora(pictures, captions, out: str | os.PathLike, *, model=None, steps: int = 500, preserve=None,
               config: LoraConfig | None = None, run: Training | None = None, progress: bool = True,
               checkpoint_every: int = 50, allow_pickle: bool = False) -> TrainedLora:
    """Train a LoRA on `pictures` (PIL images or arrays, all one size) and their `captions`, and write it to the
    folder `out` (`pytorch_lora_weights.safetensors`, diffusers' format). Returns a `TrainedLora`; pass its
    `path` as `lora=` to any task function.

    `model=None` is the built-in model; any local UNet model folder of the SD 1.5 family works too. `preserve` is
    an optional `(pictures, captions)` pair of what the model already draws well, trained on beside the new
    pictures so it keeps drawing them. The run checkpoints to `out/checkpoint.pt` every `checkpoint_every` steps
    and resumes from it when called again with the same `out`. `run=lora_training.Training()` can stop it; so can
    Ctrl-C / the notebook's interrupt button: both keep what was trained and write the LoRA.

    See `docs/lora.md` (and `imagegen_nb.tiny.stars` for teaching the built-in model a new shape).

    >>> import imagegen_nb as ig, tempfile
    >>> from imagegen_nb.tiny import stars
    >>> pictures, captions = stars.examples(2)
    >>> result = ig.train_lora(pictures, captions, tempfile.mkdtemp(), steps=2, progress=False)
    >>> result.steps, result.file.name
    (2, 'pytorch_lora_weights.safetensors')
    """
    import torch
    from tqdm.auto import tqdm

    # 1. Check every argument before any work.
    config = config or LoraConfig()
    if not isinstance(config, LoraConfig):
        raise TypeError(f"config must be a lora_training.LoraConfig, not {type(config).__name__}")
    if not isinstance(pictures, Sequence) or not pictures:
        raise ValueError("train_lora needs at least one picture and its caption")
    images, texts = _check_data(pictures, captions, "train_lora")
    keep = _check_data(*preserve, "preserve") if preserve is not None else ([], [])
    if preserve is not None and not keep[0]:
        raise ValueError("preserve is empty; pass None, or (pictures, captions) of what the model should keep")
    steps = arguments.integer("steps", steps, low=1, high=1_000_000)
    checkpoint_every = arguments.integer("checkpoint_every", checkpoint_every, low=1)
    for name in ("rank", "batch_size", "seed"):
        arguments.integer(f"config.{name}", getattr(config, name), low=0 if name == "seed" else 1)
    arguments.number("config.learning_rate", config.learning_rate, low=0, low_open=True)
    progress = arguments.flag("progress", progress)
    if run is not None and not isinstance(run, Training):
        raise TypeError(f"run must be a lora_training.Training or None, not {type(run).__name__}")
    run = run or Training()
    out = Path(out).expanduser()
    location, family = registry.resolve(model, allow_pickle=allow_pickle)
    if family.pipeline != "StableDiffusionPipeline":
        raise ValueError(f"train_lora trains UNet models of the SD 1.5 family (and the built-in one), not "
                         f"{family.name} models")
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()

    # 2. The model, in float32 on the CPU (or the GPU), frozen; LoRA layers on its UNet's attention.
    pipe = _load(location, allow_pickle)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    pipe.to(device)
    unet, vae = pipe.unet, pipe.vae
    for part in (unet, vae, pipe.text_encoder):
        part.requires_grad_(False)
    w, h = images[0].size
    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    if w % factor or h % factor:
        raise ValueError(f"pictures are {w}x{h}; this model needs sides that are multiples of {factor}")
    from peft import LoraConfig as PeftLoraConfig

    with torch.random.fork_rng(devices=[]):  # A's random start from the run's seed, the user's RNG left alone
        torch.manual_seed(config.seed)
        unet.add_adapter(PeftLoraConfig(r=config.rank, lora_alpha=config.rank, target_modules=list(config.targets),
                                        init_lora_weights=True))  # B = 0: step 0 is the base model
    params = [p for n, p in unet.named_parameters() if "lora_" in n]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=0.0)

    # 3. Clean latents x0 and text states, once: the VAE and text encoder are frozen.
    with torch.no_grad():
        x0, text = _encode(pipe, images, texts, device)
        x0_keep, text_keep = _encode(pipe, *keep, device) if keep[0] else (None, None)
    scheduler = _noise_schedule(pipe.scheduler)

    # 4. Resume from the checkpoint when there is one of this run.
    ckpt_path = out / CHECKPOINT
    wanted = {**asdict(config), "targets": list(config.targets), "pictures": len(images), "preserve": len(keep[0]),
              "size": [w, h]}
    start, losses = 0, []
    if ckpt_path.exists():
        state = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        if state.get("config") != wanted:
            raise ValueError(f"{ckpt_path} is the checkpoint of another run ({state.get('config')}), not of this one "
                             f"({wanted}); delete it, or train into another folder")
        _set_lora_state(unet, state["lora"])
        opt.load_state_dict(state["opt"])
        start, losses = int(state["step"]), [float(v) for v in state["losses"]]

    def save_checkpoint(step: int) -> None:
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save({"lora": _lora_state(unet), "opt": opt.state_dict(), "step": step, "losses": losses,
                    "config": wanted}, tmp)
        tmp.replace(ckpt_path)  # atomic: a stop during the save never leaves a broken checkpoint

    # 5. The training loop (Algorithm 1 of Ho et al. 2020, with the model's prediction type and min-SNR weights).
    stopped = False
    bar = tqdm(range(start, steps), initial=start, total=steps, desc="train_lora", disable=not progress, leave=False)
    unet.train()
    try:
        for step in bar:
            gen = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
            n_new = config.batch_size if x0_keep is None else max(1, config.batch_size // 2)
            pick = torch.randint(0, len(x0), (n_new,), generator=gen)
            x0_batch, states = x0[pick], text[pick]
            if x0_keep is not None:
                pick_keep = torch.randint(0, len(x0_keep), (config.batch_size - n_new,), generator=gen)
                x0_batch = torch.cat([x0_batch, x0_keep[pick_keep]])
                states = torch.cat([states, text_keep[pick_keep]])
            loss = _diffusion_loss(unet, scheduler, x0_batch, states, gen, config.min_snr)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            run.step, run.losses = step + 1, losses
            bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.4f}")
            if (step + 1) % checkpoint_every == 0:
                save_checkpoint(step + 1)
            if run.on_step is not None:
                run.on_step(run)
            if run.stop_requested and step + 1 < steps:
                stopped = True
                break
    except KeyboardInterrupt:  # the notebook's interrupt button: keep what was trained (the steps that finished)
        stopped = True
    finally:
        bar.close()
    done = len(losses)  # one loss per finished step, this run's and the resumed one's
    save_checkpoint(done)
    _save_lora(pipe, out)
    run.stop_requested = False
    return TrainedLora(out, done, losses, stopped=stopped or done < steps, seconds=time.time() - started)


def _load(location: str, allow_pickle: bool):
    import torch

    from .cache import quiet_diffusers

    with quiet_diffusers():
        from diffusers import StableDiffusionPipeline

        return StableDiffusionPipeline.from_pretrained(location, dtype=torch.float32,
                                                       use_safetensors=not allow_pickle or None)


def _encode(pipe, images, texts, device):
    """Scaled VAE latents (posterior means) and text-encoder states of a batch of pictures and captions."""
    from . import latents

    x0 = latents.encode(pipe.vae, latents.pixels(images))
    states, _ = pipe.encode_prompt(list(texts), device, 1, False)
    return x0, states


def _noise_schedule(model_scheduler):
    """The DDPM schedule the model was trained on, with what it needs set explicitly (a DDPM config built from
    another scheduler's keeps DDPM's own clip_sample=True default otherwise)."""
    from diffusers import DDPMScheduler

    cfg = model_scheduler.config
    return DDPMScheduler.from_config(cfg, clip_sample=False, thresholding=False,
                                     prediction_type=cfg.get("prediction_type", "epsilon"),
                                     rescale_betas_zero_snr=cfg.get("rescale_betas_zero_snr", False))


def _diffusion_loss(unet, scheduler, x0, states, gen, min_snr: float):
    """The model's own loss on one batch: x_t from random timesteps, its prediction against eps or v, weighted by
    min-SNR-gamma (for v on SNR + 1, so the pure-noise timestep of a zero-terminal-SNR schedule still trains)."""
    import torch

    n = x0.shape[0]
    t = torch.randint(0, scheduler.config.num_train_timesteps, (n,), generator=gen).to(x0.device)
    eps = torch.randn(x0.shape, generator=gen).to(x0.device)
    x_t = scheduler.add_noise(x0, eps, t)
    alpha_bar = scheduler.alphas_cumprod.to(x0.device)[t]
    snr = alpha_bar / (1 - alpha_bar)
    if scheduler.config.prediction_type == "v_prediction":
        target, weight = scheduler.get_velocity(x0, eps, t), torch.clamp(snr + 1, max=min_snr) / (snr + 1)
    else:
        target, weight = eps, torch.clamp(snr, max=min_snr) / snr
    pred = unet(x_t, t, states).sample
    return (weight * (pred - target).pow(2).mean(dim=(1, 2, 3))).mean()


def _lora_state(unet) -> dict:
    from peft import get_peft_model_state_dict

    return {k: v.detach().cpu().clone() for k, v in get_peft_model_state_dict(unet).items()}


def _set_lora_state(unet, state: dict) -> None:
    from peft import set_peft_model_state_dict

    set_peft_model_state_dict(unet, state)


def _save_lora(pipe, out: Path) -> None:
    from .cache import quiet_diffusers

    with quiet_diffusers():
        from diffusers import StableDiffusionPipeline
        from diffusers.utils import convert_state_dict_to_diffusers

        StableDiffusionPipeline.save_lora_weights(out, unet_lora_layers=convert_state_dict_to_diffusers(
            _lora_state(pipe.unet)), safe_serialization=True)
