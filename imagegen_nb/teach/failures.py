"""Lesson: what text-to-image models still get wrong, measured on the two built-in models. GenEval (Ghosh et al.
2023, see `imagegen_nb.teach.geneval`) found the same pattern in every model it scored: a single object is nearly
always right, while counting, position ("a dog to the left of a cat") and colour attribution ("a red bench and a
green car") are the hard categories (SD 1.5: counting 0.35, position 0.04, colour attribution 0.06; SDXL 0.39, 0.15
and 0.23, `geneval.PUBLISHED`). This lesson asks the same questions of the built-in U-Net (`model=None`) and DiT
(`model="tiny-dit"`) in their shapes world, and reports what it measures, not what the pattern leads one to expect.

**What is measured.** `measure` generates `per_category` pictures for each of GenEval's six categories from the
evaluation's prompts (`imagegen_nb.tiny.evaluate.prompts`, trained colour x shape pairs; picture j of a category
has seed `seed + j`) and grades each with `imagegen_nb.tiny.checker.grade`, GenEval's rules on the world's
checker. Beside each score: the category's chance level in the shapes world (`geneval.CHANCE`: what a model that
draws the world perfectly but ignores the prompt scores), its binomial standard error sqrt(p (1 - p) / n), and
the same categories on prompts that name the colour x shape pairs no training caption holds (`world.HELD_OUT`:
purple triangle, orange circle, cyan square), where a model must put together a colour and a shape it only ever
saw apart. `explain` says why a picture failed: the checker's detections against what the prompt asks (a shape it
cannot read, a wrong shape or colour, a missing object, the wrong count, the wrong side), and `measure` counts
those reasons.

**Counting beyond four cannot be asked here.** Real models' counting gets worse as the number grows. The shapes
world can draw five or six shapes, but its grammar writes only the counts two, three and four (`world.NUMBERS`,
the counts of every training caption): both built-in models' tokenizers read "five" as an unknown token, and the
checker's grammar (`checker.parse`) cannot grade it; "one" is not a word either (a single object is "a circle",
graded as present, not counted). So `counting` measures accuracy at two, three and four objects and how many
shapes were drawn when a count was asked (the checker's matching shapes, whose count `grade` compares), which is
where an off-by-one shows.

**Not comparable as quality.** The built-in models are scored in a world far easier than GenEval's: three
shapes and eight flat colours on plain backgrounds at 64x64 pixels, graded by a checker of colours and outlines,
where SD 1.5 and SDXL drew 80 kinds of everyday object in photographs graded by an object detector. A built-in
score near 1 says nothing of quality beside a real model's; what carries over is the pattern across categories.

**What the shapes world cannot show.** Two failures real models are best known for, malformed hands and garbled
text in the picture, have no counterpart here: the world has no bodies and no letters, its vocabulary has no word
to write, and the checker reads neither. GenEval does not score them either; they are judged by people or by
text-reading (OCR) benchmarks on real models.

The DiT is still in training: its numbers are those of the shipped weights (the figure gives their training steps)
and change as it trains; the figures and `Measurement.summary()` read every number from the measurement.

>>> from imagegen_nb.teach import failures
>>> from imagegen_nb.tiny import world
>>> scene = world.sample_scene(seed=1, category="position")
>>> world.caption(scene)
'a cyan circle to the left of a pink square'
>>> v = failures.explain(world.render(scene), "a cyan circle to the right of a pink square")
>>> v.passed, v.kind, v.reason
(False, 'wrong side', 'cyan circle is left of pink square, asked right of')
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import arguments

__all__ = ["KINDS", "ROWS", "Counting", "Gallery", "Measurement", "Verdict", "counting", "explain", "figure",
           "gallery", "measure"]

# Why a picture fails its prompt, as `explain` names it (checked in this order, for the first object that fails).
KINDS = ("shape unreadable", "wrong shape", "wrong colour", "missing", "only one", "wrong count", "wrong side")
HELD_OUT_CATEGORIES = ("colors", "color attribution", "position")  # the categories with held-out prompts
ROWS = ("held-out pairs", "held-out, two objects", "position", "counting")  # the gallery's rows


# --- Why a picture passes or fails ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Verdict:
    """The checker's verdict on one picture and its prompt, and why."""

    prompt: str
    passed: bool  # `checker.grade(image, prompt)`
    kind: str | None  # one of KINDS for a failure, None for a pass
    reason: str  # in words: what was asked against what the checker found
    found: tuple[str, ...]  # the checker's detections, "colour shape" left to right ("blob": no shape it can name)


def _name(d) -> str:
    return f"{d.color} {'blob' if d.shape == 'unknown' else d.shape}"


def _want(want: tuple[str | None, str]) -> str:
    return " ".join(w for w in want if w)


def _matches(d, want: tuple[str | None, str]) -> bool:
    """Whether a detection is the object a prompt names (its shape, and its colour where the prompt gives one)."""
    return d.shape == want[1] and (want[0] is None or d.color == want[0])


def _missing_kind(found, want: tuple[str | None, str]) -> str:
    color, shape = want
    same_color = [d for d in found if color is None or d.color == color]
    if any(d.shape == "unknown" for d in same_color):
        return "shape unreadable"
    if same_color:
        return "wrong shape"
    if any(d.shape == shape for d in found):
        return "wrong colour"
    return "missing"


