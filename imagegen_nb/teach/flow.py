"""Lesson: diffusion and flow matching, side by side on the two built-in models. Both start from pure noise eps and
end at a clean latent x0 of the same VAE; they differ in how the path between the two is written, in what the
network predicts, and in where the sampler's steps fall.

The U-Net (`model=None`) is a VP diffusion model (Ho et al. 2020) trained for v-prediction (Salimans & Ho 2022) on
betas rescaled to zero terminal SNR (alpha_bar_999 = 0, Lin et al. 2024):

    x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps,
    v_pred ~ v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x0

The DiT (`model="tiny-dit"`) is rectified flow (Liu et al. 2022, "Flow Straight and Fast"; flow matching, Lipman et
al. 2022): a straight line from x0 to eps, and the network predicts the velocity along it:

    x_sigma = (1 - sigma) x0 + sigma eps,                     u_pred ~ u = d x_sigma / d sigma = eps - x0

(its transformer is trained to output x0 - eps at timestep 1 - sigma, `imagegen_nb.tiny.train_dit`; ZImagePipeline
gives it timestep (1000 - t) / 1000 = 1 - sigma and negates its output, so the scheduler sees u_pred).

**One coordinate system for both.** Divide the U-Net's x_t by sqrt(alpha_bar_t) + sqrt(1 - alpha_bar_t):

    y = x_t / (sqrt(alpha_bar_t) + sqrt(1 - alpha_bar_t)) = (1 - s) x0 + s eps,
    s = sqrt(1 - alpha_bar_t) / (sqrt(alpha_bar_t) + sqrt(1 - alpha_bar_t))

which is the flow form (for the DiT y = x_sigma and s = sigma; both start at s = 1, pure noise). Equal s means equal
signal-to-noise ratio, alpha_bar_t / (1 - alpha_bar_t) = (1 - s)^2 / s^2, so for one x0 and one eps the two models'
training paths are the same straight line from eps (s = 1) to x0 (s = 0). Both losses are weighted errors of x0
(x0_pred = sqrt(alpha_bar_t) x_t - sqrt(1 - alpha_bar_t) v_pred = y - s u_pred, so v's error is x0's divided by
sqrt(1 - alpha_bar_t) and u's is x0's divided by s): in training the two differ in which noise levels are practised
and how each is weighted (Kingma & Gao 2023), and in the networks. Classifier-free guidance mixes v (or u) linearly
at a fixed x_t, so it mixes x0_pred the same way; both models run at the same guidance w = 4 by default (the U-Net's
`guidance_scale=4.0`, the DiT's Z-Image g = 3.0, which is w - 1). Changing the scale of x and the clock of t changes
the coordinates of the sampling ODE, not its solutions (Karras et al. 2022, "Elucidating the Design Space", write
every such model as one ODE in a scale s(t) and a noise level sigma(t)): perfect networks on the same data at the
same w would follow the same path here.

**The same integrator.** DDIM's step (Song et al. 2021) keeps x0_pred and eps_pred and moves to the next noise level,
x_t' = sqrt(alpha_bar_t') x0_pred + sqrt(1 - alpha_bar_t') eps_pred. In y that is Euler's step of
dy/ds = eps_pred - x0_pred, which is the DiT's FlowMatchEulerDiscreteScheduler step:

    y_s' = (1 - s') x0_pred + s' eps_pred = y_s + (s' - s) (eps_pred - x0_pred)

So `sampler="euler"` (the default: DDIM for the U-Net, flow Euler for the DiT) samples both with one integrator.
What differs is where the steps fall (`Path.s`): the DiT steps evenly in s (ZImagePipeline's sigmas 1, 1 - 1/N,
..., 1/N, then 0), while the U-Net's evenly spaced ("trailing") timesteps are closer in s near pure noise and leave
its longest step for last (from s = 0.21 to 0 at 16 steps). DDIM's last step goes down 1000 // N timesteps, which
for some N (6, 7, ...) ends at t = 0 (alpha_bar_0 = 0.99915, s = 0.028) rather than at alpha_bar = 1; the paths
end where the sampler ends.

**Why straight paths need fewer steps.** If x0_pred and eps_pred did not change along the way, one Euler step would
be exact. They do change: at s = 1 the input is pure noise and says nothing of the picture, so the best guess x0_pred
is the (guided) average of every picture the prompt allows, and it sharpens as the noise goes. The sampled path bends
wherever x0_pred moves, and Euler's error over a step grows with that bending. Rectified flow makes the *training*
paths straight (one x0, one eps; in y, the VP paths are straight too); it does not by itself make the *sampled*
paths straight: that takes reflow (Liu et al. 2022) or a model trained to take big steps (distillation; consistency
models, Song et al. 2023; shortcut models, Frans et al. 2024). The built-in DiT has no such few-step mode: its 1 to 4
step runs are its ordinary Euler sampler with fewer steps. So the lesson measures, it does not assume: `paths`
gives, per step, how far x0_pred moves, the angle between successive steps, and the straightness of the whole
sampled path (chord over length, in y); `steps_curve` gives the checker's score at 1 to 32 steps. Every length is a
ratio (to the path's chord, or to the final x0's norm), so neither model's latent scale enters.

The numbers are the networks' as they ship: the U-Net is trained, the DiT is still in training (its weights'
`training.json` counts its steps), so its scores and paths are those of a model still learning.

>>> from imagegen_nb.teach import flow
>>> p = flow.paths("a red circle", steps=3, seed=0)
>>> sorted(p), all(0 < path.straightness <= 1 for path in p.values())
(['tiny', 'tiny-dit'], True)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["STEPS", "Path", "StepsCurve", "figure", "path_of", "paths", "steps_curve"]

STEPS = (1, 2, 4, 8, 16, 32)  # the step counts of the quality curve: doublings, read on a log-2 axis
SAMPLERS = ("euler", "shipped")  # the same first-order integrator for both models, or each model's own scheduler
MAX_STEPS = 1000  # the models' training timesteps: more steps than this repeat timesteps


@dataclass
class Path:
    """One sampled path from noise to picture, in flow coordinates y = (1 - s) x0 + s eps (see the module text).

    `s` has one entry per point: the noise level going into each step, then where the last step lands (0, or
    DDIM's t = 0 for some step counts). `points` are the y's themselves, (steps + 1, D) float32, and `scale` the
    factor back to the sampler's latents, x = scale * y (sqrt(alpha_bar) + sqrt(1 - alpha_bar) for the U-Net, 1 for
    the DiT): the last point, scaled, is the latent the picture is decoded from.

    `step_length[k]` is ||y_{k+1} - y_k|| / ||y_end - y_start|| (they sum to 1 / straightness); `turn[k]` the angle
    in degrees between steps k and k + 1; `x0_move[k]` is ||x0_pred_{k+1} - x0_pred_k|| / ||x0_pred_end||, how far
    the model's guess of the picture moves from step k to step k + 1. `straightness` is ||y_end - y_start|| / sum of
    step lengths: 1 for a straight line (always, for one step), less the more the sampled path bends."""

    model: str  # the registry's name: "tiny" (the U-Net) or "tiny-dit"
    kind: str  # "vp" (diffusion) or "flow" (rectified flow), as the trace read it
    prediction_type: str  # what the network outputs: "v_prediction" or "flow"
    scheduler: str  # the `scheduler=` it ran with: "ddim", "flow_euler", or "shipped" (the model's own)
    prompt: str
    seed: int
    s: np.ndarray
    step_length: np.ndarray
    turn: np.ndarray
    x0_move: np.ndarray
    straightness: float
    points: np.ndarray = field(repr=False, default=None)
    scale: np.ndarray = field(repr=False, default=None)
    image: Any = field(repr=False, default=None)

    @property
    def steps(self) -> int:
        return len(self.step_length)

    @property
    def total_x0_move(self) -> float:
        """The x0 prediction's total travel, in units of the final x0's norm: 0 if it never changed."""
        return float(self.x0_move.sum())


@dataclass
class StepsCurve:
    """The checker's scores against the number of steps.

    `scores[model][category]` is an array over `steps` of the fraction of pictures `checker.grade` accepts;
    category "overall" is the mean of the categories (as GenEval averages them). `pictures` is how many pictures
    each category's score is made of (the same prompts and seeds at every step count and for every model)."""

    steps: tuple[int, ...]
    models: tuple[str, ...]
    categories: tuple[str, ...]  # GenEval's names (`geneval.CATEGORIES`)
    scores: dict[str, dict[str, np.ndarray]]
    pictures: int
    guidance: dict[str, float]  # each model's guidance_scale, in its pipeline's convention
    cfg_scale: dict[str, float]  # the same as ordinary classifier-free guidance's w (the DiT's g + 1)
    schedulers: dict[str, str]
    seconds: dict[str, float]  # generating and grading, per model
    prompts: dict[str, list[tuple[str, int]]] = field(repr=False, default_factory=dict)  # category -> (prompt, seed)

    def standard_error(self, model: str, category: str = "overall") -> np.ndarray:
        """The binomial standard error of a score: sqrt(p (1 - p) / n) for a category of n pictures, and for
        "overall" (a mean of C categories) sqrt(sum_c p_c (1 - p_c) / n) / C. It is 0 where every picture passed or
        every one failed, however few there were."""
        n = self.pictures
        if category != "overall":
            p = self.scores[model][category]
            return np.sqrt(p * (1 - p) / n)
        var = sum(self.scores[model][c] * (1 - self.scores[model][c]) / n for c in self.categories)
        return np.sqrt(var) / len(self.categories)


