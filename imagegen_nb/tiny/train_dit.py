"""Train the built-in transformer model (tiny.dit) on the shapes world by rectified flow.

    python -m imagegen_nb.tiny.train_dit --out runs/dit                    # train; the same command resumes
    python -m imagegen_nb.tiny.train_dit --out runs/dit --export-to imagegen_nb/tiny/weights/dit --export-only
    python -m imagegen_nb.tiny.train_dit --out /tmp/smoke --arch smoke --steps 20 --batch 8

The objective (rectified flow, Liu et al. 2022; with SD3's logit-normal noise levels, Esser et al. 2024): for a
clean latent x0 and noise eps ~ N(0, I), at a noise level sigma = sigmoid(u), u ~ N(0, 1),

    x_sigma = (1 - sigma) x0 + sigma eps,        target = x0 - eps,        timestep input = 1 - sigma,

and the loss is the mean squared error between the transformer's output and the target. The timestep and the sign
are the ones `ZImagePipeline` uses (see tiny.dit). Optionally, linear probes on the context refiner's word states
learn each object word's side (tiny.sides) and bound colour or shape (tiny.binding), and their losses join in.

Data come from tiny.train's code: the same world, captions, held-out pairs and caption dropping. The data and noise
of step k come from seeds derived from k, and the checkpoint (every `checkpoint_every` steps and on SIGINT/SIGTERM,
written to a temporary file and renamed) holds the model, its EMA, the optimizer, the step and the RNG states, so a
stopped run continues with the same command and ends where an unbroken one would.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import latents
from . import binding, dit, sides, world
from .train import config_with, drop_captions, ema_update, lr_lambda

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """How the transformer model trains."""

    seed: int = 0
    steps: int = 20_000  # where the run stops; a stopped run is continued with the same command
    batch: int = 32
    lr: float = 3e-4
    warmup: int = 200
    lr_final: float = 1.0  # share of lr reached along a cosine at `steps` (1: constant after warm-up)
    weight_decay: float = 0.01
    ema_decay: float = 0.999
    logit_mean: float = 0.0  # sigma = sigmoid(u), u ~ N(logit_mean, logit_std^2): SD3's logit-normal levels
    logit_std: float = 1.0
    empty_caption: float = 0.1  # share of empty captions, so guidance has an unconditional model
    category_weights: tuple[float, ...] = world.CATEGORY_WEIGHTS
    data_seed: int = 0  # added to each step's batch seed: a continued run sees pictures the first run did not
    sides: float = 0.0  # weight of the side-label loss on the context refiner's word states (tiny.sides)
    binding: float = 0.0  # weight of the binding-label loss on them (tiny.binding)
    grad_clip: float = 1.0
    checkpoint_every: int = 100


LESSONS = {"sides": sides, "binding": binding}  # word lessons: a linear probe reads a label from each word's state


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def sample_sigmas(n: int, gen: torch.Generator, cfg: TrainConfig) -> torch.Tensor:
    """Noise levels sigma = sigmoid(u), u ~ N(logit_mean, logit_std^2): most of them near the middle, where the
    velocity is hardest to predict (SD3's logit-normal sampling)."""
    return torch.sigmoid(cfg.logit_mean + cfg.logit_std * torch.randn(n, generator=gen))


def flow_pair(x0: torch.Tensor, gen: torch.Generator, cfg: TrainConfig):
    """x_sigma = (1 - sigma) x0 + sigma eps, the target x0 - eps, and sigma, for a batch of clean latents."""
    sigma = sample_sigmas(x0.shape[0], gen, cfg).to(x0.device)
    eps = torch.randn(x0.shape, generator=gen).to(x0.device)
    s = sigma.view(-1, 1, 1, 1)
    return (1 - s) * x0 + s * eps, x0 - eps, sigma


class _RefinedWords:
    """Keeps the context refiner's output (the word states the joint layers read) for the word lessons."""

    def __init__(self, transformer):
        self.states = None
        self.handle = transformer.context_refiner[-1].register_forward_hook(self._keep)

    def _keep(self, module, args, output):
        self.states = output


class Trainer:
    """The models, optimizer and data of one run; `step()` trains one batch, `state()`/`load()` checkpoint it."""

    def __init__(self, out: Path, arch: dit.Architecture, cfg: TrainConfig, init_from: Path | None = None):
        self.out, self.arch, self.cfg = out, arch, cfg
        self.device = _device()
        torch.manual_seed(cfg.seed)
        self.vae_folder = str((init_from / "vae").resolve()) if init_from is not None else str(dit.vae_folder())
        self.vae = dit.load_vae(self.vae_folder).to(self.device).eval().requires_grad_(False)
        self.tokenizer = dit.build_tokenizer(out / "tokenizer", arch)
        self.text_encoder = dit.build_text_encoder(len(self.tokenizer), arch).to(self.device)
        self.transformer = dit.build_transformer(arch).to(self.device)
        if init_from is not None:
            _load_folder_weights(self.text_encoder, init_from / "text_encoder")
            _load_folder_weights(self.transformer, init_from / "transformer")
        self.ema_text_encoder = copy.deepcopy(self.text_encoder).requires_grad_(False)
        self.ema_transformer = copy.deepcopy(self.transformer).requires_grad_(False)
        self.lessons = {name: module for name, module in LESSONS.items() if getattr(cfg, name) > 0}
        self.probes = torch.nn.ModuleDict({name: module.probe(arch.dim) for name, module in self.lessons.items()})
        self.probes.to(self.device)
        self.words = _RefinedWords(self.transformer) if self.lessons else None
        self.params = [p for m in (self.transformer, self.text_encoder, self.probes) for p in m.parameters()]
        self.opt = torch.optim.AdamW(self.params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.lr_factor = lr_lambda(cfg.warmup, cfg.steps, cfg.lr_final)
        self.step_count = 0
        self.losses: list[float] = []
        self.taught: dict[str, list[float]] = {name: [] for name in self.lessons}

    def step(self) -> float:
        """One optimizer step on the batch of step `step_count` (its data and noise are seeded by that number)."""
        cfg, k = self.cfg, self.step_count
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + k)
        images, captions, scenes = world.batch(cfg.batch, seed=cfg.data_seed + k, training=True,
                                               weights=cfg.category_weights)
        captions = drop_captions(captions, gen, cfg.empty_caption)
        with torch.no_grad():
            x0 = latents.encode(self.vae, latents.pixels(images))
        x_t, target, sigma = flow_pair(x0, gen, cfg)
        cap_feats = dit.encode_prompts(self.tokenizer, self.text_encoder, captions)
        pred = dit.predict(self.transformer, x_t, sigma, cap_feats)
        flow_loss = (pred - target).pow(2).mean()
        loss = flow_loss
        for name, module in self.lessons.items():
            labels = torch.from_numpy(module.targets(scenes, captions, self.arch.max_tokens)).to(self.device)
            states = self.words.states[:, :self.arch.max_tokens]  # padded to >= 32 tokens; token k is word k
            lesson = module.loss(self.probes[name], states, labels[:, :states.shape[1]])
            self.taught[name].append(lesson.item())
            loss = loss + getattr(cfg, name) * lesson
        for group in self.opt.param_groups:
            group["lr"] = float(cfg.lr * self.lr_factor(k))  # a plain float: checkpoints load with weights_only
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip)
        self.opt.step()
        decay = min(cfg.ema_decay, (1 + k) / (10 + k))
        ema_update(self.ema_transformer, self.transformer, decay)
        ema_update(self.ema_text_encoder, self.text_encoder, decay)
        self.step_count += 1
        self.losses.append(flow_loss.item())
        return self.losses[-1]

    @torch.no_grad()
    def validation_loss(self, batch: int = 64, seed: int = 987_654_321, ema: bool = True) -> float:
        """The flow loss on one fixed batch of held-in pictures, captions and noise (the same for every call), of the
        EMA model (or the trained one, `ema=False`): a steadier measure of progress than the training losses."""
        gen = torch.Generator().manual_seed(seed)
        images, captions, _ = world.batch(batch, seed=seed, training=True, weights=self.cfg.category_weights)
        x0 = latents.encode(self.vae, latents.pixels(images))
        x_t, target, sigma = flow_pair(x0, gen, self.cfg)
        text_encoder, transformer = ((self.ema_text_encoder, self.ema_transformer) if ema
                                     else (self.text_encoder, self.transformer))
        pred = dit.predict(transformer, x_t, sigma, dit.encode_prompts(self.tokenizer, text_encoder, captions))
        return (pred - target).pow(2).mean().item()

    def state(self) -> dict:
        """Everything a resumed run needs, as tensors and plain Python values (loadable with weights_only=True)."""
        return {"step": self.step_count, "losses": list(self.losses), "taught": {k: list(v) for k, v in
                                                                              self.taught.items()},
                "arch": _plain(asdict(self.arch)), "config": _plain(asdict(self.cfg)), "vae_folder": self.vae_folder,
                "transformer": self.transformer.state_dict(), "text_encoder": self.text_encoder.state_dict(),
                "ema_transformer": self.ema_transformer.state_dict(),
                "ema_text_encoder": self.ema_text_encoder.state_dict(),
                "probes": self.probes.state_dict(), "opt": self.opt.state_dict(),
                "torch_rng": torch.get_rng_state(),
                **({"cuda_rng": torch.cuda.get_rng_state_all()} if torch.cuda.is_available() else {})}

    def load(self, state: dict) -> None:
        for name in ("transformer", "text_encoder", "ema_transformer", "ema_text_encoder", "probes", "opt"):
            getattr(self, name).load_state_dict(state[name])
        self.step_count, self.losses = state["step"], list(state["losses"])
        self.taught = {name: list(state.get("taught", {}).get(name, [])) for name in self.lessons}
        torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        torch.save(self.state(), tmp)
        os.replace(tmp, path)  # atomic: an interrupted save never leaves a broken checkpoint


