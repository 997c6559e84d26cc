"""Train the built-in U-Net model on the shapes world: the VAE, then the text encoder with the UNet, then a ControlNet.

    python -m imagegen_nb.tiny.train                      # all phases, resuming from runs/tiny if stopped
    python -m imagegen_nb.tiny.train --phase unet --steps 6000
    python -m imagegen_nb.tiny.train --arch smoke --steps 20 --out /tmp/smoke   # a few steps of a tiny version

Every phase is seeded (the data and noise of step k come from seeds derived from k), checkpoints as it goes
(tiny.checkpoint) and resumes from its last checkpoint, so a run can be stopped and continued with the same command.
Uses CUDA when there is a GPU. The VAE learns to reconstruct pictures, their shapes' pixels weighted up. The
diffusion loss is DDPM's (Algorithm 1 of Ho et al. 2020): noise a clean latent x0 to
x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps and regress the noise eps (`prediction_type="epsilon"`,
the default) or v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x0 (`"v_prediction"`), weighted by min-SNR-5
(Hang et al. 2023). Growing saved weights into a larger architecture is tiny.surgery's; snapshots and the exported
pipeline folders are tiny.export's.

The defaults are not the shipped model's settings. They train a UNet without text FiLM (`--arch default`) that
regresses eps on SD 1.5's schedule, without side or binding labels: where the built-in model's history began. The
shipped UNet (`imagegen_nb/tiny/weights/sd`) has text FiLM and predicts v on the zero-terminal-SNR schedule. It is
not one run from these defaults but a chain of runs, each started from the last one's weights (the `history` in
its model card), and its last run (2,000 UNet steps) differed from the defaults in

    --arch film --set prediction_type=v_prediction --set zero_terminal_snr=true --set lr=2e-4 --set warmup=50
    --set sides=0.5 --set sides_first=0 --set binding=0.5 --set high_noise=0.25 --set high_noise_from=960
    --set category_weights=15,10,25,10,15,25 --set data_seed=10000000

docs/builtin-model/index.md ("What the shipped model is") tells the chain and has a command that continues it.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import latents
from . import binding, components, grounding, sides, world
from .checkpoint import Checkpoint
from .export import snapshot, write_pipeline
from .surgery import load_weights

log = logging.getLogger(__name__)


# The configuration: the defaults, what a run folder's config.json holds, and `--set FIELD=VALUE` overrides.

@dataclass
class TrainConfig:
    """How each phase trains. Where the shipped U-Net's last run differed from a default, the comment says
    "shipped:" (its model card has that run's whole config; see the module docstring)."""

    seed: int = 0
    vae_steps: int = 1500  # batch 16
    vae_batch: int = 16
    vae_lr: float = 1e-3
    vae_foreground: float = 10.0  # extra loss weight of pixels that differ from the background
    decoder_steps: int = 3000  # decoder-only fine-tuning (frozen encoder), beside UNet training
    decoder_l1: float = 0.5  # weight of the L1 term beside MSE in decoder fine-tuning
    vae_kl: float = 1e-8  # per-image KL sum against per-pixel MSE: just enough to keep latents near N(0, 1) scale
    vae_var: float = 0.01  # penalty on the posterior variance: a near-deterministic encoder
    unet_steps: int = 6000  # shipped: its last run, --steps 2000 from the run before
    batch: int = 64
    lr: float = 6e-4  # shipped: 2e-4, continuing trained weights
    warmup: int = 200  # shipped: 50
    lr_final: float = 0.1  # the learning rate falls along a cosine to this share of `lr` by the last step
    category_weights: tuple[float, ...] = world.CATEGORY_WEIGHTS  # how often each GenEval category is drawn;
    # shipped: 15,10,25,10,15,25 (single object, colours, counting, two objects, position, attribute binding)
    data_seed: int = 0  # added to each step's batch seed: a continued run sees pictures the first run did not
    # (shipped: 10000000)
    high_noise: float = 0.0  # share of timesteps drawn from high_noise_from up, where layout and binding are decided
    # (shipped: 0.25)
    high_noise_from: int = 500  # 500: the noisier half; ~960 on a zero-SNR schedule: where x_t shows no layout
    # (shipped: 960)
    grounding: float = 0.0  # weight of the attention-grounding loss (tiny.grounding): words attend to their objects
    sides: float = 0.0  # weight of the side-label loss (tiny.sides): each word's state says its object's side
    # (shipped: 0.5)
    sides_first: int = 2000  # with `sides`, text-only steps that teach the text encoder the sides before the UNet;
    # 0 keeps the encoder as loaded (continuing from a model that already learned them) and starts with the UNet
    # (shipped: 0, its encoder having learned the sides in an earlier run)
    sides_lr: float = 1e-3
    binding: float = 0.0  # weight of the binding-label loss (tiny.binding): a shape word's state says its colour
    # (shipped: 0.5)
    prediction_type: str = "epsilon"  # what the UNet predicts: "epsilon" (the noise) or "v_prediction" (shipped)
    zero_terminal_snr: bool = False  # the last timestep is pure noise (components.build_scheduler); needs v
    # (shipped: true)
    empty_caption: float = 0.1  # share of empty captions, so classifier-free guidance has an unconditional model
    min_snr: float = 5.0
    ema_decay: float = 0.999
    controlnet_steps: int = 1500  # shipped: --steps 600 from the previous canny ControlNet
    controlnet_lr: float = 5e-4
    controlnet_batch: int = 32  # where shapes go is a simpler lesson than what they are: more, smaller steps
    checkpoint_every: int = 100


def config_with(cls, saved: dict, overrides: list[str]):
    """A training config of the dataclass `cls`: its defaults, then what a run's config.json holds (`saved`), then
    `--set FIELD=VALUE` overrides, each parsed as its default's type (true/false, numbers, comma lists)."""
    fields = [f.name for f in dataclasses.fields(cls)]
    values = _fields(cls, saved)
    for item in overrides:
        name, sep, text = item.partition("=")
        if not sep or name not in fields:
            raise ValueError(f"--set {item!r}: expected FIELD=VALUE with FIELD one of {', '.join(fields)}")
        default = getattr(cls, name)
        if isinstance(default, bool):
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError(f"--set {item!r}: {name} is true or false")
            values[name] = text.lower() in ("true", "1")
        elif isinstance(default, tuple):
            values[name] = tuple(float(v) for v in text.split(","))
        else:
            values[name] = type(default)(float(text) if isinstance(default, int) else text)
    return cls(**values)


def _config(saved: dict, overrides: list[str]) -> TrainConfig:
    """The run's TrainConfig: defaults, then what the run's config.json holds, then `FIELD=VALUE` overrides."""
    return config_with(TrainConfig, saved, overrides)


def _saved(out: Path, part: str) -> dict:
    """One part ("arch" or "train") of the run in `out`'s config.json; empty for a new run."""
    saved = out / "config.json"
    return json.loads(saved.read_text()).get(part, {}) if saved.exists() else {}


def _fields(cls, saved: dict) -> dict:
    """The entries of `saved` that are fields of the dataclass `cls`, JSON's lists back as tuples."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: tuple(v) if isinstance(v, list) else v for k, v in saved.items() if k in names}


def _run_config(out: Path, overrides: list[str] = ()) -> TrainConfig:
    """The TrainConfig of the run in `out` (its config.json, if any), with `FIELD=VALUE` overrides."""
    return _config(_saved(out, "train"), list(overrides))


def _run_arch(out: Path, name: str | None) -> components.Architecture:
    """The architecture named on the command line, else the one the run in `out` was started with, else the
    default: a resumed run keeps its shapes without naming them again."""
    saved = _saved(out, "arch")
    if name is not None or not saved:
        return components.ARCHITECTURES[name or "default"]
    return components.Architecture(**_fields(components.Architecture, saved))


# The maths: pictures to latents, captions to token states, the losses, the noise, the learning rate, the EMA.

def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _load_vae(out: Path):
    from diffusers import AutoencoderKL

    return AutoencoderKL.from_pretrained(out / "vae").to(torch.float32)


def _encode_text(tokenizer, text_encoder, captions: list[str], device) -> torch.Tensor:
    ids = tokenizer(captions, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids.to(device)
    return text_encoder(ids)[0]


def drop_captions(captions: list[str], gen: torch.Generator, p: float) -> list[str]:
    """Replace a share `p` of captions with "", so the model also learns the unconditional prediction."""
    drop = torch.rand(len(captions), generator=gen) < p
    return ["" if d else c for c, d in zip(captions, drop.tolist())]


def _reconstruction_loss(recon: torch.Tensor, x: torch.Tensor, cfg: TrainConfig, l1: float = 0.0) -> torch.Tensor:
    """MSE with the shapes' pixels weighted up: they cover a tenth of the picture, so unweighted, the background's
    error dominates and shape colours are learned last. An `l1` share sharpens edges: MSE alone settles for a
    blurred edge, whose halo the checker reads as a rounded corner."""
    background = x[:, :, :1, :1]
    weight = 1 + cfg.vae_foreground * ((x - background).abs().amax(1, keepdim=True) > 0.05).float()
    error = (recon - x) ** 2 + l1 * (recon - x).abs()
    return (weight * error).mean() / weight.mean()


def _noised(scheduler, x0: torch.Tensor, gen: torch.Generator, min_snr: float, high_noise: float = 0.0,
            high_noise_from: int = 500):
    """x_t, the regression target (the noise eps, or v for a v-prediction schedule), the timesteps, and min-SNR-gamma
    loss weights for random timesteps; a share `high_noise` of them comes from `high_noise_from` up only (which
    object goes where is settled there, in the first sampling steps; on a zero-terminal-SNR schedule only the last
    few dozen timesteps leave x_t with no trace of the layout, and only there must the prompt alone decide it).

    Min-SNR-gamma weights each timestep's error on x0 by min(SNR, gamma). For v the weight is taken on SNR + 1
    instead, min(SNR + 1, gamma) / (SNR + 1): with a zero-terminal-SNR schedule SNR is 0 at the last timestep,
    where the model must draw the layout from the prompt alone, and min(SNR, gamma) would not train it there.
    """
    n, steps = x0.shape[0], scheduler.config.num_train_timesteps
    t = torch.randint(0, steps, (n,), generator=gen)
    if high_noise > 0:  # (no extra draw otherwise: runs without it stay reproducible)
        late = high_noise_from + t * (steps - high_noise_from) // steps
        t = torch.where(torch.rand(n, generator=gen) < high_noise, late, t)
    t = t.to(x0.device)
    eps = torch.randn(x0.shape, generator=gen).to(x0.device)
    x_t = scheduler.add_noise(x0, eps, t)
    alpha_bar = scheduler.alphas_cumprod.to(x0.device)[t]
    snr = alpha_bar / (1 - alpha_bar)
    if scheduler.config.prediction_type == "v_prediction":
        return x_t, scheduler.get_velocity(x0, eps, t), t, torch.clamp(snr + 1, max=min_snr) / (snr + 1)
    return x_t, eps, t, torch.clamp(snr, max=min_snr) / snr


def _scheduler(kind: str, cfg: TrainConfig):
    return components.build_scheduler(kind, prediction_type=cfg.prediction_type,
                                      zero_terminal_snr=cfg.zero_terminal_snr)


def lr_lambda(warmup: int, total: int, final: float = 1.0):
    """Linear warm-up, then a cosine fall to `final` times the peak at step `total` (a short run ends at a low
    learning rate, which the last steps' quality depends on more than on anything else but their number)."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return final + (1 - final) * 0.5 * (1 + np.cos(np.pi * progress))

    return factor


def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    with torch.no_grad():
        for e, p in zip(ema.parameters(), model.parameters()):
            e.lerp_(p, 1.0 - decay)


# The phases: each trains one part from its checkpoint on and writes it as a model folder.

def train_vae(out: Path, arch: components.Architecture, cfg: TrainConfig, steps: int | None = None) -> list[float]:
    device = _device()
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    vae = components.build_vae(arch).to(device)
    opt = torch.optim.AdamW(vae.parameters(), lr=cfg.vae_lr)
    ckpt, parts = Checkpoint(out / "vae.pt"), {"model": vae, "opt": opt}
    start, losses = ckpt.restore(parts)
    total = steps or cfg.vae_steps
    for step in tqdm(range(start, total), initial=start, total=total, desc="vae"):
        images, _, _ = world.batch(cfg.vae_batch, seed=10_000_000 + step, training=False)
        x = latents.pixels(images).to(device)
        posterior = vae.encode(x).latent_dist
        # Decode the posterior mean (diffusion trains on it) and push the posterior's variance towards zero, so
        # image-to-image, which samples the posterior, gets the same latents; a tiny KL keeps their scale sane.
        recon = vae.decode(posterior.mean).sample
        loss = (_reconstruction_loss(recon, x, cfg) + cfg.vae_var * posterior.var.mean()
                + cfg.vae_kl * posterior.kl().mean())
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
        losses.append(loss.item())
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == total:
            ckpt.store(parts, step + 1, losses)
    # Scale latents to unit variance, as Stable Diffusion's 0.18215 does for its VAE.
    with torch.no_grad():
        images, _, _ = world.batch(256, seed=1, training=False)
        z = vae.encode(latents.pixels(images).to(device)).latent_dist.mean
        vae.register_to_config(scaling_factor=float(1.0 / z.std()))
    vae.save_pretrained(out / "vae")
    return losses


def train_decoder(out: Path, arch: components.Architecture, cfg: TrainConfig, steps: int | None = None) -> list[float]:
    """Fine-tune the VAE's decoder alone, the encoder frozen: the latent space the UNet learned stays the same,
    so this can run beside (or after) UNet training and only sharpens the pictures."""
    device = _device()
    torch.manual_seed(cfg.seed)
    vae = _load_vae(out).to(device)
    vae.requires_grad_(False)
    trainable = list(vae.decoder.parameters()) + list(vae.post_quant_conv.parameters())
    for p in trainable:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(trainable, lr=cfg.vae_lr / 2)
    total = steps or cfg.decoder_steps
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg.warmup, total, cfg.lr_final))
    ckpt, parts = Checkpoint(out / "decoder.pt"), {"model": vae, "opt": opt, "sched": sched}
    start, losses = ckpt.restore(parts)
    for step in tqdm(range(start, total), initial=start, total=total, desc="decoder"):
        images, _, _ = world.batch(cfg.vae_batch, seed=30_000_000 + step, training=False)
        x = latents.pixels(images).to(device)
        with torch.no_grad():
            z = vae.encode(x).latent_dist.mean
        recon = vae.decode(z).sample
        loss = _reconstruction_loss(recon, x, cfg, l1=cfg.decoder_l1)
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step(); sched.step()
        losses.append(loss.item())
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == total:
            ckpt.store(parts, step + 1, losses)
    vae.save_pretrained(out / "vae_decoder")
    return losses