def _model_name(model) -> str:
    """The registry name of a built-in model; anything else is refused (the checker reads only the shapes world)."""
    from .. import registry

    if model is None or model == registry.BUILTIN:
        return registry.BUILTIN
    if model == registry.BUILTIN_DIT:
        return registry.BUILTIN_DIT
    raise ValueError(f"models must be built-in models of the shapes world: None (or {registry.BUILTIN!r}, the "
                     f"U-Net) or {registry.BUILTIN_DIT!r} (the DiT), not {model!r}; the lesson's checker reads only "
                     "pictures of the shapes world")


def _model_names(models) -> tuple[str, ...]:
    if models is None or isinstance(models, str):
        models = (models,)
    try:
        models = tuple(models)
    except TypeError:
        raise ValueError(f"models must be a model or a tuple of them (None, 'tiny-dit'), not {models!r}") from None
    names = tuple(_model_name(m) for m in models)
    if not names:
        raise ValueError("models is empty; give one or both of None and 'tiny-dit'")
    if len(set(names)) != len(names):
        raise ValueError(f"models names a model twice: {models!r}")
    return names


def _check_steps(steps, *, name: str = "steps") -> tuple[int, ...]:
    try:
        values = (steps,) if isinstance(steps, int) else tuple(steps)
    except TypeError:
        values = ()
    bad = [n for n in values if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_STEPS]
    if bad or not values:
        raise ValueError(f"{name} must be whole numbers of denoising steps from 1 to {MAX_STEPS}, not {steps!r}")
    return values


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, not {seed!r}")
    return seed


