"""Lesson: what the network should predict. Clean data x0 lie near a low-dimensional manifold; the noise eps and the
flow's velocity v = eps - x0 fill every one of the D dimensions. A network narrower than D can still output x0, but
not eps or v (Li & He 2025, "Back to Basics: Let Denoising Generative Models Denoise", the JiT paper).

**The toy** (the paper's toy experiment, rebuilt small enough for a CPU). A 2-D spiral z is buried in D dimensions by
a fixed random matrix P (D x 2) with orthonormal columns, x0 = P z: whatever D is, the data span a plane. One small
MLP (5 linear layers, 64 SiLU units wide, t as one more input; the paper's is a 5-layer ReLU MLP 256 wide) is
trained on the flow path of the built-in DiT,

    x_t = (1 - t) x0 + t eps,   eps ~ N(0, I_D),   t ~ U(0, 1),   v = d x_t / dt = eps - x0,

to output x0 ("x"), eps ("eps") or v ("v"). **Every target is trained with the same loss, the v-loss**: the output
is turned into a velocity and its squared error is taken (JiT's own choice: x-prediction with a v-loss, the paper's
Algorithm 1; here every target gets that loss, so only the target differs):

    x:    v_pred = (x_t - x_pred) / t            v_pred - v = (x0 - x_pred) / t
    eps:  v_pred = (eps_pred - x_t) / (1 - t)    v_pred - v = (eps_pred - eps) / (1 - t)
    v:    v_pred = the output                    loss = mean over batch and dimensions of (v_pred - v)^2

with each divisor clipped at `t_min` = 0.05 as JiT clips its own (its t_eps), in training and in sampling. The
targets' networks start from the same weights and see the same batches of data, noise and t. Sampling converts the
output the same way and integrates dx/dt = v_pred from pure noise at t = 1 to t = 0 with Euler steps.

**What is measured.** The samples are projected back to the plane, z = P^T x. `distance` is the mean distance from
each to the nearest of 5,000 fresh true points (true points themselves score about 0.005; the spiral's radius is
about 1); `coverage` is the reverse, from each true point to the nearest sample (it grows when a part of the
spiral is left empty); `off_manifold` is the mean of ||x - P P^T x||, how far the samples stand off the plane.

**What the figure shows** (the defaults, 800 training steps; the same picture for other seeds). x-prediction's
samples land on the spiral at every D from 2 to 512, about as close at 512 as at 2. v-prediction is as good as x at
D = 2, already blurred at D = 8, and from D = 32 on a cloud over the whole panel and beyond. eps-prediction is
blurred already at D = 2, where nothing is hidden (under the v-loss its error is multiplied by 1 / (1 - t), up to
20 near pure noise, so its training is spent on the noisiest times), and from D = 32 its samples land tens of
units away. Off the plane the same order holds: x's residual stays below 1 while v's and eps's grow with D to tens
and about a thousand. In this short training even the best runs leave the spiral's innermost turn thin.

**Why x wins.** The first layer squeezes the D inputs into 64 numbers and the last layer maps 64 numbers to D
outputs, so every output the network can make lies in a 64-dimensional (affine) subspace of R^D. x0 needs 2 of
those dimensions: the in-plane part of x_t and t say all there is to say. eps and v are full-dimensional, so the
network has to carry the noise's D coordinates from its input to its output along with the spiral; above D = 64
most of them cannot pass at all, and the failure starts well before (v at D = 8, eps by D = 32). In exact
arithmetic the three targets are interchangeable (each follows from another and x_t); what differs is what a
network of limited width can represent. JiT takes this to pixels: a plain ViT reading 16x16x3 = 768-number patches
and predicting x (`dimensions` sets its numbers beside the built-in models').

>>> from imagegen_nb.teach import prediction
>>> r = prediction.toy(dims=(32,), targets=("x", "eps"), steps=100)  # a short run: already the effect
>>> sorted(r), r["x", 32].distance < 1 < r["eps", 32].distance
([('eps', 32), ('x', 32)], True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["DIMS", "PAPER", "TARGETS", "Prediction", "PredictionTable", "ToyConfig", "ToyRun", "dimensions", "figure",
           "spiral", "toy"]

DIMS = (2, 8, 32, 128, 512)  # the ambient dimensions D of the figure: from the data's own 2 to 8 x the width
TARGETS = ("x", "eps", "v")  # what the network outputs: the clean point, the noise, the velocity eps - x0


@dataclass(frozen=True)
class ToyConfig:
    """The toy's network and training; the same for every target and every D."""

    hidden: int = 64  # units in each hidden layer: narrower than the largest D (the paper: 256 below D = 512)
    layers: int = 5  # linear layers, SiLU between them (the paper: a 5-layer ReLU MLP)
    batch: int = 128  # training points per step (fresh spiral points, fresh noise, fresh t each step)
    lr: float = 5e-3  # Adam's learning rate, falling to 0 on a cosine over the training steps
    t_min: float = 0.05  # the divisors t and 1 - t of the conversions are clipped here (JiT's t_eps)
    samples: int = 1000  # points sampled per run
    reference: int = 5000  # true points the distances are measured to
    noise: float = 0.03  # the spiral's thickness (std of the Gaussian blur on the curve)