def _warn_if_schedule_differs(init_from: Path, cfg: TrainConfig) -> None:
    """Moving a model to another schedule is a choice (the shipped model's history has one); continuing it on
    another by forgetting a `--set` is a mistake that silently undoes its training, so say so."""
    path = init_from / "scheduler" / "scheduler_config.json"
    if not path.exists():  # a run folder, not an exported model: its config.json is the caller's to match
        return
    saved = json.loads(path.read_text())
    theirs = {"prediction_type": saved.get("prediction_type", "epsilon"),
              "zero_terminal_snr": bool(saved.get("rescale_betas_zero_snr", False))}
    ours = {"prediction_type": cfg.prediction_type, "zero_terminal_snr": cfg.zero_terminal_snr}
    if theirs != ours:
        sets = " ".join(f"--set {k}={str(v).lower()}" for k, v in theirs.items())
        log.warning("%s was trained with %s; this run trains with %s. To continue on its schedule, pass %s",
                    init_from, theirs, ours, sets)


def train_unet(out: Path, arch: components.Architecture, cfg: TrainConfig, steps: int | None = None,
               init_from: Path | None = None) -> list[float]:
    """Train the text encoder and UNet together. `init_from`, a model folder of the same architecture (such as the
    shipped one, which is `--arch film`) or of the same one without text FiLM (grown: tiny.surgery), gives the
    starting weights instead of random ones (and its VAE, if `out` has none); a checkpoint in `out` still wins."""
    device = _device()
    torch.manual_seed(cfg.seed)
    if init_from is not None and not (out / "vae").exists():
        shutil.copytree(init_from / "vae", out / "vae")  # the VAE whose latents that model was trained on
    vae = _load_vae(out).to(device).eval().requires_grad_(False)
    tokenizer = components.build_tokenizer(out / "tokenizer", arch)
    text_encoder = components.build_text_encoder(len(tokenizer), arch).to(device)
    unet = components.build_unet(arch).to(device)
    if init_from is not None:
        load_weights(text_encoder, init_from / "text_encoder"); load_weights(unet, init_from / "unet")
        _warn_if_schedule_differs(init_from, cfg)
    ema_te, ema_unet = copy.deepcopy(text_encoder).requires_grad_(False), copy.deepcopy(unet).requires_grad_(False)
    # word lessons (tiny.sides, tiny.binding): a probe reads a label from each word's state; its loss joins in
    lessons = {name: (module, weight) for name, module, weight in
               (("sides", sides, cfg.sides), ("binding", binding, cfg.binding)) if weight > 0}
    probes = {name: module.probe(arch.text_width).to(device) for name, (module, _) in lessons.items()}
    params = [*unet.parameters(), *text_encoder.parameters(),
              *(p for probe in probes.values() for p in probe.parameters())]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.01)
    total = steps or cfg.unet_steps
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg.warmup, total, cfg.lr_final))
    scheduler = _scheduler("ddpm", cfg)
    ckpt = Checkpoint(out / "unet.pt")
    parts = {"unet": unet, "te": text_encoder, "ema_unet": ema_unet, "ema_te": ema_te, "opt": opt, "sched": sched,
             **{_PROBE_KEYS[name]: probe for name, probe in probes.items()}}
    start, losses = ckpt.restore(parts)
    if "sides" in probes and start == 0 and cfg.sides_first > 0:
        trained = None
        if init_from is not None:  # a fresh encoder, taught to say what the trained one says, and the sides
            trained = copy.deepcopy(text_encoder).requires_grad_(False)
            text_encoder.load_state_dict(components.build_text_encoder(len(tokenizer), arch).state_dict())
        _teach_sides(tokenizer, text_encoder, probes["sides"], cfg, device, like=trained)
        ema_te.load_state_dict(text_encoder.state_dict())
    store = _record_attention(unet) if cfg.grounding > 0 else None
    grounded: list[float] = []
    taught: dict[str, list[float]] = {name: [] for name in lessons}
    bar = tqdm(range(start, total), initial=start, total=total, desc="unet")
    for step in bar:
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        images, captions, scenes = world.batch(cfg.batch, seed=cfg.data_seed + step, training=True,
                                               weights=cfg.category_weights)
        captions = drop_captions(captions, gen, cfg.empty_caption)
        with torch.no_grad():
            x0 = latents.encode(vae, latents.pixels(images))
        x_t, target, t, weight = _noised(scheduler, x0, gen, cfg.min_snr, cfg.high_noise, cfg.high_noise_from)
        text = _encode_text(tokenizer, text_encoder, captions, device)
        pred = unet(x_t, t, text).sample
        loss = (weight * (pred - target).pow(2).mean(dim=(1, 2, 3))).mean()
        for name, (module, weight) in lessons.items():
            labels = torch.from_numpy(module.targets(scenes, captions, tokenizer.model_max_length)).to(device)
            lesson = module.loss(probes[name], text, labels)
            taught[name].append(lesson.item())
            loss = loss + weight * lesson
        if store is not None:
            words, masks = grounding.targets(scenes, captions, tokenizer.model_max_length)
            g = grounding.loss(store, torch.from_numpy(words).to(device), torch.from_numpy(masks).to(device))
            store.clear()
            grounded.append(g.item())
            loss = loss + cfg.grounding * g
        opt.zero_grad(set_to_none=True); loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step(); sched.step()
        decay = min(cfg.ema_decay, (1 + step) / (10 + step))
        ema_update(ema_unet, unet, decay); ema_update(ema_te, text_encoder, decay)
        losses.append(loss.item())
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}",
                        **({"grounding": f"{np.mean(grounded[-50:]):.3f}"} if grounded else {}),
                        **{name: f"{np.mean(seen[-50:]):.3f}" for name, seen in taught.items() if seen})
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == total:
            ckpt.store(parts, step + 1, losses)
    ema_unet.save_pretrained(out / "unet")
    ema_te.save_pretrained(out / "text_encoder")
    return losses


