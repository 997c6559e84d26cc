"""Lesson: adversarial training (GANs) against diffusion, live on a toy: two tiny models trained on the same 2-D
mixture of Gaussians, one a GAN and one a diffusion model, and the modes of the data each of them covers.

**The GAN** (Goodfellow et al. 2014, "Generative Adversarial Nets"). A generator G maps noise z ~ N(0, I) to a sample
x = G(z) in one network evaluation; a discriminator D(x) in (0, 1) says how likely x is real. They play

    min_G max_D  E_x[log D(x)] + E_z[log(1 - D(G(z)))]

D's step raises the value (a binary cross-entropy with real = 1, fake = 0). For G the paper itself recommends the
*non-saturating* loss used in practice, -E_z[log D(G(z))]: early on D rejects G's samples easily, log(1 - D(G(z)))
is flat there and its gradient vanishes, while -log D(G(z)) has the same fixed point and its strongest gradients
exactly where G is worst. `generator_loss="minimax"` trains G on log(1 - D(G(z))) instead.

Nothing in this game asks G to cover all of the data. G is rewarded for every sample D believes, wherever it lands;
a mode that no sample visits costs G nothing directly. D only learns from what G does now, so G can pile its samples
onto the modes D lets through, D adjusts, G moves on (mode hopping; Metz et al. 2017, "Unrolled Generative
Adversarial Networks", whose 8-Gaussian ring is the data here). That is **mode collapse**: samples that look real
but come from a few modes.

**The diffusion model** is rectified flow (Liu et al. 2022; flow matching, Lipman et al. 2022), the objective of the
built-in DiT and, up to a change of noise path, of the diffusion models in `imagegen_nb.teach.flow`:

    x_t = (1 - t) x0 + t eps,      loss = E_{x0, eps, t} || u_pred(x_t, t) - (eps - x0) ||^2

with t ~ U(0, 1). The loss is a regression averaged over the training examples x0: every example, from every mode,
is a target the network is graded on, and no player chooses which examples are asked. Its minimiser is the velocity
field whose flow carries the noise onto the whole data distribution; a network that left out a mode would be wrong
on every example of it, every step. Sampling starts at pure noise and takes `num_inference_steps` Euler steps
x_{t'} = x_t + (t' - t) u_pred(x_t, t) down to t = 0: that many network evaluations per sample, against the GAN's one.

**Measured here.** A mode counts as *covered* when at least a quarter of its fair share of the samples (num_samples /
modes / 4) lies within 3 std of its centre (the mixture's std: about 99% of the data's own samples do); *sample
quality* is the fraction of samples within 3 std of some centre. `compare` trains both on the same data with the same
seed, batch size (256), learning rate (Adam, 1e-3) and number of steps (a GAN step updates D once and then G once),
and returns the counts per mode, the modes covered along training and the losses; `modes` says how many modes each
covers; `figure` draws it all. On one thread of a busy 2-core machine the default 1,500 steps took 19 to 44 s for the
GAN and 11 to 24 s for the diffusion model.

The setting is chosen for the lesson, and this is the part of it that matters: the generator starts close to a
constant map. Its weights are drawn from N(0, 0.02^2) as in DCGAN (Radford et al. 2016) and its biases are zero (the
discriminator keeps PyTorch's default start), so at first every z lands near the same point, every sample gets the
same push from D and the whole batch moves together. The ring has radius 2 and std 0.05. With these defaults and
seeds 0 to 4 the GAN covered 3, 3, 2, 2 and 6 of the 8 modes (four of the five collapsed onto three modes or fewer)
and the diffusion model all 8 every time. Sample quality was 26% to 87% for the GAN (many of its samples lie on
the trails between the modes it visits: G is continuous in z) and 66% to 72% for the diffusion model; the samples
near a mode sat 1.2 to 2.3 std from its centre (root mean square) for the GAN, 1.7 to 1.8 for the diffusion model
(blurred by its network's and its sampler's errors) and 1.4 for the data itself. With PyTorch's default
start for the generator as well (`generator_init_std=None`) the same GAN covered 6, 8, 8, 7 and 8 modes: mode
collapse is a tendency of the game, how strongly it shows depends on the start and on the balance of the two players,
and GAN practice is largely a list of ways to tame it (feature matching and minibatch discrimination, Salimans et al.
2016; unrolling D, Metz et al. 2017; a Wasserstein critic with a gradient penalty, Gulrajani et al. 2017; spectral
normalisation, Miyato et al. 2018).

**Where GANs still win.** One network evaluation per sample, where a diffusion sampler takes tens. Trained at scale,
with large batches and careful regularisation, GANs were the state of the art for images before diffusion: StyleGAN
(Karras et al. 2019) for faces and BigGAN (Brock et al. 2019) for ImageNet classes, until Dhariwal & Nichol 2021
("Diffusion Models Beat GANs on Image Synthesis") reported a diffusion model with better FID than BigGAN-deep on
ImageNet, matching it with as few as 25 network evaluations per sample "while maintaining better coverage of the
distribution". Adversarial losses came back to make diffusion fast: adversarial diffusion distillation (Sauer et al.
2023, the method behind SDXL-Turbo) trains a diffusion model as a few-step generator against a discriminator,
together with a distillation loss from a teacher diffusion model, so that it makes a picture in one to four steps.

>>> from imagegen_nb.teach import gan
>>> c = gan.coverage(gan.mixture("ring").sample(800, seed=0), "ring")
>>> c.covered, c.modes, round(c.quality, 2)
(8, 8, 0.99)
>>> run = gan.train("gan", steps=20, num_samples=200, progress=False)
>>> run.samples.shape, run.evaluations_per_sample, sorted(run.losses)
((200, 2), 1, ['discriminator', 'generator'])
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from .. import arguments

__all__ = ["DATA", "KINDS", "Comparison", "Coverage", "Mixture", "Training", "compare", "coverage", "figure",
           "mixture", "modes", "train"]

KINDS = ("gan", "diffusion")
DATA = ("ring",)  # the data the lesson is measured on (a mixture name, or pass a Mixture of your own)
GENERATOR_LOSSES = ("non-saturating", "minimax")
WIDTH = 128  # hidden units of every network (the generator, the discriminator and the diffusion model's network)
Z_DIM = 2  # the GAN's noise z, the same dimension as the diffusion model's noise eps
TIME_FEATURES = 8  # sin and cos of 2^k pi t for k < 8: the diffusion network's view of t
COVERED_SHARE = 0.25  # a mode is covered with at least this fraction of its fair share of samples within 3 std


@dataclass(frozen=True)
class Mixture:
    """A mixture of equal-weight isotropic Gaussians in 2-D: `centres` (modes, 2) and one `std`.

    "ring": 8 modes on a circle of radius 2 (Metz et al. 2017's toy), std 0.05, mode k at angle 2 pi k / 8. Any
    other `Mixture` can be passed as `data` to the functions here; the defaults (networks, steps) are sized for the
    ring."""

    name: str
    centres: np.ndarray
    std: float

    @property
    def modes(self) -> int:
        return len(self.centres)

    def sample(self, n: int, *, seed: int | None = 0, generator=None):
        """`n` samples as a float32 array (n, 2), from `seed` (or from a torch `generator`, as a tensor)."""
        import torch

        n = arguments.integer("n", n, low=1)
        g = generator if generator is not None else torch.Generator().manual_seed(int(seed or 0))
        k = torch.randint(0, self.modes, (n,), generator=g)
        x = torch.as_tensor(self.centres, dtype=torch.float32)[k] + self.std * torch.randn(n, 2, generator=g)
        return x if generator is not None else x.numpy()


def mixture(data: str = "ring") -> Mixture:
    """The data: "ring", 8 Gaussians on a circle; see `Mixture`.

    >>> from imagegen_nb.teach import gan
    >>> gan.mixture("ring").modes, gan.mixture("ring").std
    (8, 0.05)
    """
    arguments.choice("data", data, DATA)
    angle = 2 * np.pi * np.arange(8) / 8
    return Mixture("ring", np.stack([2 * np.cos(angle), 2 * np.sin(angle)], 1), 0.05)


def _mixture(data) -> Mixture:
    if isinstance(data, Mixture):
        return data
    return mixture(data)


@dataclass
class Coverage:
    """Which modes a set of samples covers.

    `counts[k]` is how many samples lie within 3 std of centre k (and nearer to it than to any other centre);
    a mode is covered when `counts[k] >= threshold`, a quarter of its fair share (num_samples / modes / 4).
    `quality` is the fraction of all samples within 3 std of some centre. `evaluations_per_sample` is how many
    network evaluations made each sample (1 for the GAN, the sampler's steps for the diffusion model; 0 for data).
    `spread` is how tightly the samples near a mode sit on it: their root-mean-square distance to its centre in units
    of the mixture's std (about 1.4 for the data itself, whose samples are 2-D Gaussians; less is tighter; nan if no
    sample is near a mode)."""

    counts: np.ndarray
    covered: int
    modes: int
    quality: float
    threshold: float
    num_samples: int
    evaluations_per_sample: int = 0
    spread: float = float("nan")


def coverage(samples, data=None, *, evaluations_per_sample: int = 0) -> Coverage:
    """The `Coverage` of `samples` ((n, 2), an array or a `Training`) against the modes of `data` (None: the data a
    `Training` was trained on, else "ring").

    >>> import numpy as np
    >>> from imagegen_nb.teach import gan
    >>> c = gan.coverage(np.array([[2.0, 0.0]] * 10 + [[0.0, 0.0]] * 10), "ring")
    >>> c.covered, c.counts[:2].tolist(), c.quality
    (1, [10, 0], 0.5)
    """
    if isinstance(samples, Training):
        evaluations_per_sample = samples.evaluations_per_sample
        data = (samples.mixture or samples.data) if data is None else data
        samples = samples.samples
    mix = _mixture("ring" if data is None else data)
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 2 or len(x) == 0:
        raise ValueError(f"samples must be an array of 2-D points, shape (n, 2) with n >= 1, not shape {x.shape}")
    # 1. Distance of each sample to each centre; each sample belongs to its nearest centre
    d = np.linalg.norm(x[:, None, :] - mix.centres[None, :, :], axis=2)
    nearest, dist = d.argmin(1), d.min(1)
    # 2. Near: within 3 std of that centre
    near = dist < 3 * mix.std
    counts = np.bincount(nearest[near], minlength=mix.modes)
    threshold = COVERED_SHARE * len(x) / mix.modes
    # 3. How tightly the near samples sit on their centres, in std
    spread = float(np.sqrt((dist[near] ** 2).mean()) / mix.std) if near.any() else float("nan")
    return Coverage(counts=counts, covered=int((counts >= threshold).sum()), modes=mix.modes,
                    quality=float(near.mean()), threshold=threshold, num_samples=len(x),
                    evaluations_per_sample=int(evaluations_per_sample), spread=spread)


@dataclass
class Training:
    """One trained model and what it did along the way.

    `samples` (num_samples, 2) are drawn at the end; `snapshots[step]` are drawn at `step` from the same noise (the
    same z for the GAN, the same starting eps for the diffusion model), so they show where the same samples move.
    `losses` has one value per training step: "discriminator" (D's binary cross-entropy, log 4 = 1.386 when D cannot
    tell) and "generator" for the GAN, "flow matching" for the diffusion model."""

    kind: str
    data: str
    seed: int
    steps: int
    samples: np.ndarray
    snapshots: dict[int, np.ndarray]
    losses: dict[str, np.ndarray]
    evaluations_per_sample: int
    seconds: float
    settings: dict = field(default_factory=dict)
    mixture: Mixture | None = field(repr=False, default=None)  # the data it was trained on

    def coverage(self) -> Coverage:
        return coverage(self)

    def covered_along_training(self) -> tuple[np.ndarray, np.ndarray]:
        """The snapshot steps and the number of modes covered at each."""
        steps = np.array(sorted(self.snapshots))
        mix = self.mixture or self.data
        return steps, np.array([coverage(self.snapshots[s], mix).covered for s in steps])


def _mlp(n_in: int, n_out: int, hidden: int, activation):
    from torch import nn

    layers, width = [], n_in
    for _ in range(hidden):
        layers += [nn.Linear(width, WIDTH), activation()]
        width = WIDTH
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


def _time_features(t):
    import torch

    freq = (2.0 ** torch.arange(TIME_FEATURES, dtype=torch.float32)) * math.pi
    angle = t[:, None] * freq
    return torch.cat([torch.sin(angle), torch.cos(angle)], 1)


def _record_steps(steps: int, snapshots: int) -> list[int]:
    """`snapshots` training steps, evenly spaced and ending at `steps`."""
    return sorted({max(1, round(steps * (i + 1) / snapshots)) for i in range(snapshots)})


def _check_common(steps, seed, batch_size, num_samples, snapshots, learning_rate):
    return (arguments.integer("steps", steps, low=1, high=200_000),
            arguments.integer("seed", seed, low=0, high=arguments.MAX_SEED),
            arguments.integer("batch_size", batch_size, low=2, high=65_536),
            arguments.integer("num_samples", num_samples, low=1, high=1_000_000),
            arguments.integer("snapshots", snapshots, low=1, high=1000),
            arguments.number("learning_rate", learning_rate, low=0.0, low_open=True, high=1.0))


def train(kind: str, *, data: str | Mixture = "ring", steps: int = 1500, seed: int = 0, batch_size: int = 256,
          learning_rate: float = 1e-3, num_samples: int = 2000, snapshots: int = 10, num_inference_steps: int = 32,
          generator_init_std: float | None = 0.02, generator_loss: str = "non-saturating",
          progress: bool = True) -> Training:
    """Train one tiny model on `data` (`mixture(data)`, or a `Mixture`) for `steps` steps of `batch_size` fresh
    samples, Adam at `learning_rate`, and draw `num_samples` samples from it at `snapshots` evenly spaced steps and
    at the end.

    kind="gan": generator 2 -> 128 -> 128 -> 2 and discriminator 2 -> 128 -> 128 -> 1 (ReLU), Adam betas (0.5, 0.999)
    as in DCGAN; each step updates D once on a real and a fake batch and then G once (`generator_loss`: the
    "non-saturating" -log D(G(z)) or the "minimax" log(1 - D(G(z)))). The generator's weights start from
    N(0, generator_init_std^2) with zero biases (None: PyTorch's default initialisation); the discriminator keeps
    PyTorch's default. kind="diffusion": a rectified-flow network u_pred(x_t, t), 2 + 16 time features -> 128 -> 128
    -> 128 -> 2 (ReLU), Adam with its default betas, sampled with `num_inference_steps` Euler steps.

    Deterministic for a seed on one machine and thread count; the global torch random state is left as it was.

    >>> from imagegen_nb.teach import gan
    >>> run = gan.train("diffusion", steps=5, num_samples=100, num_inference_steps=4, progress=False)
    >>> run.evaluations_per_sample, sorted(run.snapshots)[-1], len(run.losses["flow matching"])
    (4, 5, 5)
    """
    kind = arguments.choice("kind", kind, KINDS)
    mix = _mixture(data)
    steps, seed, batch_size, num_samples, snapshots, learning_rate = _check_common(
        steps, seed, batch_size, num_samples, snapshots, learning_rate)
    num_inference_steps = arguments.integer("num_inference_steps", num_inference_steps, low=1,
                                            high=arguments.limits.max_steps, limit="max_steps")
    if generator_init_std is not None:
        generator_init_std = arguments.number("generator_init_std", generator_init_std, low=0.0, low_open=True,
                                              hint=" (None: PyTorch's default initialisation)")
    generator_loss = arguments.choice("generator_loss", generator_loss, GENERATOR_LOSSES)
    progress = arguments.flag("progress", progress)

    import torch
    from tqdm.auto import tqdm

    settings = dict(batch_size=batch_size, learning_rate=learning_rate, num_samples=num_samples)
    if kind == "gan":
        settings.update(generator_init_std=generator_init_std, generator_loss=generator_loss)
    else:
        settings.update(num_inference_steps=num_inference_steps)
    record = set(_record_steps(steps, snapshots))
    g = torch.Generator().manual_seed(seed)  # data, noise and timesteps
    started = time.perf_counter()
    bar = tqdm(total=steps, desc=f"training the {kind}", disable=not progress, leave=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # the networks' initial weights
        if kind == "gan":
            out = _train_gan(mix, g, steps, batch_size, learning_rate, num_samples, record, generator_init_std,
                             generator_loss, bar)
        else:
            out = _train_diffusion(mix, g, steps, batch_size, learning_rate, num_samples, record,
                                   num_inference_steps, bar)
    bar.close()
    samples, snaps, losses = out
    return Training(kind=kind, data=mix.name, seed=seed, steps=steps, samples=samples, snapshots=snaps,
                    losses=losses, evaluations_per_sample=1 if kind == "gan" else num_inference_steps,
                    seconds=time.perf_counter() - started, settings=settings, mixture=mix)


def _train_gan(mix, g, steps, batch_size, learning_rate, num_samples, record, init_std, generator_loss, bar):
    import torch
    from torch import nn
    from torch.nn.functional import binary_cross_entropy_with_logits as bce
    from torch.nn.functional import logsigmoid

    G = _mlp(Z_DIM, 2, 2, nn.ReLU)
    D = _mlp(2, 1, 2, nn.ReLU)
    if init_std is not None:  # DCGAN's initialisation for the generator: it starts as a near-constant map
        for layer in G:
            if isinstance(layer, nn.Linear):
                nn.init.normal_(layer.weight, 0.0, init_std)
                nn.init.zeros_(layer.bias)
    opt_G = torch.optim.Adam(G.parameters(), lr=learning_rate, betas=(0.5, 0.999))
    opt_D = torch.optim.Adam(D.parameters(), lr=learning_rate, betas=(0.5, 0.999))
    z_fixed = torch.randn(num_samples, Z_DIM, generator=g)  # the same z for every snapshot
    labels = torch.cat([torch.ones(batch_size, 1), torch.zeros(batch_size, 1)])
    loss_D, loss_G = np.zeros(steps), np.zeros(steps)
    snaps = {}
    for step in range(1, steps + 1):
        # 1. D's step: raise log D(x) + log(1 - D(G(z))), i.e. lower the cross-entropy with real = 1, fake = 0
        x = mix.sample(batch_size, generator=g)
        fake = G(torch.randn(batch_size, Z_DIM, generator=g)).detach()
        d_loss = bce(D(torch.cat([x, fake])), labels) * 2  # the sum of the two means
        opt_D.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_D.step()
        # 2. G's step: non-saturating -log D(G(z)), or the minimax game's log(1 - D(G(z)))
        logits = D(G(torch.randn(batch_size, Z_DIM, generator=g)))
        g_loss = -logsigmoid(logits).mean() if generator_loss == "non-saturating" else logsigmoid(-logits).mean()
        opt_G.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_G.step()
        loss_D[step - 1], loss_G[step - 1] = d_loss.item(), g_loss.item()
        if step in record:
            with torch.no_grad():
                snaps[step] = G(z_fixed).numpy()
        bar.update(1)
    return snaps[steps], snaps, {"discriminator": loss_D, "generator": loss_G}


class _Velocity:
    """u_pred(x_t, t): an MLP on x_t and sin/cos features of t."""

    def __init__(self):
        from torch import nn

        self.net = _mlp(2 + 2 * TIME_FEATURES, 2, 3, nn.ReLU)

    def __call__(self, x_t, t):
        import torch

        return self.net(torch.cat([x_t, _time_features(t)], 1))


def _sample_flow(u_pred, eps, num_inference_steps: int):
    """Euler from t = 1 (pure noise) to t = 0: x_{t'} = x_t + (t' - t) u_pred(x_t, t)."""
    import torch

    ts = torch.linspace(1.0, 0.0, num_inference_steps + 1)
    x_t = eps
    with torch.no_grad():
        for t, t_next in zip(ts[:-1], ts[1:]):
            x_t = x_t + (t_next - t) * u_pred(x_t, t.expand(len(x_t)))
    return x_t.numpy()


def _train_diffusion(mix, g, steps, batch_size, learning_rate, num_samples, record, num_inference_steps, bar):
    import torch

    u_pred = _Velocity()
    opt = torch.optim.Adam(u_pred.net.parameters(), lr=learning_rate)
    eps_fixed = torch.randn(num_samples, 2, generator=g)  # the same starting noise for every snapshot
    losses = np.zeros(steps)
    snaps = {}
    for step in range(1, steps + 1):
        # 1. Noise every training example to a random t on the straight line from x0 to eps
        x0 = mix.sample(batch_size, generator=g)
        eps = torch.randn(batch_size, 2, generator=g)
        t = torch.rand(batch_size, generator=g)
        x_t = (1 - t[:, None]) * x0 + t[:, None] * eps
        # 2. Regress the velocity eps - x0 of every example: no example can be left out of the loss
        loss = ((u_pred(x_t, t) - (eps - x0)) ** 2).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses[step - 1] = loss.item()
        if step in record:
            snaps[step] = _sample_flow(u_pred, eps_fixed, num_inference_steps)
        bar.update(1)
    return snaps[steps], snaps, {"flow matching": losses}


@dataclass
class Comparison:
    """A GAN and a diffusion model trained on the same data with the same seed and budget, and what they cover:
    `coverage["data"]` is the data's own (as many samples as the models'), `coverage["gan"]` and
    `coverage["diffusion"]` the models' at the end of training."""

    data: str
    seed: int
    gan: Training
    diffusion: Training
    coverage: dict[str, Coverage]
    data_samples: np.ndarray = field(repr=False, default=None)  # the data's own samples, as many as the models'
    mixture: Mixture | None = field(repr=False, default=None)

    def modes(self) -> dict[str, int]:
        return {"gan": self.coverage["gan"].covered, "diffusion": self.coverage["diffusion"].covered}


def compare(*, data: str | Mixture = "ring", steps: int = 1500, seed: int = 0, progress: bool = True,
            **kwargs) -> Comparison:
    """Train a GAN and a diffusion model (`train`) on the same `data` with the same seed, steps and the other keyword
    arguments of `train`, and measure the coverage of each (`coverage`).

    >>> from imagegen_nb.teach import gan
    >>> c = gan.compare(steps=10, num_samples=100, num_inference_steps=2, progress=False)
    >>> sorted(c.coverage), c.coverage["gan"].evaluations_per_sample, c.coverage["diffusion"].evaluations_per_sample
    (['data', 'diffusion', 'gan'], 1, 2)
    """
    own = ("data", "steps", "seed", "progress")
    valid = [name for name in train.__kwdefaults__ if name not in own]
    for name in kwargs:
        if name not in valid:
            raise arguments.unknown_argument("compare", name, [*valid, *own])
    mix = _mixture(data)
    g_run = train("gan", data=mix, steps=steps, seed=seed, progress=progress, **kwargs)
    d_run = train("diffusion", data=mix, steps=steps, seed=seed, progress=progress, **kwargs)
    real = mix.sample(len(g_run.samples), seed=seed + 1)
    return Comparison(data=mix.name, seed=seed, gan=g_run, diffusion=d_run, data_samples=real, mixture=mix,
                      coverage={"data": coverage(real, mix), "gan": coverage(g_run), "diffusion": coverage(d_run)})


def modes(result: Comparison | None = None, *, seed: int = 0, data: str | Mixture = "ring", steps: int = 1500,
          **kwargs) -> dict[str, int]:
    """How many modes of the data each model covers (see `Coverage`): {"gan": k, "diffusion": k}. Trains both
    (`compare(data=data, steps=steps, seed=seed, **kwargs)`) unless `result` is given.

    >>> from imagegen_nb.teach import gan
    >>> m = gan.modes(steps=10, num_samples=100, num_inference_steps=2, progress=False)
    >>> sorted(m), all(0 <= k <= 8 for k in m.values())
    (['diffusion', 'gan'], True)
    """
    if result is None:
        result = compare(data=data, steps=steps, seed=seed, **kwargs)
    elif not isinstance(result, Comparison):
        raise TypeError(f"result must be what gan.compare() returns (a Comparison) or None, not "
                        f"{type(result).__name__}")
    return result.modes()


_COLOR = {"data": "#555555", "gan": "#d62728", "diffusion": "#1f77b4"}


def _scatter(ax, x, mix: Mixture, title: str, color: str) -> None:
    from matplotlib.patches import Circle

    ax.scatter(x[:, 0], x[:, 1], s=2, alpha=0.25, color=color, linewidths=0, rasterized=True)
    for cx, cy in mix.centres:
        ax.add_patch(Circle((cx, cy), 3 * mix.std, fill=False, lw=0.6, color="black"))
    lim = float(np.abs(mix.centres).max()) + 1.0
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=8)