@dataclass
class ToyRun:
    """One trained network of the toy: its target, its D, and how close its samples came to the data."""

    target: str  # "x", "eps" or "v"
    D: int  # the ambient dimension
    distance: float  # mean distance in the plane from each projected sample P^T x to the nearest true point
    off_manifold: float  # mean ||x - P P^T x||: how far the samples stand off the data's plane
    coverage: float  # the other way round: mean distance from each true point to the nearest projected sample
    loss: float  # the v-loss over the last tenth of training (its scale differs by target: see the module text)
    samples: Any  # (samples, 2) float32 numpy array: the samples projected to the plane, P^T x
    seconds: float  # this run's share of the training and sampling time

    @property
    def inside(self) -> float:
        """The fraction of projected samples within 1.5 of the origin, where all the data lie."""
        return float((np.abs(self.samples) <= 1.5).all(axis=1).mean())


def spiral(n: int, *, seed: int = 0, noise: float = ToyConfig.noise):
    """`n` points of the toy's 2-D data as a (n, 2) float32 numpy array: a spiral of 1.1 turns, radius about 1,
    blurred by Gaussian noise of std `noise`, drawn from `seed`.

    >>> from imagegen_nb.teach import prediction
    >>> z = prediction.spiral(1000)
    >>> z.shape, bool(abs(z).max() < 1.3)
    ((1000, 2), True)
    """
    import torch

    from .. import arguments

    n = arguments.integer("n", n, low=1)
    return _spiral(n, torch.Generator().manual_seed(int(seed)), noise).numpy()


def _spiral(n: int, generator, noise: float):
    import torch

    u = torch.rand(n, generator=generator)
    theta = 2.2 * math.pi * torch.sqrt(u) + 0.3 * math.pi  # sqrt: even density along the curve's length
    r = 1.1 * theta / (2.5 * math.pi)
    z = torch.stack([r * torch.cos(theta), r * torch.sin(theta)], 1)
    return z + noise * torch.randn(n, 2, generator=generator)


def _check(dims, targets, steps, num_inference_steps, config) -> tuple[list[int], list[str], int, int]:
    from .. import arguments

    if isinstance(dims, (int, np.integer)):
        dims = (dims,)
    dims = [arguments.integer("dims", d, low=2) for d in dims]
    if not dims:
        raise ValueError("dims must name at least one ambient dimension D >= 2, e.g. dims=(2, 512)")
    if isinstance(targets, str):
        targets = (targets,)
    targets = list(targets)
    for t in targets:
        if t not in TARGETS:
            raise ValueError(f"targets: unknown prediction target {t!r}; choose from {', '.join(TARGETS)}")
    if not targets:
        raise ValueError(f"targets must name at least one of {', '.join(TARGETS)}")
    if len(set(targets)) < len(targets):
        raise ValueError(f"targets names one twice: {targets!r}")
    if not isinstance(config, ToyConfig):
        raise TypeError(f"config must be a prediction.ToyConfig, not {type(config).__name__}")
    return (dims, targets, arguments.integer("steps", steps, low=1),
            arguments.integer("num_inference_steps", num_inference_steps, low=1))