def _diagnose(found, spec) -> tuple[bool, str | None, str]:
    """GenEval's rules as `checker.grade` applies them, with the first rule that fails named."""
    if spec.count is not None:
        n = sum(_matches(d, spec.objects[0]) for d in found)
        asked = f"{spec.count} {_want(spec.objects[0])}s"
        if n == spec.count:
            return True, None, f"asked {asked}, found {n}"
        return False, "wrong count", f"asked {asked}, found {n}"
    hits = [[d for d in found if _matches(d, want)] for want in spec.objects]
    for want, h in zip(spec.objects, hits):
        if not h:
            kind = _missing_kind(found, want)
            return False, kind, f"no {_want(want)}: {kind}"
    if spec.relation is None:
        if len(spec.objects) == 2 and spec.objects[0] == spec.objects[1] and len(hits[0]) < 2:
            return False, "only one", f"asked two of {_want(spec.objects[0])}, found one"
        return True, None, "every object found"
    # the largest match of each, as the checker picks them
    a, b = max(hits[0], key=lambda d: d.area), max(hits[1], key=lambda d: d.area)
    dx, dy = a.x - b.x, a.y - b.y
    right = {"left of": dx < 0, "right of": dx > 0, "above": dy < 0, "below": dy > 0}[spec.relation]
    if right:
        return True, None, f"{_want(spec.objects[0])} {spec.relation} {_want(spec.objects[1])}"
    side = ("left of" if dx < 0 else "right of") if spec.relation in ("left of", "right of") else \
        ("above" if dy < 0 else "below")
    return False, "wrong side", f"{_want(spec.objects[0])} is {side} {_want(spec.objects[1])}, asked {spec.relation}"


def explain(image, prompt: str) -> Verdict:
    """The checker's verdict on a picture for a prompt of the shapes world (`checker.grade`), and why: what the
    prompt asks (`checker.parse`) against the shapes the checker finds (`checker.detect`). A failure is named by
    the first rule that fails, for the first object that fails it: one of `KINDS` ("shape unreadable": a blob of
    the asked colour that is no circle, square or triangle the checker can name; "wrong shape"; "wrong colour": the
    shape is there, in another colour; "missing"; "wrong count"; "wrong side": both objects there, on the wrong
    side of each other).

    >>> from imagegen_nb.teach import failures
    >>> from imagegen_nb.tiny import world
    >>> scene = world.sample_scene(seed=0, category="position")
    >>> failures.explain(world.render(scene), world.caption(scene)).passed
    True
    """
    from ..tiny import checker

    prompt = arguments.text("prompt", prompt)
    spec = checker.parse(prompt)  # a prompt outside the world's grammar is a ValueError naming it
    found = checker.detect(image)
    passed = bool(checker.grade(image, prompt))
    agrees, kind, reason = _diagnose(found, spec)
    if agrees != passed:  # cannot happen while _diagnose follows checker.grade's rules
        kind, reason = (None, "the checker accepts it") if passed else ("missing", "the checker rejects it")
    return Verdict(prompt, passed, kind, reason, tuple(_name(d) for d in found))


# --- Measuring -----------------------------------------------------------------------------------------------

def _model_name(model) -> str:
    from .. import registry

    if model is None or model == registry.BUILTIN:
        return registry.BUILTIN
    if model == registry.BUILTIN_DIT:
        return registry.BUILTIN_DIT
    raise ValueError(f"model must be a built-in model of the shapes world: None (or {registry.BUILTIN!r}, the U-Net) "
                     f"or {registry.BUILTIN_DIT!r} (the DiT), not {model!r}; the checker reads only pictures of the "
                     "shapes world")


def _model_names(models) -> tuple[str, ...]:
    if models is None or isinstance(models, str):
        models = (models,)
    try:
        models = tuple(models)
    except TypeError:
        raise ValueError(f"models must be a model or a tuple of them (None, 'tiny-dit'), not {models!r}") from None
    try:
        names = tuple(_model_name(m) for m in models)
    except ValueError as error:
        raise ValueError(f"models: {error}") from None
    if not names:
        raise ValueError("models is empty; give one or both of None and 'tiny-dit'")
    if len(set(names)) != len(names):
        raise ValueError(f"models names a model twice: {models!r}")
    return names


def _check_counts(counts) -> tuple[int, ...]:
    from ..tiny import world

    try:
        values = (counts,) if isinstance(counts, int) else tuple(counts)
    except TypeError:
        values = ()
    words = ", ".join(f"{n} ({w})" for n, w in world.NUMBERS.items())
    bad = [n for n in values if isinstance(n, bool) or not isinstance(n, int) or n not in world.NUMBERS]
    if bad or not values:
        raise ValueError(f"counts must be numbers the shapes world's grammar can write: {words}, not {counts!r}. The "
                         "world can draw more shapes, but both built-in models' tokenizers read 'five' as an unknown "
                         "token and the checker cannot grade it; one object is a single-object prompt ('a circle')")
    if len(set(values)) != len(values):
        raise ValueError(f"counts names a count twice: {counts!r}")
    return tuple(sorted(values))