def _scheduler(model: str, sampler: str) -> str | None:
    """The `scheduler=` for `ig.generate`: DDIM for the diffusion model and the flow Euler for the flow model (the
    same Euler step in flow coordinates), or None for the model's own."""
    from .. import registry

    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {', '.join(map(repr, SAMPLERS))}, not {sampler!r}")
    if sampler == "shipped":
        return None
    return "flow_euler" if registry.FAMILIES[model].flow else "ddim"


def _s_of_alpha_bar(alpha_bar):
    """s = sqrt(1 - alpha_bar) / (sqrt(alpha_bar) + sqrt(1 - alpha_bar)), and the divisor a + b of y = x_t / (a + b)."""
    a, b = np.sqrt(alpha_bar), np.sqrt(1 - alpha_bar)
    return b / (a + b), a + b


# Samplers whose last step is known to land on the last x0_pred (s = 0): the flow Euler steps to sigma = 0, and
# DPM-Solver++ with final_sigmas_type="zero" (the U-Net's own) takes a first-order last step to sigma = 0.
_LAND_AT_ZERO = ("FlowMatchEulerDiscreteScheduler", "DPMSolverMultistepScheduler")


def _end_level(trace, sampler: str) -> float:
    """The s where the sampler's last step lands (`sampler` is the scheduler class the recipe names). DDIM steps
    from t to t - 1000 // N: to alpha_bar = 1 once that is below 0 (`set_alpha_to_one`), but to alpha_bar_0 when the
    last timestep is exactly 1000 // N (N = 6, 7, ...)."""
    from .. import schedulers

    config = trace.pipe.scheduler.config
    if sampler in _LAND_AT_ZERO and config.get("final_sigmas_type", "zero") == "zero":
        return 0.0
    if sampler != "DDIMScheduler":
        raise ValueError(f"this trace was sampled by {sampler}; the lesson knows where the last step lands for "
                         f"DDIM and {' and '.join(_LAND_AT_ZERO)} (final_sigmas_type='zero'): trace with "
                         "scheduler='ddim', 'flow_euler' or the built-in models' own")
    ddim = schedulers.build("ddim", config)
    n = len(trace)
    ddim.set_timesteps(n)
    t_end = int(ddim.timesteps[-1]) - ddim.config.num_train_timesteps // n  # DDIMScheduler.step's prev_timestep
    alpha_bar_end = float(ddim.alphas_cumprod[t_end] if t_end >= 0 else ddim.final_alpha_cumprod)
    return float(_s_of_alpha_bar(np.clip(alpha_bar_end, 0.0, 1.0))[0])