def _init(sizes, copies: int, generator):
    """Weights (copies, in, out) and biases (copies, 1, out) of an MLP, as nn.Linear draws them
    (U(-1/sqrt(in), 1/sqrt(in))), and the same draw for every copy: each target starts from the same network."""
    import torch

    params = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        bound = 1 / math.sqrt(n_in)
        w = (torch.rand(n_in, n_out, generator=generator) * 2 - 1) * bound
        b = (torch.rand(1, n_out, generator=generator) * 2 - 1) * bound
        params += [w.expand(copies, -1, -1).clone().requires_grad_(), b.expand(copies, -1, -1).clone().requires_grad_()]
    return params


def _forward(params, x_t, t):
    """Every target's network at once: x_t (targets or 1, B, D) and t (B, 1) -> outputs (targets, B, D)."""
    import torch

    h = torch.cat([x_t, t.expand(x_t.shape[0], -1, -1)], -1)  # t is one more input
    for i in range(0, len(params), 2):
        h = torch.matmul(h, params[i]) + params[i + 1]  # (1 or targets, B, in) @ (targets, in, out)
        if i + 2 < len(params):
            h = torch.nn.functional.silu(h)
    return h


def _velocity(out, x_t, t, kinds, t_min: float):
    """Each target's output turned into the velocity v_pred (the formulas of the module text). `out` is
    (targets, B, D); `x_t` is (targets, B, D) or (1, B, D), shared."""
    import torch

    rows = []
    for k, kind in enumerate(kinds):
        x = x_t[k if x_t.shape[0] > 1 else 0]
        if kind == "x":  # x_pred -> v_pred = (x_t - x_pred) / t
            rows.append((x - out[k]) / t.clamp(min=t_min))
        elif kind == "eps":  # eps_pred -> v_pred = (eps_pred - x_t) / (1 - t)
            rows.append((out[k] - x) / (1 - t).clamp(min=t_min))
        else:  # v_pred is the output
            rows.append(out[k])
    return torch.stack(rows)