def _generate(name: str, texts: list[str], seeds: list[int], batch_size, kwargs) -> list:
    from ..tasks import generate

    images = generate(texts, model=None if name == "tiny" else name, seed=seeds, batch_size=batch_size,
                      progress=False, **kwargs)
    return images if isinstance(images, list) else [images]


def _cycled(texts: list[str], n: int, seed: int) -> list[tuple[str, int]]:
    """`n` (prompt, seed) pairs: the prompts in turn, picture j with seed `seed + j`."""
    return [(texts[j % len(texts)], seed + j) for j in range(n)]


def _measure_prompts(per_category: int, seed: int) -> tuple[dict, dict]:
    """(category -> (prompt, seed) pairs) on trained pairs and on held-out pairs, from `tiny.evaluate.prompts`."""
    from ..tiny import evaluate
    from .geneval import CATEGORIES

    listed = evaluate.prompts(per_category)
    trained, held = {}, {}
    for c, world_name in CATEGORIES.items():
        texts = [p.text for p in listed if p.category == world_name and not p.held_out]
        trained[c] = _cycled(texts, per_category, seed)
        held_texts = [p.text for p in listed if p.category == world_name and p.held_out]
        if c in HELD_OUT_CATEGORIES:
            held[c] = _cycled(held_texts, per_category, seed)
    return trained, held


@dataclass
class Counting:
    """The checker's accuracy by the number of objects a counting prompt asks for, for one model."""

    model: str
    counts: tuple[int, ...]
    accuracy: dict[int, float]  # count -> share of its pictures with exactly that many matching shapes
    pictures: dict[int, int]  # count -> how many pictures were graded
    found: dict[int, dict[int, int]]  # count asked -> {shapes found: pictures}: the checker's matching shapes
    seed: int
    prompts: dict[int, list[tuple[str, int]]] = field(repr=False, default_factory=dict)  # count -> (prompt, seed)

    def standard_error(self, count: int) -> float:
        """sqrt(p (1 - p) / n) for one count's accuracy."""
        p, n = self.accuracy[count], self.pictures[count]
        return float(np.sqrt(p * (1 - p) / n))


def counting(model=None, *, counts=(2, 3, 4), per_count: int = 6, seed: int = 0, batch_size="auto",
             progress: bool = True, **kwargs) -> Counting:
    """Counting accuracy by the number asked for: `per_count` pictures for each count, from the evaluation's
    counting prompts (`tiny.evaluate.prompts`: "two circles", "four triangles", ... taken in turn, picture j with
    seed `seed + j`), each graded by `checker.grade` (exactly that many shapes of the asked kind). `found` keeps
    how many the checker found in each picture, so an off-by-one shows as a count beside the asked one.

    `counts` can only be 2, 3 and 4: the counts the world's grammar writes and every training caption uses. The
    world draws more, but "five" is an unknown token to both models and a prompt the checker cannot parse (see the
    module's text). Other keyword arguments go to `ig.generate`.

    >>> from imagegen_nb.teach import failures
    >>> c = failures.counting("tiny-dit", counts=(2,), per_count=1, num_inference_steps=2, progress=False)
    >>> c.pictures, 0 <= c.accuracy[2] <= 1
    ({2: 1}, True)
    """
    from ..tiny import checker, evaluate

    name = _model_name(model)
    counts = _check_counts(counts)
    per_count = arguments.integer("per_count", per_count, low=1)
    seed = arguments.integer("seed", seed)
    progress = arguments.flag("progress", progress)
    listed = [p.text for p in evaluate.prompts(16) if p.category == "counting" and not p.held_out]
    chosen = {n: _cycled([t for t in listed if checker.parse(t).count == n], per_count, seed) for n in counts}
    flat = [(n, text, s) for n in counts for text, s in chosen[n]]

    from tqdm.auto import tqdm

    images = []
    with tqdm(total=len(flat), desc=f"counting ({name})", disable=not progress) as bar:
        for start in range(0, len(flat), 8):
            part = flat[start:start + 8]
            images += _generate(name, [t for _, t, _ in part], [s for _, _, s in part], batch_size, kwargs)
            bar.update(len(part))
    hits = {n: 0 for n in counts}
    found: dict[int, dict[int, int]] = {n: {} for n in counts}
    for (n, text, _), image in zip(flat, images):
        hits[n] += bool(checker.grade(image, text))
        want = checker.parse(text).objects[0]
        k = sum(_matches(d, want) for d in checker.detect(image))
        found[n][k] = found[n].get(k, 0) + 1
    return Counting(model=name, counts=counts, accuracy={n: hits[n] / per_count for n in counts},
                    pictures={n: per_count for n in counts},
                    found={n: dict(sorted(f.items())) for n, f in found.items()}, seed=seed, prompts=chosen)