def _flow_coordinates(trace, sampler: str):
    """A trace's points in flow coordinates: s (steps + 1,), y (steps + 1, D) and the scale x = scale * y
    (steps + 1,), float64, the end point last.

    The end point is the last step's own update, y_end = (1 - s_end) x0_pred + s_end eps_pred (the DDIM / Euler
    step, and DPM-Solver++'s first-order last step to sigma = 0), so it is the latent the picture is decoded from."""
    x_t = trace.latents.double().flatten(1).numpy()
    if trace.alpha_bar is not None:  # VP: y = x_t / (sqrt(alpha_bar) + sqrt(1 - alpha_bar))
        s, scale = _s_of_alpha_bar(np.clip(trace.alpha_bar.double().numpy(), 0.0, 1.0))
        y = x_t / scale[:, None]
    elif trace.schedule_kind == "flow":  # already y = (1 - sigma) x0 + sigma eps
        s, y = trace.sigmas.double().numpy(), x_t
        scale = np.ones_like(s)
    else:
        raise ValueError(f"this trace has a {trace.schedule_kind!r} schedule; the lesson reads VP and flow ones")
    s_end = _end_level(trace, sampler)
    x0_pred, eps_pred = trace.x0[-1].double().flatten().numpy(), trace.noise[-1].double().flatten().numpy()
    y_end = (1 - s_end) * x0_pred + s_end * eps_pred
    # back from s to the sampler's scale: a / b = (1 - s) / s and a^2 + b^2 = 1 give a + b = 1 / sqrt(1 - 2 s (1 - s))
    scale_end = 1.0 if trace.alpha_bar is None else 1.0 / np.sqrt(1 - 2 * s_end * (1 - s_end))
    return np.append(s, s_end), np.vstack([y, y_end[None]]), np.append(scale, scale_end)


