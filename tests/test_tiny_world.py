"""The shapes world, its checker and the tokenizer of the built-in model."""

from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image

from imagegen_nb.tiny import checker, evaluate, world


def test_batches_are_reproducible_and_pictures_are_64px():
    a, caps_a, _ = world.batch(8, seed=3)
    b, caps_b, _ = world.batch(8, seed=3)
    c, _, _ = world.batch(8, seed=4)
    assert a.shape == (8, 64, 64, 3) and a.dtype == np.uint8
    assert (a == b).all() and caps_a == caps_b and (a != c).any()


def test_category_weights_choose_what_a_batch_shows():
    only_position = [1 if c == "position" else 0 for c in world.CATEGORIES]
    _, _, scenes = world.batch(16, seed=0, weights=only_position)
    assert {s.category for s in scenes} == {"position"}
    _, _, default = world.batch(64, seed=0)
    assert len({s.category for s in default}) == len(world.CATEGORIES)
    with pytest.raises(ValueError, match="one per category"):
        world.batch(2, seed=0, weights=(1, 2))


def test_render_draws_the_named_colours_on_the_background():
    scene = world.Scene("gray", (world.Shape("square", "red", 20, 32, 10), world.Shape("circle", "blue", 46, 32, 8)))
    px = np.asarray(world.render(scene))
    assert tuple(px[0, 0]) == world.BACKGROUNDS["gray"]
    assert tuple(px[32, 20]) == world.COLORS["red"] and tuple(px[32, 46]) == world.COLORS["blue"]


def test_training_scenes_never_show_held_out_pairs():
    rng = random.Random(0)
    for _ in range(3000):
        scene = world.sample_scene(rng=rng, training=True)
        assert not any((s.color, s.shape) in world.HELD_OUT for s in scene.shapes)


def test_every_caption_parses_and_counts_match():
    rng = random.Random(1)
    for category in world.CATEGORIES:
        for _ in range(50):
            scene = world.sample_scene(rng=rng, category=category)
            spec = checker.parse(world.caption(scene, rng=rng))
            if category == "counting":
                assert spec.count == len(scene.shapes)
            if category == "position":
                assert spec.relation is not None


def test_flip_swaps_left_and_right():
    scene = world.sample_scene(seed=5, category="position")
    flipped = world.flip_horizontal(world.flip_horizontal(scene))
    assert flipped.relation == scene.relation
    if scene.relation in ("left of", "right of"):
        assert world.flip_horizontal(scene).relation != scene.relation


def test_checker_is_right_on_ground_truth():
    assert evaluate.checker_accuracy(n=400) >= 0.99


@pytest.mark.parametrize("shape", world.SHAPES)
@pytest.mark.parametrize("r", [6.5, 12.5])
def test_checker_names_shapes_through_soft_edges_and_halos(shape, r):
    from PIL import ImageFilter

    scene = world.Scene("gray", (world.Shape(shape, "blue", 30.3, 33.6, r),))
    sharp = world.render(scene)
    blurred = sharp.filter(ImageFilter.GaussianBlur(0.8))  # what a VAE's decoder does to an edge
    grown = sharp.filter(ImageFilter.MinFilter(3))  # a one-pixel halo of the shape's colour all round (blue < gray)
    for image in (sharp, blurred, grown):
        (found,) = checker.detect(image)
        assert (found.shape, found.color) == (shape, "blue")


def test_checker_does_not_name_blobs_that_are_no_shape():
    touching = world.Scene("white", (world.Shape("circle", "red", 24, 32, 8), world.Shape("circle", "red", 40, 32, 8)))
    (merged,) = checker.detect(world.render(touching))  # one blob: two circles run together
    assert merged.shape == "unknown"
    assert not checker.grade(world.render(touching), "a red circle")
    smear = np.full((64, 64, 3), world.BACKGROUNDS["white"], dtype=np.uint8)
    smear[30:34, 8:56] = world.COLORS["green"]  # a 4 x 48 streak
    assert [d.shape for d in checker.detect(Image.fromarray(smear))] == ["unknown"]


def test_checker_rejects_wrong_pictures():
    red_left = world.Scene("white", (world.Shape("circle", "red", 16, 32, 8), world.Shape("square", "blue", 48, 32, 8)),
                           "position", "left of")
    image = world.render(red_left)
    assert checker.grade(image, "a red circle to the left of a blue square")
    assert not checker.grade(image, "a red circle to the right of a blue square")
    assert not checker.grade(image, "a green circle")
    assert not checker.grade(image, "two red circles")
    assert checker.grade(image, "a circle and a square")
    with pytest.raises(ValueError, match="not in the shapes world's grammar"):
        checker.parse("a photo of a cat")


def test_evaluation_prompts_cover_categories_and_held_out_pairs():
    ps = evaluate.prompts(per_category=5)
    cats = {p.category for p in ps if not p.held_out}
    assert cats == set(world.CATEGORIES)
    held = [p for p in ps if p.held_out]
    assert held and all(evaluate._names_held_out(None, p.text) for p in held)
    assert not any(evaluate._names_held_out(None, p.text) for p in ps if not p.held_out)


def test_tokenizer_keeps_each_word_one_token_and_copes_with_unknown_words(tmp_path):
    from imagegen_nb.tiny import components

    tok = components.build_tokenizer(tmp_path)
    for word in world.vocabulary():
        assert tok.tokenize(word) == [word]
    assert tok.tokenize("A RED Circle, zebra!") == ["a", "red", "circle", ",", "<unk>", "<unk>"]
    ids = tok("a red circle", padding="max_length", max_length=tok.model_max_length).input_ids
    assert len(ids) == tok.model_max_length and ids[3] == tok.eos_token_id