def _label(c: Coverage) -> str:
    per = "network evaluation" if c.evaluations_per_sample == 1 else "network evaluations"
    return (f"{c.covered} of {c.modes} modes, {100 * c.quality:.0f}% near a mode, spread {c.spread:.1f} std\n"
            f"{c.evaluations_per_sample} {per} per sample")


def figure(result: Comparison | None = None, *, seed: int = 0, data: str | Mixture = "ring", steps: int = 1500,
           **kwargs):
    """The data, the GAN's and the diffusion model's samples at the end of training (each mode's 3-std circle drawn),
    the GAN's samples from the same z at three earlier steps, the modes each model covers along training, and the
    samples each mode receives. Trains both (`compare(data=data, steps=steps, seed=seed, **kwargs)`) unless
    `result` is given.

    >>> from imagegen_nb.teach import gan
    >>> fig = gan.figure(gan.compare(steps=8, num_samples=100, num_inference_steps=2, snapshots=4, progress=False))
    >>> len(fig.axes), fig.axes[3].get_ylabel()
    (8, 'modes covered')
    """
    from ._common import new_figure

    if result is None:
        result = compare(data=data, steps=steps, seed=seed, **kwargs)
    elif not isinstance(result, Comparison):
        raise TypeError(f"result must be what gan.compare() returns (a Comparison) or None, not "
                        f"{type(result).__name__}")
    mix = result.mixture or mixture(result.data)
    cov = result.coverage
    fig, axes = new_figure(2, 4, cell=3.0, title=(
        f"A GAN and a diffusion model (rectified flow) on the same {mix.modes} Gaussians, seed {result.seed}, "
        f"{result.gan.steps} training steps each\na mode is covered when at least a quarter of its fair share of "
        "the samples lies inside its 3-std circle"))
    fig.set_size_inches(13.0, 7.0)
    # 1. Top row: the data, the GAN and the diffusion model at the end of training
    _scatter(axes[0, 0], result.data_samples, mix, f"data\n{_label(cov['data']).splitlines()[0]}", _COLOR["data"])
    if mix.modes <= 10:  # the modes' numbers, as on the bar chart's axis
        for k, (cx, cy) in enumerate(mix.centres):
            axes[0, 0].annotate(str(k), (cx, cy), xytext=(cx * 1.22, cy * 1.22), fontsize=7, ha="center",
                                va="center")
    _scatter(axes[0, 1], result.gan.samples, mix, f"GAN, step {result.gan.steps}\n{_label(cov['gan'])}",
             _COLOR["gan"])
    _scatter(axes[0, 2], result.diffusion.samples, mix,
             f"diffusion, step {result.diffusion.steps}\n{_label(cov['diffusion'])}", _COLOR["diffusion"])
    # 2. Modes covered along training
    ax = axes[0, 3]
    for name, run in (("GAN", result.gan), ("diffusion", result.diffusion)):
        s, k = run.covered_along_training()
        ax.plot(s, k, "o-", ms=3, color=_COLOR[run.kind], label=name)
    ax.axhline(mix.modes, color="black", lw=0.6, ls=":")
    ax.set_ylim(-0.3, mix.modes + 0.5)
    ax.set_xlabel("training step")
    ax.set_ylabel("modes covered")
    ax.set_title("modes covered along training\n(the same noise each time)", fontsize=8)
    ax.legend(fontsize=7, loc="lower right")
    # 3. Bottom row: the GAN's samples from the same z earlier in training (it moves between modes)
    steps_seen = sorted(result.gan.snapshots)[:-1]
    picks = [steps_seen[round(i * (len(steps_seen) - 1) / 2)] for i in range(3)] if len(steps_seen) >= 3 else \
        steps_seen
    for j in range(3):
        a = axes[1, j]
        if j < len(picks):
            c = coverage(result.gan.snapshots[picks[j]], mix)
            _scatter(a, result.gan.snapshots[picks[j]], mix,
                     f"GAN, step {picks[j]} (same z)\n{c.covered} of {c.modes} modes, {100 * c.quality:.0f}% near "
                     "a mode", _COLOR["gan"])
        else:
            a.axis("off")
    # 4. Samples each mode receives
    ax = axes[1, 3]
    idx = np.arange(mix.modes)
    ax.bar(idx - 0.2, cov["gan"].counts, width=0.4, color=_COLOR["gan"], label="GAN")
    ax.bar(idx + 0.2, cov["diffusion"].counts, width=0.4, color=_COLOR["diffusion"], label="diffusion")
    ax.axhline(cov["gan"].num_samples / mix.modes, color="black", lw=0.8, ls="--", label="fair share")
    ax.axhline(cov["gan"].threshold, color="black", lw=0.8, ls=":", label="covered from here")
    ax.set_xlabel("mode")
    ax.set_ylabel("samples within 3 std")
    ax.set_title(f"samples per mode (of {cov['gan'].num_samples})", fontsize=8)
    ax.set_xticks(idx if mix.modes <= 10 else idx[::4])
    ax.legend(fontsize=7)
    return fig