@dataclass
class Measurement:
    """What `measure` found: per model, the checker's score per GenEval category (and "overall", their mean) on
    trained colour x shape pairs and on held-out ones, why pictures failed, and counting by number; beside them the
    shapes world's chance levels and GenEval's published numbers for real models (not comparable: see the module)."""

    models: tuple[str, ...]
    categories: tuple[str, ...]  # GenEval's names (`geneval.CATEGORIES`)
    scores: dict[str, dict[str, float]]  # model -> category (and "overall") -> fraction correct
    held_out: dict[str, dict[str, float]]  # model -> category of HELD_OUT_CATEGORIES -> fraction correct
    pictures: int  # per category, and per held-out category
    chance: dict[str, float]  # `geneval.CHANCE`: the shapes world's chance level per category
    published: dict[str, dict[str, float]]  # `geneval.PUBLISHED`: real models on GenEval's real-world prompts
    reasons: dict[str, dict[str, int]]  # model -> kind (KINDS) -> failed pictures, trained and held-out together
    counting: dict[str, Counting]  # model -> counting by number (empty when per_count=0)
    seed: int
    dit_training_steps: int | None  # the shipped DiT's training steps, from its training.json
    seconds: dict[str, float]  # generating and grading, per model
    prompts: dict[str, list[tuple[str, int]]] = field(repr=False, default_factory=dict)  # category -> (prompt, seed)
    held_out_prompts: dict[str, list[tuple[str, int]]] = field(repr=False, default_factory=dict)

    def standard_error(self, model: str, category: str, *, held_out: bool = False) -> float:
        """The binomial standard error sqrt(p (1 - p) / n) of a category's score (n = `pictures`); for "overall",
        the mean of C categories, sqrt(sum_c p_c (1 - p_c) / n) / C. It is 0 where every picture passed or every
        one failed, however few there were."""
        table = self.held_out[model] if held_out else self.scores[model]
        n = self.pictures
        if category == "overall":
            return float(np.sqrt(sum(table[c] * (1 - table[c]) / n for c in self.categories)) / len(self.categories))
        return float(np.sqrt(table[category] * (1 - table[category]) / n))

    def hardest(self, model: str, k: int = 2) -> list[tuple[str, float]]:
        """The `k` lowest-scoring categories of a model (GenEval's order breaks ties), with their scores; a model of
        `published` too."""
        table = self.published[model] if model in self.published else self.scores[model]
        order = sorted(self.categories, key=lambda c: (table[c], self.categories.index(c)))
        return [(c, table[c]) for c in order[:k]]

    def real_hardest(self, k: int = 3) -> list[str]:
        """The `k` categories with the lowest mean of the published real models' scores (`published`): the ones
        GenEval found hard."""
        return sorted(self.categories, key=lambda c: (np.mean([v[c] for v in self.published.values()]),
                                                      self.categories.index(c)))[:k]

    def summary(self) -> str:
        """The measurement in sentences, every number read from it."""
        hard = self.real_hardest()
        lines = []
        for m in self.models:
            top = max(self.scores[m][c] for c in self.categories)
            low = ", ".join(f"{c} {v:.2f}" for c, v in self.hardest(m) if v < top)
            low = f"lowest: {low} (best {top:.2f})" if low else f"every category {top:.2f}"
            rest = [c for c in self.categories if c not in hard]
            pattern = (f"Real models' {len(hard)} hardest categories here: "
                       + ", ".join(f"{c} {self.scores[m][c]:.2f}" for c in hard)
                       + f" (mean {np.mean([self.scores[m][c] for c in hard]):.2f}; the other {len(rest)}: mean "
                       f"{np.mean([self.scores[m][c] for c in rest]):.2f}).")
            held = ", ".join(f"{c} {self.held_out[m][c]:.2f} (trained {self.scores[m][c]:.2f})"
                             for c in HELD_OUT_CATEGORIES if c in self.held_out[m])
            failed = sum(self.reasons[m].values())
            why = ", ".join(f"{kind} {n}" for kind, n in sorted(self.reasons[m].items(), key=lambda kv: -kv[1]))
            line = (f"{_LABEL[m]}: overall {self.scores[m]['overall']:.2f} ({self.pictures} pictures a category, "
                    f"seed {self.seed}); {low}. {pattern} Held-out pairs: {held}. "
                    f"Failures: {failed} of {self.pictures * (len(self.categories) + len(self.held_out[m]))}"
                    + (f" ({why})" if why else "") + ".")
            if m in self.counting:
                c = self.counting[m]
                line += " Counting by number: " + ", ".join(
                    f"{n}: {c.accuracy[n]:.2f}" for n in c.counts) + f" ({c.pictures[c.counts[0]]} pictures each)."
            lines.append(line)
        for name in self.published:
            low = ", ".join(f"{c} {v:.2f}" for c, v in self.hardest(name))
            overall = self.published[name]["overall"]
            lines.append(f"{name} on GenEval (published): overall {overall:.2f}; lowest: {low}.")
        return "\n".join(lines)