def _plain(d: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def _load_folder_weights(model: torch.nn.Module, folder: Path) -> None:
    """Copy the weights of an exported model folder into `model`, which must have the same architecture."""
    from safetensors.torch import load_file

    (file,) = folder.glob("*.safetensors")
    state = {k: v.float() for k, v in load_file(file).items()}
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    wrong = [k for k in state if k not in own or own[k].shape != state[k].shape]
    if missing or wrong:
        raise ValueError(f"{folder} does not fit this architecture: {len(missing)} weights missing (e.g. "
                         f"{missing[:2]}), {len(wrong)} unexpected or of another shape (e.g. {wrong[:2]}); pass the "
                         "--arch it was trained with (its training.json says)")
    model.load_state_dict(state)


def checkpoint_path(out: Path) -> Path:
    return out / "dit.pt"


def train(out: Path, arch: dit.Architecture, cfg: TrainConfig, *, init_from: Path | None = None,
          progress: bool = True, stop_after: int | None = None) -> Trainer:
    """Train until `cfg.steps` (or `stop_after` more steps), resuming from `out`'s checkpoint if there is one.
    SIGINT and SIGTERM end the run after the current step, with a checkpoint."""
    out.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(out, arch, cfg, init_from=init_from)
    ckpt = checkpoint_path(out)
    if ckpt.exists():
        trainer.load(torch.load(ckpt, map_location="cpu", weights_only=True))
        log.info("resumed %s at step %d", ckpt, trainer.step_count)
    stop = {"signal": None}

    def _stop(signum, frame):
        stop["signal"] = signum

    handlers = {}
    if _in_main_thread():
        handlers = {s: signal.signal(s, _stop) for s in (signal.SIGINT, signal.SIGTERM)}
    end = cfg.steps if stop_after is None else min(cfg.steps, trainer.step_count + stop_after)
    try:
        bar = tqdm(total=end, initial=trainer.step_count, desc="dit", disable=not progress, mininterval=5.0)
        while trainer.step_count < end and stop["signal"] is None:
            trainer.step()
            bar.update(1)
            if trainer.step_count % 10 == 0:  # (a refresh every step would write a line per step to a log file)
                bar.set_postfix(loss=f"{np.mean(trainer.losses[-100:]):.4f}", refresh=False,
                                **{n: f"{np.mean(v[-100:]):.3f}" for n, v in trainer.taught.items() if v})
            if trainer.step_count % cfg.checkpoint_every == 0:
                trainer.save(ckpt)
        bar.close()
        trainer.save(ckpt)
        if stop["signal"] is not None:
            log.info("stopped by signal %d at step %d; checkpoint written", stop["signal"], trainer.step_count)
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
    return trainer


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m imagegen_nb.tiny.train_dit", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="run folder: checkpoint dit.pt and config.json")
    parser.add_argument("--steps", type=int, default=None, help="train until this step (default: the config's)")
    parser.add_argument("--batch", type=int, default=None, help="pictures per step (default: the config's, 32)")
    parser.add_argument("--arch", choices=list(dit.ARCHITECTURES), default=None,
                        help="default: the shipped model's; smoke: a tiny one (a resumed run keeps its own)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (1 leaves a core free on a 2-core box)")
    parser.add_argument("--init-from", type=Path, default=None,
                        help="start from an exported ZImagePipeline folder of the same architecture (e.g. "
                             "imagegen_nb/tiny/weights/dit); a checkpoint in --out still wins")
    parser.add_argument("--export-to", type=Path, default=None, help="write a ZImagePipeline folder here at the end")
    parser.add_argument("--shift", type=float, default=1.0, help="the exported scheduler's sigma shift")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a TrainConfig field, e.g. --set lr=1e-4 --set sides=0.5; kept in the run's "
                             "config.json, so resuming needs no --set again")
    parser.add_argument("--export-only", action="store_true",
                        help="write --export-to from the run's latest checkpoint without training (safe while the "
                             "run goes on)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    if args.export_only:
        if args.export_to is None:
            parser.error("--export-only needs --export-to FOLDER")
        dit.export(checkpoint_path(args.out), args.export_to, shift=args.shift)
        log.info("exported %s to %s", checkpoint_path(args.out), args.export_to)
        return
    torch.set_num_threads(args.threads)
    saved = json.loads((args.out / "config.json").read_text()) if (args.out / "config.json").exists() else {}
    if args.arch is not None or "arch" not in saved:
        arch = dit.ARCHITECTURES[args.arch or "default"]
    else:
        arch = dit.Architecture(**{k: tuple(v) if isinstance(v, list) else v for k, v in saved["arch"].items()})
    overrides = list(args.set) + ([f"steps={args.steps}"] if args.steps is not None else []) + (
        [f"batch={args.batch}"] if args.batch is not None else [])
    cfg = config_with(TrainConfig, saved.get("train", {}), overrides)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "config.json").write_text(json.dumps({"arch": _plain(asdict(arch)), "train": _plain(asdict(cfg))},
                                                     indent=2) + "\n")
    started = time.time()
    trainer = train(args.out, arch, cfg, init_from=args.init_from, progress=not args.no_progress)
    log.info("step %d, loss (last 100) %.4f, %.0f s", trainer.step_count, np.mean(trainer.losses[-100:] or [0.0]),
             time.time() - started)
    if args.export_to is not None:
        dit.export(checkpoint_path(args.out), args.export_to, shift=args.shift)
        log.info("exported to %s", args.export_to)


if __name__ == "__main__":
    main()