def _train_and_sample(D: int, targets: list[str], steps: int, num_inference_steps: int, seed: int,
                      config: ToyConfig) -> dict[tuple[str, int], ToyRun]:
    import time

    import torch

    start = time.perf_counter()
    # 1. The embedding: a random D x 2 matrix with orthonormal columns, fixed by the seed and D
    g_embed = torch.Generator().manual_seed(seed * 1_000_003 + D)
    P = torch.linalg.qr(torch.randn(D, 2, generator=g_embed))[0] if D > 2 else torch.eye(2)
    # 2. One network per target, all from the same initial weights, trained on the same batches
    g = torch.Generator().manual_seed(seed)
    sizes = [D + 1] + [config.hidden] * (config.layers - 1) + [D]
    params = _init(sizes, len(targets), g)
    optimizer = torch.optim.Adam(params, lr=config.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: 0.5 * (1 + math.cos(math.pi * i / steps)))
    tail = max(1, steps // 10)
    losses = torch.zeros(len(targets))
    with torch.enable_grad():
        for i in range(steps):
            x0 = _spiral(config.batch, g, config.noise) @ P.T  # on the plane
            eps = torch.randn(config.batch, D, generator=g)
            t = torch.rand(config.batch, 1, generator=g)
            x_t = ((1 - t) * x0 + t * eps)[None]  # the flow path
            v = eps - x0
            v_pred = _velocity(_forward(params, x_t, t), x_t, t, targets, config.t_min)
            per_target = ((v_pred - v) ** 2).mean(dim=(1, 2))  # the v-loss of each target's network
            optimizer.zero_grad(set_to_none=True)
            per_target.sum().backward()  # the networks share no weight: each gets its own gradient
            optimizer.step()
            schedule.step()
            if i >= steps - tail:
                losses += per_target.detach()
    # 3. Sampling: Euler steps of dx/dt = v_pred from pure noise at t = 1 down to t = 0
    with torch.no_grad():
        x = torch.randn(config.samples, D, generator=g).expand(len(targets), -1, -1).clone()
        ts = torch.linspace(1.0, 0.0, num_inference_steps + 1)
        for i in range(num_inference_steps):
            t = ts[i].expand(config.samples, 1)
            v_pred = _velocity(_forward(params, x, t), x, t, targets, config.t_min)
            x = x + (ts[i + 1] - ts[i]) * v_pred
        # 4. Measures: back to the plane, and the part that left it
        z = x @ P  # (targets, samples, 2)
        off = (x - z @ P.T).norm(dim=-1).mean(dim=1)
        reference = _spiral(config.reference, torch.Generator().manual_seed(seed + 7919), config.noise)
        pairs = [torch.cdist(z[k].double(), reference.double()) for k in range(len(targets))]
        distance = [float(d.min(dim=1).values.mean()) for d in pairs]  # samples -> data
        coverage = [float(d.min(dim=0).values.mean()) for d in pairs]  # data -> samples
    seconds = (time.perf_counter() - start) / len(targets)
    return {(kind, D): ToyRun(kind, D, distance[k], float(off[k]), coverage[k], float(losses[k] / tail),
                              z[k].float().numpy().copy(), seconds)
            for k, kind in enumerate(targets)}


def toy(dims=DIMS, targets=TARGETS, *, steps: int = 800, num_inference_steps: int = 50, seed: int = 0,
        config: ToyConfig | None = None, progress: bool = False) -> dict[tuple[str, int], ToyRun]:
    """Train the module text's toy for each target in `targets` at each ambient dimension D in `dims` (`steps`
    Adam steps each), sample `config.samples` points with `num_inference_steps` Euler steps, and measure them.
    Returns {(target, D): ToyRun}. The same seed gives the same numbers; every target at one D shares its data,
    noise, batches and initial weights. About a second per (target, D) at small D and a few at D = 512 on one CPU
    thread at the defaults (the networks are kept small; the process's thread count is left as it is).

    >>> from imagegen_nb.teach import prediction
    >>> r = prediction.toy(dims=(2,), targets=("x",), steps=100)
    >>> run = r["x", 2]
    >>> run.samples.shape, run.off_manifold < 1e-5  # at D = 2 the plane is the whole space
    ((1000, 2), True)
    """
    from tqdm.auto import tqdm

    config = ToyConfig() if config is None else config
    dims, targets, steps, num_inference_steps = _check(dims, targets, steps, num_inference_steps, config)
    out: dict[tuple[str, int], ToyRun] = {}
    for D in tqdm(dims, desc="prediction toy", disable=not progress):
        out.update(_train_and_sample(D, targets, steps, num_inference_steps, int(seed), config))
    return {(kind, D): out[kind, D] for kind in targets for D in dims}


# ----------------------------------------------------------------------------------------------------------------
# The real models: what each predicts, in how many dimensions per token


_MEANING = {"v": "v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x0", "velocity": "u = eps - x0 (flow matching)",
            "eps": "eps, the noise", "x": "x0, the clean picture"}


@dataclass(frozen=True)
class Prediction:
    """What one denoiser outputs, and how wide each piece of it is beside the network's own width."""

    model: str
    predicts: str  # "v" (v-prediction), "velocity" (flow: eps - x0), "eps" or "x" (the clean picture)
    space: str  # what the prediction lives in: "latent 16x16x4", "pixels 256x256x3"
    token: str  # the unit the network reads and writes: a latent position, a latent patch, a pixel patch
    token_dims: int  # numbers per token
    tokens: int  # tokens per picture
    width: int  # the transformer's token width, or the U-Net's narrowest channel count (at full latent resolution)
    source: str  # where the numbers come from: the shipped configs, or "from the paper" (quoted, not measured)

    @property
    def total_dims(self) -> int:
        """Numbers the network outputs per picture."""
        return self.token_dims * self.tokens

    @property
    def meaning(self) -> str:
        """The predicted quantity as a formula."""
        return _MEANING.get(self.predicts, self.predicts)


class PredictionTable(list):
    """`dimensions()`'s rows (a list of `Prediction`), shown as a table in a notebook."""

    COLUMNS = (("model", "model"), ("predicts", "meaning"), ("space", "space"), ("token", "token"),
               ("numbers per token", "token_dims"), ("tokens", "tokens"), ("numbers per picture", "total_dims"),
               ("network width", "width"), ("source", "source"))

    def _cells(self, row: Prediction) -> list[str]:
        return [f"{v:,}" if isinstance(v, int) else str(v) for v in (getattr(row, a) for _, a in self.COLUMNS)]

    def __str__(self) -> str:
        rows = [[h for h, _ in self.COLUMNS]] + [self._cells(r) for r in self]
        widths = [max(len(r[i]) for r in rows) for i in range(len(self.COLUMNS))]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)

    def _repr_html_(self) -> str:
        from html import escape

        head = "".join(f"<th>{escape(h)}</th>" for h, _ in self.COLUMNS)
        body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in self._cells(r)) + "</tr>" for r in self)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _shipped(model) -> Prediction:
    from ._common import pipe_and_family

    pipe, family = pipe_and_family(model)
    vae_factor = 2 ** (len(pipe.vae.config.block_out_channels) - 1)  # each VAE down block but the last halves
    side = family.default_size // vae_factor
    unet = getattr(pipe, "unet", None)
    if unet is not None:  # a U-Net: every latent position is read and written, 4 channels each
        channels = int(unet.config.in_channels)
        kind = pipe.scheduler.config.get("prediction_type", "epsilon")
        predicts = {"v_prediction": "v", "epsilon": "eps", "sample": "x"}.get(kind, kind)
        return Prediction(family.name, predicts, f"latent {side}x{side}x{channels}",
                          f"one latent position ({channels} channels)", channels, side * side,
                          int(min(unet.config.block_out_channels)),
                          "shipped configs (scheduler prediction_type, unet, vae)")
    config = pipe.transformer.config  # a transformer: one token per latent patch
    channels = int(config["in_channels"])
    patch = int((config.get("all_patch_size") or [config.get("patch_size") or 1])[0])
    width = int(config.get("dim") or config.get("hidden_size")
                or config["num_attention_heads"] * config["attention_head_dim"])
    kind = pipe.scheduler.config.get("prediction_type", "epsilon")
    predicts = "velocity" if family.flow else {"v_prediction": "v", "epsilon": "eps", "sample": "x"}.get(kind, kind)
    return Prediction(family.name, predicts, f"latent {side}x{side}x{channels}",
                      f"{patch}x{patch}x{channels} latent patch", patch * patch * channels, (side // patch) ** 2,
                      width, "shipped configs (registry family flow=True, transformer, vae)")


# Quoted from Li & He 2025: JiT-B (the ViT-B width, 768) on ImageNet with 16-pixel patches at 256 x 256 and
# 32-pixel patches at 512 x 512, predicting x
PAPER = (
    Prediction("JiT-B/16, 256 px", "x", "pixels 256x256x3", "16x16x3 pixel patch", 768, 256, 768, "from the paper"),
    Prediction("JiT-B/32, 512 px", "x", "pixels 512x512x3", "32x32x3 pixel patch", 3072, 256, 768, "from the paper"),
)


def dimensions(models=(None, "tiny-dit"), *, paper: bool = True) -> PredictionTable:
    """One row per model in `models` (None: the built-in U-Net), read from its loaded pipeline's configs: what it
    predicts, over which tokens, how many numbers per token, and the network's width beside them; then (with
    `paper`) JiT's two ImageNet settings, quoted from the paper. Both built-in models predict a few numbers per token
    through layers many times wider (4 or 16 numbers, 48 or 128 wide): room enough for a full-dimensional target.
    JiT-B/32 predicts 3,072 numbers per token through a 768-wide transformer, the toy's regime; there the paper
    reports x-prediction working and eps- and v-prediction failing catastrophically.

    >>> from imagegen_nb.teach import prediction
    >>> rows = prediction.dimensions()
    >>> [(r.model, r.predicts, r.token_dims, r.width) for r in rows]  # doctest: +NORMALIZE_WHITESPACE
    [('tiny', 'v', 4, 48), ('tiny-dit', 'velocity', 16, 128),
     ('JiT-B/16, 256 px', 'x', 768, 768), ('JiT-B/32, 512 px', 'x', 3072, 768)]
    """
    if models is None or isinstance(models, str):
        models = (models,)
    rows = [_shipped(m) for m in models]
    return PredictionTable(rows + (list(PAPER) if paper else []))


# ----------------------------------------------------------------------------------------------------------------
# The figure

_COLORS = {"x": "tab:blue", "eps": "tab:red", "v": "tab:orange"}
_NAMES = {"x": "x-prediction", "eps": "eps-prediction", "v": "v-prediction"}


def figure(result=None, *, dims=DIMS, targets=TARGETS, steps: int = 800, seed: int = 0, curves: bool = True,
           **toy_kwargs):
    """A grid, one row per target and one column per D: each run's samples projected to the plane (coloured) over
    the true spiral (light grey), titled with D, the measured distance and, where some fell outside the panel, the
    share still inside it; below (with `curves`), distance and off-manifold residual against D per target, on log
    axes. `result` is a `toy(...)` dict (computed here from `dims`, `targets`, `steps`, `seed` when None).

    >>> from imagegen_nb.teach import prediction
    >>> fig = prediction.figure(prediction.toy(dims=(2, 16), targets=("x", "v"), steps=50))
    >>> fig.axes[0].get_title().splitlines()[0]
    'D = 2'
    """
    from matplotlib.figure import Figure

    if result is None:
        result = toy(dims, targets, steps=steps, seed=seed, **toy_kwargs)
    if not isinstance(result, dict) or not result or not all(isinstance(r, ToyRun) for r in result.values()):
        raise TypeError("result must be the dict prediction.toy(...) returns, {(target, D): ToyRun}")
    kinds = [k for k in TARGETS if any(key[0] == k for key in result)]
    ds = sorted({key[1] for key in result})
    truth = spiral(3000, seed=seed + 1)
    cell = 1.9
    fig = Figure(figsize=(max(7.0, cell * len(ds) + 0.8), cell * len(kinds) + 0.9 + (2.7 if curves else 0)),
                 layout="constrained")
    fig.suptitle("What should the network predict?\nOne small MLP per target, a 2-D spiral buried in D dimensions",
                 fontsize=11)
    top, bottom = (fig.subfigures(2, 1, height_ratios=[cell * len(kinds) + 0.5, 2.7]) if curves
                   else (fig, None))
    axes = top.subplots(len(kinds), len(ds), squeeze=False)
    for i, kind in enumerate(kinds):
        for j, D in enumerate(ds):
            ax = axes[i, j]
            ax.scatter(truth[:, 0], truth[:, 1], s=2, color="0.85", linewidths=0, rasterized=True)
            ax.set_xlim(-1.5, 1.5)
            ax.set_ylim(-1.5, 1.5)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            run = result.get((kind, D))
            if run is None:
                ax.set_title(f"D = {D}\nnot run", fontsize=8)
                continue
            ax.scatter(run.samples[:, 0], run.samples[:, 1], s=2, color=_COLORS[kind], linewidths=0,
                       rasterized=True)
            title = f"D = {D}\ndistance {run.distance:.2g}"
            if run.inside < 0.995:
                title += f", {run.inside:.0%} in view"
            ax.set_title(title, fontsize=8)
            if j == 0:
                ax.set_ylabel(_NAMES[kind], fontsize=9)
    if curves:
        panels = bottom.subplots(1, 2)
        fields = (("distance", "mean distance to the data\n(in the plane, P^T x)"),
                  ("off_manifold", "mean off-plane residual\n||x - P P^T x||"))
        for ax, (field, label) in zip(panels, fields):
            for kind in kinds:
                # at D = 2 the plane is all of space: nothing can stand off it
                xs = [D for D in ds if (kind, D) in result and (field == "distance" or D > 2)]
                ys = [getattr(result[kind, D], field) for D in xs]
                ax.plot(xs, ys, "o-", color=_COLORS[kind], label=_NAMES[kind], ms=4)
            if len(ds) > 1:
                ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ticks = [D for D in ds if field == "distance" or D > 2]
            ax.set_xticks(ticks, [str(D) for D in ticks])
            ax.minorticks_off()
            ax.set_xlabel("ambient dimension D (the data stay 2-D)", fontsize=8)
            ax.set_ylabel(label, fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
        panels[0].legend(fontsize=7)
    return fig
