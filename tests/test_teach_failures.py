"""The failures lesson: its scores are the checker's on the evaluation's prompts, its chance levels and real-model
numbers are geneval's, its reasons follow checker.grade's rules, and counts the grammar cannot write are refused
for the reason the lesson gives."""

from __future__ import annotations

import random

import numpy as np
import pytest

from imagegen_nb.teach import failures, geneval
from imagegen_nb.tiny import checker, world

FAST = dict(num_inference_steps=2)  # pictures are poor at two steps: the tests check bookkeeping, not quality


@pytest.fixture(scope="module")
def result():
    return failures.measure(per_category=1, per_count=1, counts=(2, 4), progress=False, **FAST)


def test_measure_has_every_category_for_both_models_with_geneval_chance_and_published_numbers(result):
    assert result.models == ("tiny", "tiny-dit")
    assert result.categories == tuple(geneval.CATEGORIES)
    assert result.chance == geneval.CHANCE and result.published == geneval.PUBLISHED
    for m in result.models:
        scores = result.scores[m]
        assert set(scores) == {*geneval.CATEGORIES, "overall"}
        # one picture a category: each score is 0 or 1, and overall is GenEval's mean of the six
        assert result.pictures == 1 and all(v in (0.0, 1.0) for c, v in scores.items() if c != "overall")
        assert scores["overall"] == pytest.approx(np.mean([scores[c] for c in geneval.CATEGORIES]))
        assert set(result.held_out[m]) == set(failures.HELD_OUT_CATEGORIES)
        assert all(v in (0.0, 1.0) for v in result.held_out[m].values())
        # every failed picture has one reason
        failed = sum(1 - scores[c] for c in geneval.CATEGORIES) + sum(1 - v for v in result.held_out[m].values())
        assert sum(result.reasons[m].values()) == round(failed)
        assert set(result.reasons[m]) <= set(failures.KINDS)
        assert 0 <= result.standard_error(m, "overall") <= 0.5
        assert result.seconds[m] > 0
    assert result.dit_training_steps is None or result.dit_training_steps > 0


def test_held_out_prompts_name_held_out_pairs_and_trained_ones_never_do(result):
    def names_held_out(text):
        return any((c, s) in world.HELD_OUT for c, s in checker.parse(text).objects if c)

    assert all(not names_held_out(t) for pairs in result.prompts.values() for t, _ in pairs)
    for c, pairs in result.held_out_prompts.items():
        assert len(pairs) == 1 and all(names_held_out(t) for t, _ in pairs), c
        assert [s for _, s in pairs] == [0]  # picture j has seed seed + j
    for c, pairs in result.prompts.items():  # prompts of the category's own grammar
        for text, _ in pairs:
            spec = checker.parse(text)
            assert (spec.count is not None) == (c == "counting") and (spec.relation is not None) == (c == "position")


def test_the_summary_and_hardest_read_the_measurement(result):
    text = result.summary()
    for m in result.models:
        assert f"overall {result.scores[m]['overall']:.2f}" in text
        (c, v), _ = result.hardest(m)
        assert v == min(result.scores[m][k] for k in result.categories)
        assert f"{c} {v:.2f}" in text or f"every category {v:.2f}" in text
    # GenEval's published pattern: position and colour attribution lowest for SD 1.5
    assert [c for c, _ in result.hardest("SD 1.5")] == ["position", "color attribution"]


def test_figure_shows_the_measured_numbers_and_says_what_shapes_cannot_show(result):
    from matplotlib.container import BarContainer

    fig = failures.figure(result)
    bars = fig.axes[0]
    assert bars.get_ylabel() == "fraction correct"
    columns = ["overall", *result.categories]
    containers = [c for c in bars.containers if isinstance(c, BarContainer)]
    heights = [p.get_height() for p in containers[0].patches]  # the U-Net's bars
    assert heights == pytest.approx([result.scores["tiny"][c] for c in columns])
    published = [c for c in containers if c.get_label().startswith("SD 1.5")][0]
    assert [p.get_height() for p in published.patches] == pytest.approx([geneval.PUBLISHED["SD 1.5"][c]
                                                                         for c in columns])
    words = " ".join(t.get_text() for t in fig.texts)
    assert "hands" in words and "text" in words and "Not comparable" in words
    assert len(fig.axes) == 5
    with pytest.raises(TypeError, match="result"):
        failures.figure("not a measurement")


def test_counting_gives_accuracy_per_count_and_what_was_drawn():
    c = failures.counting("tiny-dit", counts=(2, 3, 4), per_count=3, progress=False, **FAST)
    assert c.counts == (2, 3, 4) and c.pictures == {2: 3, 3: 3, 4: 3}
    for n in c.counts:
        assert 0 <= c.accuracy[n] <= 1
        assert sum(c.found[n].values()) == 3
        # grade asks for exactly n matching shapes: the accuracy is the share that found exactly n
        assert c.accuracy[n] == pytest.approx(c.found[n].get(n, 0) / 3)
        assert all(checker.parse(t).count == n for t, _ in c.prompts[n])
        assert [s for _, s in c.prompts[n]] == [0, 1, 2]