def _dit_training_steps() -> int | None:
    import json

    from ..registry import builtin_dit_path

    try:
        training = json.loads((builtin_dit_path() / "training.json").read_text())
        return int(training.get("total_steps", training["step"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def measure(models=(None, "tiny-dit"), *, per_category: int = 8, per_count: int = 6, counts=(2, 3, 4),
            seed: int = 0, batch_size="auto", progress: bool = True, **kwargs) -> Measurement:
    """Score the built-in models where real models fail: `per_category` pictures per GenEval category on trained
    colour x shape pairs (the evaluation's prompts, `tiny.evaluate.prompts`, in turn; picture j with seed
    `seed + j`), as many on held-out pairs for colours, colour attribution and position, each graded by
    `checker.grade` and explained by `explain`; and `counting(model, counts=counts, per_count=per_count)` for each
    model (`per_count=0` skips it). The same prompts and seeds for every model. Chance levels come from
    `geneval.CHANCE` and real models' numbers from `geneval.PUBLISHED`: those are GenEval's photographs graded by
    an object detector, a far harder world than 64x64 flat shapes, so the two are comparable only as a pattern
    across categories, never as quality. Other keyword arguments go to `ig.generate`.

    Cost: (9 x per_category + 3 x per_count) pictures per model. On one thread of a busy 2-core machine a U-Net
    picture took 0.5 to 0.9 s and a DiT picture 0.2 to 0.4 s (batched); `Measurement.seconds` says what it took.

    >>> from imagegen_nb.teach import failures
    >>> r = failures.measure(("tiny-dit",), per_category=1, per_count=0, num_inference_steps=2, progress=False)
    >>> sorted(r.held_out["tiny-dit"]), r.chance["counting"] > 0
    (['color attribution', 'colors', 'position'], True)
    """
    import time

    from .geneval import CATEGORIES, CHANCE, PUBLISHED

    names = _model_names(models)
    per_category = arguments.integer("per_category", per_category, low=1)
    per_count = arguments.integer("per_count", per_count, low=0)
    counts = _check_counts(counts)
    seed = arguments.integer("seed", seed)
    progress = arguments.flag("progress", progress)
    trained, held = _measure_prompts(per_category, seed)
    flat = [(False, c, t, s) for c in CATEGORIES for t, s in trained[c]]
    flat += [(True, c, t, s) for c in HELD_OUT_CATEGORIES for t, s in held[c]]

    from tqdm.auto import tqdm

    scores, held_scores, reasons, count_results, seconds = {}, {}, {}, {}, {}
    with tqdm(total=len(names) * len(flat), desc="failures", disable=not progress) as bar:
        for name in names:
            started = time.perf_counter()
            # 1. The same prompts and seeds for every model, a batch at a time
            images = []
            for start in range(0, len(flat), 8):
                part = flat[start:start + 8]
                images += _generate(name, [t for *_, t, _ in part], [s for *_, s in part], batch_size, kwargs)
                bar.update(len(part))
            # 2. The checker's verdict, and why each failure failed
            hits: dict[tuple[bool, str], int] = {}
            why: dict[str, int] = {}
            for (is_held, c, text, _), image in zip(flat, images):
                v = explain(image, text)
                hits[is_held, c] = hits.get((is_held, c), 0) + v.passed
                if not v.passed:
                    why[v.kind] = why.get(v.kind, 0) + 1
            table = {c: hits.get((False, c), 0) / per_category for c in CATEGORIES}
            table["overall"] = sum(table[c] for c in CATEGORIES) / len(CATEGORIES)
            scores[name] = table
            held_scores[name] = {c: hits.get((True, c), 0) / per_category for c in HELD_OUT_CATEGORIES}
            reasons[name] = {k: why[k] for k in KINDS if k in why}
            # 3. Counting by number
            if per_count:
                count_results[name] = counting(None if name == "tiny" else name, counts=counts, per_count=per_count,
                                               seed=seed, batch_size=batch_size, progress=False, **kwargs)
            seconds[name] = time.perf_counter() - started
    return Measurement(models=names, categories=tuple(CATEGORIES), scores=scores, held_out=held_scores,
                       pictures=per_category, chance={c: CHANCE[c] for c in CATEGORIES},
                       published={m: dict(v) for m, v in PUBLISHED.items()}, reasons=reasons,
                       counting=count_results, seed=seed,
                       dit_training_steps=_dit_training_steps() if "tiny-dit" in names else None,
                       seconds=seconds, prompts=trained, held_out_prompts=held)


# --- Pictures ------------------------------------------------------------------------------------------------

@dataclass
class Gallery:
    """Pictures of one model on the prompts real models find hard, each with the checker's verdict and why."""

    model: str
    rows: dict[str, list[tuple[Any, Verdict, int]]]  # row name -> (picture, verdict, seed) in prompt order
    seed: int

    def failed(self, row: str) -> int:
        """How many of a row's pictures the checker rejected."""
        return sum(not v.passed for _, v, _ in self.rows[row])

    def figure(self):
        """The pictures in a grid, a row per kind of prompt: each titled with its prompt, the verdict (a green frame
        for pass, red for fail) and the reason, with the detections the checker made."""
        from ._common import new_figure, show_image

        names = list(self.rows)
        ncols = max(len(v) for v in self.rows.values())
        label = _LABEL[self.model] + (f", {steps:,} training steps" if self.model == "tiny-dit"
                                      and (steps := _dit_training_steps()) else "")
        fig, axes = new_figure(len(names), ncols, cell=2.3,
                               title=f"{label}\nthe first {ncols} prompts of each row, in order (not picked for "
                                     "failing), with the checker's verdict")
        fig.set_size_inches(max(8.0, 2.4 * ncols), 3.25 * len(names) + 0.9)
        for i, row in enumerate(names):
            for j in range(ncols):
                ax = axes[i, j]
                if j >= len(self.rows[row]):
                    ax.set_axis_off()
                    continue
                image, v, seed = self.rows[row][j]
                show_image(ax, image)
                color = "#2ca02c" if v.passed else "#d62728"
                for spine in ax.spines.values():
                    spine.set_visible(True)
                    spine.set_color(color)
                    spine.set_linewidth(3)
                ax.set_title("\n".join(textwrap.wrap(v.prompt, 30)), fontsize=7.5)
                verdict = "PASS" if v.passed else f"FAIL: {v.reason}"
                ax.set_xlabel("\n".join(textwrap.wrap(verdict, 34) + textwrap.wrap(f"found: {_tally(v.found)}", 34))
                              + f"\nseed {seed}", fontsize=6.5, color=color if not v.passed else "black")
                if j == 0:
                    ax.set_ylabel(f"{row}\n{self.failed(row)} of {len(self.rows[row])} failed", fontsize=8.5)
        return fig


def _tally(found: tuple[str, ...]) -> str:
    """Detections in few words: "yellow square x4, green square"."""
    counts: dict[str, int] = {}
    for name in found:
        counts[name] = counts.get(name, 0) + 1
    return ", ".join(name if n == 1 else f"{name} x{n}" for name, n in counts.items()) or "nothing"


def _gallery_prompts(rows, per_row: int, seed: int) -> dict[str, list[tuple[str, int]]]:
    from ..tiny import evaluate

    listed = evaluate.prompts(max(16, 4 * per_row))
    source = {"held-out pairs": ("colors", True), "held-out, two objects": ("color_attr", True),
              "position": ("position", False), "counting": ("counting", False)}
    out = {}
    for row in rows:
        category, held = source[row]
        out[row] = _cycled([p.text for p in listed if p.category == category and p.held_out == held], per_row, seed)
    return out


def gallery(model=None, *, rows=ROWS, per_row: int = 4, seed: int = 0, batch_size="auto", progress: bool = True,
            **kwargs) -> Gallery:
    """Pictures of a built-in model where real models fail: for each row of `ROWS` ("held-out pairs": a colour x
    shape pair no training caption holds, "held-out, two objects": one in a colour-attribution prompt, "position"
    and "counting"), the first `per_row` of the evaluation's prompts of that kind (`tiny.evaluate.prompts`, in
    turn; picture j with seed `seed + j`), not chosen for how they come out. Each is graded by `explain`
    (`checker.grade`'s verdict and why). `Gallery.figure()` draws them. Other keyword arguments go to
    `ig.generate`.

    >>> from imagegen_nb.teach import failures
    >>> g = failures.gallery("tiny-dit", rows=("position",), per_row=1, num_inference_steps=2, progress=False)
    >>> len(g.rows["position"]), len(g.figure().axes)
    (1, 1)
    """
    name = _model_name(model)
    if isinstance(rows, str):
        rows = (rows,)
    try:
        rows = tuple(rows)
    except TypeError:
        rows = ()
    bad = [r for r in rows if r not in ROWS]
    if bad or not rows or len(set(rows)) != len(rows):
        raise ValueError(f"rows must name each of {', '.join(map(repr, ROWS))} at most once, not {rows!r}")
    per_row = arguments.integer("per_row", per_row, low=1)
    seed = arguments.integer("seed", seed)
    progress = arguments.flag("progress", progress)
    chosen = _gallery_prompts(rows, per_row, seed)
    flat = [(row, t, s) for row in rows for t, s in chosen[row]]

    from tqdm.auto import tqdm

    images = []
    with tqdm(total=len(flat), desc=f"gallery ({name})", disable=not progress) as bar:
        for start in range(0, len(flat), 8):
            part = flat[start:start + 8]
            images += _generate(name, [t for _, t, _ in part], [s for *_, s in part], batch_size, kwargs)
            bar.update(len(part))
    out: dict[str, list] = {row: [] for row in rows}
    for (row, text, s), image in zip(flat, images):
        out[row].append((image, explain(image, text), s))
    return Gallery(model=name, rows=out, seed=seed)


# --- The figure ----------------------------------------------------------------------------------------------

_LABEL = {"tiny": "U-Net (built-in)", "tiny-dit": "DiT (built-in)"}
_COLOR = {"tiny": "#1f77b4", "tiny-dit": "#d62728"}
_PUBLISHED_COLOR = ("#9e9e9e", "#5f5f5f")
_CANNOT = ("What the shapes world cannot show: malformed hands and garbled text in the picture, the failures real "
           "models are best known for. The world has no bodies and no letters, its vocabulary has no word to write, "
           "and the checker reads neither; GenEval does not score them either.")
_CAVEAT = ("Not comparable as quality: the built-in models draw 3 shapes in 8 flat colours on plain backgrounds at "
           "64x64 pixels, graded by a checker of colours and outlines; SD 1.5 and SDXL drew GenEval's 80 everyday "
           "objects in photographs, graded by an object detector (Ghosh et al. 2023). The shapes world is far "
           "easier: read the pattern across categories, not the bars' heights side by side.")


def figure(result: Measurement | None = None, **kwargs):
    """The measurement in one figure: scores per GenEval category for each built-in model (one standard error, the
    shapes world's chance level marked on each bar) beside SD 1.5 and SDXL as published; trained against held-out
    colour x shape pairs; counting accuracy by number and how many shapes were drawn; why pictures failed; and what
    the shapes world cannot show (hands, text). Computes `measure(**kwargs)` unless given a result.

    >>> from imagegen_nb.teach import failures
    >>> r = failures.measure(("tiny-dit",), per_category=1, per_count=1, counts=(2,), num_inference_steps=2,
    ...                      progress=False)
    >>> fig = failures.figure(r)
    >>> fig.axes[0].get_ylabel()
    'fraction correct'
    """
    from ._common import new_figure

    if result is None:
        result = measure(**kwargs)
    elif kwargs:
        raise TypeError(f"figure() got a result and measure() arguments {sorted(kwargs)}: give one or the other")
    if not isinstance(result, Measurement):
        raise TypeError(f"result must be a failures.Measurement (from failures.measure()), not {type(result).__name__}")
    labels = dict(_LABEL)
    if result.dit_training_steps:
        labels["tiny-dit"] = f"DiT (built-in, {result.dit_training_steps:,} training steps)"

    fig, axes = new_figure(1, 1, title="Where text-to-image models fail, measured on the built-in models "
                                       "(GenEval's categories in the shapes world)")
    fig.set_size_inches(17.0, 10.5)
    axes[0, 0].remove()
    gs = fig.add_gridspec(2, 4, width_ratios=(1.5, 1.0, 1.0, 1.2), height_ratios=(1.15, 1.0))
    ax_bars = fig.add_subplot(gs[0, :])
    ax_held, ax_count, ax_found, ax_why = (fig.add_subplot(gs[1, k]) for k in range(4))

    # 1. Every category: the built-in models (with chance marks) beside the published real models
    columns = ["overall", *result.categories]
    series = [(labels[m], result.scores[m], _COLOR[m], None, m) for m in result.models]
    series += [(f"{name} (published, GenEval's photographs)", v, _PUBLISHED_COLOR[k % 2], "//", None)
               for k, (name, v) in enumerate(result.published.items())]
    x = np.arange(len(columns))
    width = 0.82 / len(series)
    chance = {**result.chance, "overall": sum(result.chance.values()) / len(result.chance)}
    for k, (label, values, color, hatch, model) in enumerate(series):
        xs = x + (k - (len(series) - 1) / 2) * width
        heights = [values[c] for c in columns]
        errors = None if model is None else [result.standard_error(model, c) for c in columns]
        bars = ax_bars.bar(xs, heights, width, color=color, hatch=hatch, edgecolor="white" if hatch else None,
                           alpha=1.0 if model else 0.8, label=label, yerr=errors, capsize=2,
                           error_kw=dict(lw=0.8, ecolor="0.2"))
        ax_bars.bar_label(bars, fmt="%.2f", fontsize=6.5, padding=2 if model is None else 6)
        if model is not None:
            ax_bars.hlines([chance[c] for c in columns], xs - width / 2, xs + width / 2, colors="black", lw=2,
                           label="chance in the shapes world (geneval.CHANCE)" if k == 0 else None)
    ax_bars.set_xticks(x, columns, fontsize=9)
    ax_bars.set_ylim(0, 1.42)  # room above 1 for the legend, so it never covers a bar
    ax_bars.set_yticks(np.linspace(0, 1, 6))
    ax_bars.set_ylabel("fraction correct")
    ax_bars.set_title(f"the checker's score per category: {result.pictures} pictures each, seed {result.seed} "
                      f"(error bars: 1 s.e.; black ticks: chance); real models as published", fontsize=9)
    ax_bars.legend(fontsize=8, loc="upper center", ncol=3, framealpha=0.95)
    ax_bars.grid(axis="y", alpha=0.3)

    # 2. Trained pairs against held-out pairs
    cats = [c for c in HELD_OUT_CATEGORIES if all(c in result.held_out[m] for m in result.models)]
    xh = np.arange(len(cats))
    w = 0.8 / (2 * len(result.models))
    for k, m in enumerate(result.models):
        for j, (held, table) in enumerate(((False, result.scores[m]), (True, result.held_out[m]))):
            pos = xh + (2 * k + j - (2 * len(result.models) - 1) / 2) * w
            bars = ax_held.bar(pos, [table[c] for c in cats], w, color=_COLOR[m], alpha=0.45 if held else 1.0,
                               hatch=".." if held else None, edgecolor="white",
                               yerr=[result.standard_error(m, c, held_out=held) for c in cats], capsize=2,
                               error_kw=dict(lw=0.8, ecolor="0.2"),
                               label=f"{_LABEL[m]}, {'held-out' if held else 'trained'} pairs")
            ax_held.bar_label(bars, fmt="%.2f", fontsize=6, padding=4, rotation=90)
    ax_held.set_xticks(xh, cats, fontsize=8)
    ax_held.set_ylim(0, 1.45)
    ax_held.set_yticks(np.linspace(0, 1, 6))
    ax_held.set_ylabel("fraction correct", fontsize=8)
    ax_held.set_title("colour x shape pairs never in a training caption\n(purple triangle, orange circle, "
                      "cyan square) against trained ones", fontsize=8)
    ax_held.legend(fontsize=6.5, loc="upper left", ncol=2, framealpha=0.9)
    ax_held.grid(axis="y", alpha=0.3)

    # 3. Counting by number, and how many shapes the checker found
    if result.counting:
        for k, (m, c) in enumerate(result.counting.items()):
            xs = np.array(c.counts, dtype=float)
            ys = np.array([c.accuracy[n] for n in c.counts])
            ax_count.errorbar(xs + (k - 0.5) * 0.06, ys, yerr=[c.standard_error(n) for n in c.counts], fmt="o-",
                              color=_COLOR[m], capsize=3, label=f"{_LABEL[m]} ({c.pictures[c.counts[0]]} pictures "
                                                                 "per count)")
            for n in c.counts:  # the asked count against the found ones: a marker's area is its share
                total = sum(c.found[n].values())
                for got, pics in c.found[n].items():
                    ax_found.scatter(n + (k - 0.5) * 0.25, got, s=500 * pics / total, color=_COLOR[m], alpha=0.6,
                                     edgecolors="black" if got == n else "none",
                                     label=_LABEL[m] if (n, got) == (c.counts[0], min(c.found[c.counts[0]])) else None)
        counts = sorted({n for c in result.counting.values() for n in c.counts})
        ax_count.axhline(result.chance["counting"], color="black", ls=":", lw=1,
                         label=f"chance, counting category ({result.chance['counting']:.2f})")
        ax_count.set_xticks(counts, [f"{n}" for n in counts])
        ax_count.set_xlim(min(counts) - 0.5, max(counts) + 0.5)
        ax_count.set_ylim(-0.03, 1.3)
        ax_count.set_yticks(np.linspace(0, 1, 6))
        ax_count.legend(fontsize=6.5, loc="upper left", framealpha=0.9)
        ax_count.set_xlabel("objects asked for", fontsize=8)
        ax_count.set_ylabel("fraction with exactly that many", fontsize=8)
        ax_count.set_title("counting by number: the grammar writes two to four\n(five: an unknown word to the "
                           "models and to the checker)", fontsize=8)
        ax_count.grid(alpha=0.3)
        top = max([*counts, *(g for c in result.counting.values() for f in c.found.values() for g in f)])
        ax_found.plot([min(counts) - 0.5, max(counts) + 0.5], [min(counts) - 0.5, max(counts) + 0.5], color="0.6",
                      ls=":", lw=1, label="found = asked")
        ax_found.set_xticks(counts)
        ax_found.set_xlim(min(counts) - 0.5, max(counts) + 0.5)
        ax_found.set_yticks(range(0, top + 1))
        ax_found.set_ylim(-0.6, top + 1.4)
        ax_found.legend(fontsize=6.5, loc="upper left", framealpha=0.9, markerscale=0.4)
        ax_found.set_xlabel("objects asked for", fontsize=8)
        ax_found.set_ylabel("matching shapes the checker found", fontsize=8)
        ax_found.set_title("how many were drawn (marker area: share of\nthe pictures; black edge: the asked count)",
                           fontsize=8)
        ax_found.grid(alpha=0.3)
    else:
        for ax in (ax_count, ax_found):
            ax.text(0.5, 0.5, "counting by number not measured\n(per_count=0)", ha="center", va="center",
                    fontsize=8, transform=ax.transAxes)
            ax.set_axis_off()

    # 4. Why the failures failed
    graded = {m: result.pictures * (len(result.categories) + len(result.held_out[m])) for m in result.models}
    kinds = [k for k in KINDS if any(k in result.reasons[m] for m in result.models)]
    yk = np.arange(len(kinds))
    h = 0.8 / len(result.models)
    for k, m in enumerate(result.models):
        counts_m = [result.reasons[m].get(kind, 0) for kind in kinds]
        bars = ax_why.barh(yk + (k - (len(result.models) - 1) / 2) * h, counts_m, h, color=_COLOR[m],
                           label=f"{_LABEL[m]}: {sum(counts_m)} of {graded[m]} failed")
        ax_why.bar_label(bars, fontsize=6.5, padding=2)
    ax_why.set_yticks(yk, kinds, fontsize=8)
    ax_why.invert_yaxis()
    ax_why.set_xlabel("failed pictures (trained and held-out prompts)", fontsize=8)
    ax_why.set_title("why they failed (failures.explain: the first\nrule that fails, for the first object)",
                     fontsize=8)
    ax_why.legend(fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.16), framealpha=0.9)
    ax_why.set_xlim(0, max([1, *(v for m in result.models for v in result.reasons[m].values())]) * 1.25)
    if not kinds:
        ax_why.text(0.5, 0.5, "no picture failed", ha="center", va="center", transform=ax_why.transAxes)
    ax_why.grid(axis="x", alpha=0.3)

    fig.text(0.01, 0.005, _CAVEAT + "\n" + _CANNOT, fontsize=8, ha="left", va="bottom", wrap=True,
             bbox=dict(boxstyle="round,pad=0.4", facecolor="#fff4d6", edgecolor="#c9a227"))
    fig.get_layout_engine().set(rect=(0, 0.08, 1, 0.92))
    return fig