_PROBE_KEYS = {"sides": "side_probe", "binding": "binding_probe"}  # their names in the unet.pt checkpoint


def _teach_sides(tokenizer, text_encoder, reader, cfg: TrainConfig, device, like=None) -> list[float]:
    """Train the text encoder alone on the side labels (tiny.sides) for `cfg.sides_first` steps of captions; with
    `like`, a trained text encoder, also to reproduce its token states (so a UNet trained on `like` still reads
    them). Returns the side losses.

    Why first, and why from a fresh encoder: the UNet can only learn to place a word's object by a side the token
    states already say; learned jointly from the start, the sides come after the UNet has settled on a layout that
    ignores them. The side loss sits at ln 2 (the relation word alone gives the axis) until the encoder starts to
    use word order, then falls to zero. A fresh encoder gets there in a few hundred steps; a trained one, whose
    states ignore word order, stayed at ln 2 for 1,500 steps. Text-only steps cost a fiftieth of a diffusion step.
    """
    opt = torch.optim.AdamW([*text_encoder.parameters(), *reader.parameters()], lr=cfg.sides_lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    losses: list[float] = []
    copied: list[float] = []
    bar = tqdm(range(cfg.sides_first), desc="sides")
    for step in bar:
        _, captions, scenes = world.batch(cfg.batch, seed=40_000_000 + step, training=True,
                                          weights=cfg.category_weights)
        captions = drop_captions(captions, gen, cfg.empty_caption)
        labels = torch.from_numpy(sides.targets(scenes, captions, tokenizer.model_max_length)).to(device)
        states = _encode_text(tokenizer, text_encoder, captions, device)
        loss = sides.loss(reader, states, labels)
        losses.append(loss.item())
        if like is not None:
            with torch.no_grad():
                target = _encode_text(tokenizer, like, captions, device)
            copy_error = (states - target).pow(2).mean() / target.pow(2).mean()  # a share of the states' size
            copied.append(copy_error.item())
            loss = loss + _COPY_WEIGHT * copy_error
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
        bar.set_postfix(sides=f"{np.mean(losses[-50:]):.3f}",
                        **({"copy": f"{np.mean(copied[-50:]):.4f}"} if copied else {}))
    return losses


_COPY_WEIGHT = 10.0  # copying the trained states is easy (1% error in 200 steps); weighted up, it stays that close


def _record_attention(unet) -> grounding.Store:
    """Make `unet`'s cross-attention layers hand their attention probabilities (with gradients) to a new store."""
    from ..attention_maps import AttentionRecorder

    store = grounding.Store()
    unet.set_attn_processor({name: AttentionRecorder(name, proc, store) for name, proc in unet.attn_processors.items()})
    return store


def train_controlnet(out: Path, arch: components.Architecture, cfg: TrainConfig,
                     steps: int | None = None, init_from: Path | None = None) -> list[float]:
    """A ControlNet on canny edge maps of the world, on top of the frozen UNet and text encoder. `init_from`, a
    ControlNet folder (such as the shipped `controlnet-canny`), gives the starting weights instead of the UNet's
    encoder; a checkpoint in `out` still wins."""
    from diffusers import UNet2DConditionModel
    from transformers import T5EncoderModel

    from ..preprocessors import canny

    device = _device()
    torch.manual_seed(cfg.seed)
    vae = _load_vae(out).to(device).eval().requires_grad_(False)
    tokenizer = components.build_tokenizer(out / "tokenizer", arch)
    text_encoder = T5EncoderModel.from_pretrained(out / "text_encoder").to(device).eval().requires_grad_(False)
    unet = UNet2DConditionModel.from_pretrained(out / "unet").to(device).eval().requires_grad_(False)
    controlnet = components.build_controlnet(unet, arch).to(device)
    if init_from is not None and load_weights(controlnet, init_from):
        # a ControlNet from before text FiLM takes the pooled prompt as its UNet learned to, as from_unet does
        controlnet.add_embedding.load_state_dict(unet.add_embedding.state_dict())
    ema = copy.deepcopy(controlnet).requires_grad_(False)
    opt = torch.optim.AdamW(controlnet.parameters(), lr=cfg.controlnet_lr)
    total = steps or cfg.controlnet_steps
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg.warmup, total, cfg.lr_final))
    scheduler = _scheduler("ddpm", cfg)
    ckpt, parts = Checkpoint(out / "controlnet.pt"), {"model": controlnet, "ema": ema, "opt": opt, "sched": sched}
    start, losses = ckpt.restore(parts)
    bar = tqdm(range(start, total), initial=start, total=total, desc="controlnet")
    for step in bar:
        gen = torch.Generator().manual_seed(cfg.seed * 7_000_003 + step)
        images, captions, _ = world.batch(cfg.controlnet_batch, seed=20_000_000 + step, training=True)
        captions = drop_captions(captions, gen, cfg.empty_caption)
        edges = np.stack([np.asarray(canny(im)) for im in images])
        cond = torch.from_numpy(edges).to(device).permute(0, 3, 1, 2).float() / 255.0
        with torch.no_grad():
            x0 = latents.encode(vae, latents.pixels(images))
            text = _encode_text(tokenizer, text_encoder, captions, device)
        x_t, target, t, weight = _noised(scheduler, x0, gen, cfg.min_snr)
        down, mid = controlnet(x_t, t, text, controlnet_cond=cond, return_dict=False)
        pred = unet(x_t, t, text, down_block_additional_residuals=down, mid_block_additional_residual=mid).sample
        loss = (weight * (pred - target).pow(2).mean(dim=(1, 2, 3))).mean()
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step(); sched.step()
        ema_update(ema, controlnet, min(cfg.ema_decay, (1 + step) / (10 + step)))
        losses.append(loss.item())
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == total:
            ckpt.store(parts, step + 1, losses)
    ema.save_pretrained(out / "controlnet")
    return losses


