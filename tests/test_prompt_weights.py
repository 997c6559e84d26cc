"""A1111 prompt weighting and long prompts (imagegen_nb.prompt_weights) on the built-in model."""

from __future__ import annotations

import numpy as np
import pytest

import imagegen_nb as ig
from imagegen_nb import prompt_weights
from imagegen_nb.errors import RecipeError


@pytest.mark.parametrize("prompt, segments", [
    ("a red circle", [("a red circle", 1.0)]),
    ("a (red) circle", [("a ", 1.0), ("red", 1.1), (" circle", 1.0)]),
    ("a ((red)) circle", [("a ", 1.0), ("red", 1.1 * 1.1), (" circle", 1.0)]),
    ("a [red] circle", [("a ", 1.0), ("red", 1 / 1.1), (" circle", 1.0)]),
    ("a (red circle:1.5)", [("a ", 1.0), ("red circle", 1.5)]),
    ("(a (red:2) circle:0.5)", [("a ", 0.5), ("red", 1.0), (" circle", 0.5)]),
    (r"a \(red\) circle", [("a (red) circle", 1.0)]),   # escaped brackets are literal
    ("ratio 3:2 (red", [("ratio 3:2 ", 1.0), ("red", 1.1)]),  # a colon in words; an unclosed bracket
])
def test_the_a1111_syntax_is_read_as_a1111_reads_it(prompt, segments):
    got = prompt_weights.parse(prompt)
    assert [t for t, _ in got] == [t for t, _ in segments]
    assert np.allclose([w for _, w in got], [w for _, w in segments])
    assert prompt_weights.plain_text(prompt) == "".join(t for t, _ in segments)


def test_weights_of_one_are_todays_picture_and_other_weights_change_it(pixels):
    plain = ig.generate("a red circle", seed=0, num_inference_steps=4, progress=False)
    ones = ig.generate("a (red:1.0) circle", seed=0, num_inference_steps=4, progress=False)
    assert (pixels(ones) == pixels(plain)).all()  # the weighted path, with nothing weighted, is the plain one
    assert ig.recipe(plain).get("prompt_weights") is None
    strong = ig.generate("a (red:1.6) circle", seed=0, num_inference_steps=4, progress=False)
    assert not (pixels(strong) == pixels(plain)).all()
    assert ig.recipe(strong)["prompt_weights"] == [["a ", 1.0], ["red", 1.6], [" circle", 1.0]]
    assert (pixels(ig.regenerate(strong)) == pixels(strong)).all()
    negative = ig.generate("a (red:1.6) circle", negative_prompt="[blue]", seed=0, num_inference_steps=4,
                           progress=False)
    assert not (pixels(negative) == pixels(strong)).all()


def test_a_prompt_longer_than_the_window_is_encoded_window_by_window():
    _, pipe = ig.cache.shared.pipeline(None, "generate")
    window = pipe.tokenizer.model_max_length
    filler = " and a red circle" * window
    assert prompt_weights.too_long(pipe, "a blue square" + filler)
    tokens = len(pipe.tokenizer("a blue square" + filler, add_special_tokens=False).input_ids)
    room = window - (len(pipe.tokenizer("").input_ids))  # the window less the tokenizer's own tokens
    positive, negative = prompt_weights.prompt_embeds(pipe, ["a blue square" + filler], None)
    assert positive.shape[1] == -(-tokens // room) * window >= 2 * window and negative.shape == positive.shape
    a, _ = prompt_weights.prompt_embeds(pipe, ["a blue square" + filler + " on a black background"], None)
    b, _ = prompt_weights.prompt_embeds(pipe, ["a blue square" + filler + " on a white background"], None)
    assert a.shape == b.shape and not (a == b).all()  # the tail reaches the model instead of being cut off
    image = ig.generate("a blue square" + filler, seed=0, num_inference_steps=2, progress=False)
    assert image.size == (64, 64)


def test_weights_on_a_model_with_other_text_encoders_are_refused_before_loading():
    with pytest.raises(ValueError, match="prompt weighting .* works with StableDiffusionPipeline models"):
        ig.generate("a (red:1.3) circle", model="stabilityai/stable-diffusion-xl-base-1.0")


def test_a_damaged_prompt_weights_field_is_a_recipe_error():
    image = ig.generate("a (red:1.3) circle", seed=1, num_inference_steps=2, progress=False)
    data = dict(ig.recipe(image), prompt_weights="red")
    with pytest.raises(RecipeError, match="prompt_weights"):
        ig.Recipe.from_dict(data)