def path_of(trace) -> Path:
    """The measures of `Path` for a trace made by `ig.trace` (VP or flow schedule), sampled by DDIM, the flow Euler
    or DPM-Solver++ (the trace's recipe says which).

    >>> import imagegen_nb as ig
    >>> from imagegen_nb.teach import flow
    >>> p = flow.path_of(ig.trace("a blue square", seed=1, num_inference_steps=2, progress=False))
    >>> p.steps, round(float(p.step_length.sum() * p.straightness), 6)
    (2, 1.0)
    """
    from ..recipes import recipe

    r = recipe(trace.image)
    s, y, scale = _flow_coordinates(trace, str(r.get("sampler")))
    # 1. The steps y_{k+1} - y_k, and the chord from start (pure noise) to end (the picture's latent)
    d = np.diff(y, axis=0)
    length = np.linalg.norm(d, axis=1)
    chord = float(np.linalg.norm(y[-1] - y[0]))
    # 2. Straightness: chord over arc length (1 for a straight line; never above 1, by the triangle inequality)
    straightness = min(chord / float(length.sum()), 1.0) if length.sum() > 0 else 1.0
    # 3. Turning angle between successive steps: arccos of their cosine
    cos = (d[1:] * d[:-1]).sum(1) / np.maximum(length[1:] * length[:-1], 1e-30)
    turn = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    # 4. How far the model's guess x0_pred moves between successive steps, in units of the final guess's norm
    x0 = trace.x0.double().flatten(1).numpy()
    x0_move = np.linalg.norm(np.diff(x0, axis=0), axis=1) / max(float(np.linalg.norm(x0[-1])), 1e-30)
    return Path(model=trace.family, kind=trace.schedule_kind, prediction_type=trace.prediction_type,
                scheduler=r.get("scheduler") or "shipped", prompt=str(r.get("prompt", "")), seed=int(r["seed"]),
                s=s, step_length=length / max(chord, 1e-30), turn=turn, x0_move=x0_move, straightness=straightness,
                points=y.astype(np.float32), scale=scale, image=trace.image)


def paths(prompt: str = "two red circles", *, models=(None, "tiny-dit"), steps: int = 16, seed: int = 0,
          sampler: str = "euler", **kwargs) -> dict[str, Path]:
    """Each model's sampled path for one prompt and seed (`ig.trace`), measured in flow coordinates: per step the
    x0 prediction's move and the turning angle, and the path's straightness (see `Path`). Keyed by the registry's
    model name ("tiny" for `None`). `sampler="euler"` runs both with the same Euler step (DDIM for the U-Net, flow
    Euler for the DiT); `"shipped"` with each model's own scheduler (DPM-Solver++ for the U-Net). Other keyword
    arguments go to `ig.trace`; guidance is each model's default unless `guidance_scale` is given (in each
    pipeline's convention: the DiT's is w - 1).

    >>> from imagegen_nb.teach import flow
    >>> p = flow.paths("a green triangle", models=("tiny-dit",), steps=2)
    >>> list(p), len(p["tiny-dit"].x0_move)
    (['tiny-dit'], 1)
    """
    from ..traces import trace

    names = _model_names(models)
    if isinstance(steps, bool) or not isinstance(steps, int):
        raise ValueError(f"steps must be one whole number of denoising steps for paths(), not {steps!r}")
    (n,) = _check_steps(steps)
    if not isinstance(prompt, str):
        raise ValueError(f"prompt must be a string, not {prompt!r}")
    seed = _check_seed(seed)
    out = {}
    for name in names:
        scheduler = _scheduler(name, sampler)
        tr = trace(prompt, model=None if name == "tiny" else name, num_inference_steps=n, seed=seed,
                   scheduler=scheduler, progress=False, **kwargs)
        out[name] = path_of(tr)
    return out


def _categories(categories) -> tuple[str, ...]:
    """GenEval's category names (`geneval.CATEGORIES`), from its names or the shapes world's."""
    from .geneval import CATEGORIES

    if categories is None:
        return tuple(CATEGORIES)
    categories = (categories,) if isinstance(categories, str) else tuple(categories)
    by_world = {w: g for g, w in CATEGORIES.items()}
    out = []
    for c in categories:
        if c in CATEGORIES:
            out.append(c)
        elif c in by_world:
            out.append(by_world[c])
        else:
            raise ValueError(f"categories: unknown category {c!r}; choose from {', '.join(map(repr, CATEGORIES))} "
                             f"(or the shapes world's names {', '.join(map(repr, by_world))})")
    if not out or len(set(out)) != len(out):
        raise ValueError(f"categories must name each category once, not {categories!r}")
    return tuple(out)