@pytest.mark.parametrize("counts", [(5,), (1, 2), (2, 6), (), "four", (2, 2)])
def test_counts_the_grammar_cannot_write_are_refused_naming_counts(counts):
    with pytest.raises(ValueError, match="counts"):
        failures.counting(counts=counts, progress=False)


def test_five_is_an_unknown_word_to_both_models_and_to_the_checker():
    from imagegen_nb.teach._common import pipe_and_family

    for model in (None, "tiny-dit"):
        tokenizer = pipe_and_family(model)[0].tokenizer
        assert tokenizer.tokenize("five circles")[0] == tokenizer.unk_token, model
        assert tokenizer.tokenize("four circles")[0] == "four", model
    with pytest.raises(ValueError, match="grammar"):
        checker.parse("five circles")


def test_explain_agrees_with_grade_and_names_the_rule_that_fails():
    rng = random.Random(5)
    for _ in range(40):
        scene = world.sample_scene(rng=rng, training=False)
        picture = world.render(scene)
        for prompt in (world.caption(scene), world.caption(world.sample_scene(rng=rng, training=False))):
            v = failures.explain(picture, prompt)
            assert v.passed == checker.grade(picture, prompt), prompt
            assert (v.kind is None) == v.passed and (v.kind is None or v.kind in failures.KINDS)
            assert len(v.found) == len(checker.detect(picture)) and v.reason
        assert failures.explain(picture, world.caption(scene)).passed  # ground truth passes its own caption
    shape = world.Shape
    square = world.render(world.Scene("white", (shape("square", "red", 20, 32, 9),)))
    assert failures.explain(square, "a red circle").kind == "wrong shape"
    assert failures.explain(square, "a blue square").kind == "wrong colour"
    assert failures.explain(square, "a blue circle").kind == "missing"
    blob = world.render(world.Scene("white", (shape("circle", "red", 28, 32, 9), shape("circle", "red", 38, 32, 9))))
    v = failures.explain(blob, "a red circle")
    assert (v.kind, v.found) == ("shape unreadable", ("red blob",))
    three = world.render(world.sample_scene(seed=0, category="counting"))
    n, shape_name = len(checker.detect(three)), world.sample_scene(seed=0, category="counting").shapes[0].shape
    wrong = next(k for k in world.NUMBERS if k != n)
    v = failures.explain(three, f"{world.NUMBERS[wrong]} {world.plural(shape_name)}")
    assert v.kind == "wrong count" and v.reason == f"asked {wrong} {shape_name}s, found {n}"
    with pytest.raises(ValueError, match="grammar"):
        failures.explain(square, "a hand holding a sign")


def test_gallery_verdicts_are_the_checkers_on_the_same_pictures_and_the_seed_fixes_them():
    g = failures.gallery("tiny-dit", rows=("held-out pairs", "position"), per_row=2, progress=False, **FAST)
    assert list(g.rows) == ["held-out pairs", "position"]
    for row, items in g.rows.items():
        assert len(items) == 2 and [s for *_, s in items] == [0, 1]
        for image, v, _ in items:
            assert v.passed == checker.grade(image, v.prompt)
            assert v.kind is None if v.passed else v.kind in failures.KINDS
        assert g.failed(row) == sum(not v.passed for _, v, _ in items)
    for _, v, _ in g.rows["held-out pairs"]:
        assert any((c, s) in world.HELD_OUT for c, s in checker.parse(v.prompt).objects)
    assert len(g.figure().axes) == 4
    again = failures.gallery("tiny-dit", rows=("held-out pairs", "position"), per_row=2, progress=False, **FAST)
    for row in g.rows:
        for (a, va, _), (b, vb, _) in zip(g.rows[row], again.rows[row]):
            assert np.array_equal(np.asarray(a), np.asarray(b)) and va == vb
    other = failures.gallery("tiny-dit", rows=("held-out pairs",), per_row=1, seed=7, progress=False, **FAST)
    (c, _, seed), = other.rows["held-out pairs"]
    assert seed == 7 and not np.array_equal(np.asarray(c), np.asarray(g.rows["held-out pairs"][0][0]))


@pytest.mark.parametrize("call, name", [
    (lambda: failures.measure(models=("sdxl",), progress=False), "models"),
    (lambda: failures.measure(models=(None, "tiny"), progress=False), "models"),
    (lambda: failures.measure(per_category=0, progress=False), "per_category"),
    (lambda: failures.measure(per_count=-1, progress=False), "per_count"),
    (lambda: failures.measure(counts=(6,), progress=False), "counts"),
    (lambda: failures.counting("tiny-unknown", progress=False), "model"),
    (lambda: failures.counting(per_count=0, progress=False), "per_count"),
    (lambda: failures.gallery(rows=("hands",), progress=False), "rows"),
    (lambda: failures.gallery(per_row=0, progress=False), "per_row"),
    (lambda: failures.gallery(seed="1", progress=False), "seed"),
])
def test_argument_errors_name_the_argument(call, name):
    with pytest.raises((ValueError, TypeError), match=name):
        call()