def export(out: Path, dest: Path, *, fp16: bool = True, scheduler: str = "dpm") -> Path:
    """The export phase: write the run's trained parts as a `StableDiffusionPipeline` folder `dest / "sd"` (and
    `controlnet-canny` beside it; tiny.export.write_pipeline), sampling with `scheduler` ("dpm" or "ddpm") on the
    noise schedule and prediction type of the run's `config.json`. Returns the pipeline folder."""
    return write_pipeline(out, dest, _scheduler(scheduler, _run_config(out)), fp16=fp16)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m imagegen_nb.tiny.train", description=__doc__.split("\n")[0])
    phases = ["all", "vae", "unet", "decoder", "snapshot", "controlnet", "export"]
    parser.add_argument("--phase", choices=phases, default="all")
    parser.add_argument("--out", type=Path, default=Path("runs/tiny"), help="checkpoints and trained parts")
    parser.add_argument("--steps", type=int, default=None, help="override the phase's step count")
    parser.add_argument("--arch", choices=list(components.ARCHITECTURES), default=None,
                        help="default: the shipped model's sizes without text FiLM; film: the shipped model's, with "
                             "text FiLM (components.Architecture.text_film); smoke: a tiny one for trying the script "
                             "(a resumed run keeps its own)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (1 leaves a core free on a 2-core box)")
    parser.add_argument("--export-to", type=Path, default=None, help="write the pipeline folders here at the end")
    parser.add_argument("--init-from", type=Path, default=None,
                        help="start from these weights: for the unet phase a model folder (e.g. the shipped "
                             "model's sd), for the controlnet phase a ControlNet folder (e.g. its controlnet-canny)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a TrainConfig field, e.g. --set lr=3e-4 --set category_weights=10,10,25,5,40,10;"
                             " kept in the run's config.json, so resuming the run needs no --set again")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    torch.set_num_threads(args.threads)
    arch = _run_arch(args.out, args.arch)
    cfg = _run_config(args.out, args.set)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "config.json").write_text(json.dumps({"arch": asdict(arch), "train": asdict(cfg)}, indent=2))
    started = time.time()
    phases = ["vae", "unet", "controlnet"] if args.phase == "all" else [args.phase]
    if args.phase == "snapshot":
        log.info("snapshot of step %d written", snapshot(args.out, arch))
    for phase in phases:
        fn = {"vae": train_vae, "unet": train_unet, "decoder": train_decoder,
              "controlnet": train_controlnet}.get(phase)
        if fn is not None:
            # --init-from names one phase's weights: a model folder for unet, a ControlNet folder for controlnet
            extra = {"init_from": args.init_from} if phase == "unet" or args.phase == "controlnet" else {}
            losses = fn(args.out, arch, cfg, args.steps, **extra)
            log.info("%s: %d steps, last loss %.4f", phase, len(losses), np.mean(losses[-50:]))
    if args.export_to is not None:
        export(args.out, args.export_to)
    log.info("done in %.0f s", time.time() - started)


if __name__ == "__main__":
    main()