def _curve_prompts(categories, per_category: int, seed: int) -> dict[str, list[tuple[str, int]]]:
    """`per_category` (prompt, seed) pairs per category: the evaluation's prompts on trained colour x shape pairs
    (`tiny.evaluate.prompts`), cycled where a category has fewer distinct prompts, picture j with seed `seed + j`."""
    from ..tiny import evaluate
    from .geneval import CATEGORIES

    listed = [p for p in evaluate.prompts(per_category) if not p.held_out]
    out = {}
    for c in categories:
        texts = [p.text for p in listed if p.category == CATEGORIES[c]]
        out[c] = [(texts[j % len(texts)], seed + j) for j in range(per_category)]
    return out


def steps_curve(models=(None, "tiny-dit"), steps=STEPS, *, per_category: int = 4, seed: int = 0,
                categories=None, sampler: str = "euler", guidance_scale: float | None = None,
                batch_size="auto", progress: bool = True, **kwargs) -> StepsCurve:
    """The checker's score per category at each step count, for each model, on the same prompts and seeds: the
    evaluation's prompts (`imagegen_nb.tiny.evaluate.prompts`, trained colour x shape pairs), `per_category`
    pictures per category, each graded by `imagegen_nb.tiny.checker.grade`. Guidance is each model's registry
    default (the same w = 4 for both) unless `guidance_scale` is given, which goes to each pipeline as it is (so
    the DiT's means w - 1); `sampler` as in `paths`. Pictures are made by `ig.generate` with a list of prompts and
    seeds, `batch_size` at a time; other keyword arguments go to it.

    Cost: per_category x categories x sum(steps) denoising steps per model, each evaluating the network on a
    guided pair (63 steps a picture for the default steps). `StepsCurve.seconds` says what it took; with
    `per_category=1` (six pictures a model) both models together took 35 to 60 s on one thread of a busy 2-core
    machine, the U-Net more than half of it.

    >>> from imagegen_nb.teach import flow
    >>> c = flow.steps_curve(models=("tiny-dit",), steps=(1, 2), per_category=1, categories=("colors",),
    ...                      progress=False)
    >>> c.scores["tiny-dit"]["colors"].shape, c.pictures
    ((2,), 1)
    """
    import time

    from .. import registry
    from ..tasks import generate
    from ..tiny import checker

    names = _model_names(models)
    steps = _check_steps(steps)
    if len(set(steps)) != len(steps):
        raise ValueError(f"steps names a step count twice: {steps!r}")
    steps = tuple(sorted(steps))
    cats = _categories(categories)
    if isinstance(per_category, bool) or not isinstance(per_category, int) or per_category < 1:
        raise ValueError(f"per_category must be a positive whole number of pictures, not {per_category!r}")
    seed = _check_seed(seed)
    if guidance_scale is not None and (isinstance(guidance_scale, bool)
                                       or not isinstance(guidance_scale, (int, float))):
        raise ValueError(f"guidance_scale must be a number or None (each model's default), not {guidance_scale!r}")
    schedulers = {name: _scheduler(name, sampler) for name in names}
    chosen = _curve_prompts(cats, per_category, seed)
    flat = [(c, text, s) for c in cats for text, s in chosen[c]]
    texts, seeds = [t for _, t, _ in flat], [s for _, _, s in flat]

    from tqdm.auto import tqdm

    bar = tqdm(total=len(names) * len(steps), desc="steps curve", disable=not progress)
    scores: dict[str, dict[str, np.ndarray]] = {}
    guidance, cfg_scale, seconds = {}, {}, {}
    for name in names:
        family = registry.FAMILIES[name]
        guidance[name] = family.default_guidance if guidance_scale is None else float(guidance_scale)
        cfg_scale[name] = guidance[name] + family.guidance_offset
        table = {c: np.zeros(len(steps)) for c in cats}
        started = time.perf_counter()
        for i, n in enumerate(steps):
            # 1. The same prompts and seeds at every step count: only N changes
            images = generate(texts, model=None if name == "tiny" else name, num_inference_steps=n, seed=seeds,
                              guidance_scale=guidance[name], scheduler=schedulers[name], batch_size=batch_size,
                              progress=False, **kwargs)
            images = images if isinstance(images, list) else [images]
            # 2. The checker's verdict, as a share of each category's pictures
            for (c, text, _), image in zip(flat, images):
                table[c][i] += checker.grade(image, text) / per_category
            bar.update(1)
        seconds[name] = time.perf_counter() - started
        table["overall"] = sum(table[c] for c in cats) / len(cats)
        scores[name] = table
    bar.close()
    return StepsCurve(steps=steps, models=names, categories=cats, scores=scores, pictures=per_category,
                      guidance=guidance, cfg_scale=cfg_scale,
                      schedulers={m: s or "shipped" for m, s in schedulers.items()}, seconds=seconds,
                      prompts=chosen)


def _dit_training_steps() -> int | None:
    """How many steps the shipped DiT weights were trained for, from their `training.json` (all runs': its
    `total_steps`, else the one run's `step`; None if the file does not say)."""
    import json

    from ..registry import builtin_dit_path

    try:
        training = json.loads((builtin_dit_path() / "training.json").read_text())
        return int(training.get("total_steps", training["step"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


_LABEL = {"tiny": "U-Net (VP diffusion, v-pred)", "tiny-dit": "DiT (rectified flow)"}
_COLOR = {"tiny": "#1f77b4", "tiny-dit": "#d62728"}
_STYLE = {"tiny": {"marker": "o", "ls": "-"}, "tiny-dit": {"marker": "s", "ls": "--", "mfc": "none"}}


def figure(curve: StepsCurve | None = None, path: dict[str, Path] | None = None, *, prompt: str = "two red circles",
           path_steps: int = 16, **kwargs):
    """One figure: the overall checker score against steps for each model (log-2 step axis, a band of one standard
    error), the x0 prediction's move per step and the turning angle along each model's path (`paths(prompt)`), and
    small multiples per category with the shapes world's chance level (`geneval.CHANCE`). Computes `steps_curve(
    **kwargs)` and `paths(prompt, steps=path_steps, ...)` unless given.

    >>> from imagegen_nb.teach import flow
    >>> c = flow.steps_curve(models=("tiny-dit",), steps=(1, 2), per_category=1, progress=False)
    >>> fig = flow.figure(c, flow.paths("a red circle", models=("tiny-dit",), steps=2))
    >>> fig.axes[0].get_xscale(), fig.axes[0].get_ylabel()
    ('log', 'checker score (fraction correct)')
    """
    from ._common import new_figure
    from .geneval import CHANCE

    if curve is None:
        curve = steps_curve(**kwargs)
    if path is None:
        sampler = "shipped" if set(curve.schedulers.values()) == {"shipped"} else "euler"
        path = paths(prompt, models=tuple(None if m == "tiny" else m for m in curve.models), steps=path_steps,
                     sampler=sampler)
    labels = dict(_LABEL)
    if "tiny-dit" in curve.models or "tiny-dit" in path:
        trained = _dit_training_steps()
        labels["tiny-dit"] = "DiT (rectified flow)" + (f", {trained:,} training steps" if trained else "")
    cats = curve.categories
    ncols = max(len(cats), 3)
    sampler_text = ("one first-order Euler integrator for both (DDIM for the U-Net, flow Euler for the DiT)"
                    if set(curve.schedulers.values()) <= {"ddim", "flow_euler"} else
                    ", ".join(f"{m}: {s}" for m, s in curve.schedulers.items()))
    notes = [f"sampler: {sampler_text}"]
    if "tiny-dit" in curve.models:
        notes.append("the DiT has no few-step (distilled or shortcut) mode: its 1-4 step points are its ordinary "
                     "sampler with fewer steps")
    fig, axes = new_figure(2, ncols, cell=2.4, title="Diffusion (U-Net) and flow matching (DiT): the checker's score "
                                                     "against steps, and how the sampled paths bend")
    fig.set_size_inches(max(14.0, 2.35 * ncols), 8.0)
    fig.supxlabel("\n".join(notes), fontsize=8, color="0.3")
    # The top row as three wide panels: take the grid's axes away and add them back in reading order
    gs = axes[0, 0].get_gridspec()
    for ax in axes.flat:
        ax.remove()
    third = ncols // 3
    ax_score = fig.add_subplot(gs[0, :third])
    ax_move = fig.add_subplot(gs[0, third:2 * third])
    ax_turn = fig.add_subplot(gs[0, 2 * third:])
    small = [fig.add_subplot(gs[1, k]) for k in range(len(cats))]
    x = np.array(curve.steps)

    # 1. Overall score against steps, with one standard error
    for m in curve.models:
        y = curve.scores[m]["overall"]
        se = curve.standard_error(m)
        ax_score.plot(x, y, "o-", color=_COLOR[m], label=f"{labels[m]}, w = {curve.cfg_scale[m]:g}")
        ax_score.fill_between(x, np.clip(y - se, 0, 1), np.clip(y + se, 0, 1), color=_COLOR[m], alpha=0.15)
    chance = sum(CHANCE[c] for c in cats) / len(cats)
    ax_score.axhline(chance, color="gray", ls=":", lw=1, label=f"chance ({chance:.2f})")
    _log2_axis(ax_score, x)
    ax_score.set_ylim(-0.02, 1.3)  # room above 1 for the legend, so it never covers a score
    ax_score.set_yticks(np.linspace(0, 1, 6))
    ax_score.set_xlabel("denoising steps")
    ax_score.set_ylabel("checker score (fraction correct)")
    ax_score.set_title(f"overall: {curve.pictures} picture{'s' if curve.pictures > 1 else ''} per category x "
                       f"{len(cats)} categories,\nthe same prompts and seeds at every step count; band: 1 s.e.",
                       fontsize=8)
    ax_score.legend(fontsize=7, loc="upper left", framealpha=0.9)
    ax_score.grid(alpha=0.3)

    # 2. The paths: where along the way (s: 1 = pure noise, 0 = picture) the x0 prediction moves, and the turns
    for m, p in path.items():
        mid = p.s[1:-1]  # the move from step k to k + 1 is read at the noise level of step k + 1
        ax_move.plot(mid, p.x0_move, "o-", ms=3, color=_COLOR.get(m),
                     label=f"{labels.get(m, m)}\ntotal move {p.total_x0_move:.2f}")
        ax_turn.plot(mid, p.turn, "o-", ms=3, color=_COLOR.get(m),
                     label=f"{labels.get(m, m)}\nstraightness {p.straightness:.3f}")
    some = next(iter(path.values()))
    for ax in (ax_move, ax_turn):
        ax.set_xlim(1.02, -0.02)
        ax.set_xlabel("noise level s (1 = pure noise, 0 = picture); a marker per step", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper right", framealpha=0.9)
    ax_move.set_ylabel("||x0_pred(k+1) - x0_pred(k)|| / ||x0_pred(end)||", fontsize=8)
    ax_move.set_title(f"how far the model's guess of the picture moves per step\n"
                      f"{some.prompt!r}, seed {some.seed}, {some.steps} steps", fontsize=8)
    ax_move.set_ylim(bottom=0)
    ax_turn.set_ylabel("angle between successive steps (degrees)", fontsize=8)
    ax_turn.set_title("how much the sampled path turns (0 = straight on)\nstraightness = chord / length, in "
                      "y = (1 - s) x0 + s eps", fontsize=8)
    ax_turn.set_ylim(bottom=0)

    # 3. Small multiples per category, with the shapes world's chance level
    for k, (ax, c) in enumerate(zip(small, cats)):
        for m in curve.models:  # the DiT's markers hollow and dashed, so that equal scores show both
            ax.plot(x, curve.scores[m][c], **_STYLE.get(m, {}), ms=4, color=_COLOR[m])
        ax.axhline(CHANCE[c], color="gray", ls=":", lw=1)
        _log2_axis(ax, x)
        ax.set_ylim(-0.05, 1.05)
        ax.set_title(c, fontsize=9)
        ax.set_xlabel("steps", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if k == 0:
            ax.set_ylabel(f"score ({curve.pictures} picture{'s' if curve.pictures > 1 else ''}); "
                          "dotted: chance", fontsize=8)
    return fig


def _log2_axis(ax, x) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(x, [str(v) for v in x])
    ax.minorticks_off()
