"""The built-in model's IP-Adapter (`tiny.style_adapter`): its training pairs share only the look, its style
checker reads ground truth right, what it writes loads with plain diffusers, and training resumes exactly."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from imagegen_nb.tiny import checker, style_adapter, world

pytestmark = pytest.mark.usefixtures("one_thread")


def test_pairs_share_the_look_and_not_the_content():
    rng = random.Random(3)
    open_ = named = 0
    for _ in range(200):
        reference, target, caption = style_adapter.pair(rng)
        assert reference.background == target.background
        assert len({s.color for s in reference.shapes}) == 1  # a reference has one look
        spec = checker.parse(caption)
        assert "background" not in caption
        if target.category in style_adapter.OPEN_CATEGORIES:
            open_ += 1
            assert all(colour is None for colour, _ in spec.objects)  # the caption leaves the colour open
            assert {s.color for s in target.shapes} == {reference.shapes[0].color}
        else:
            named += 1
            assert all(colour is not None for colour, _ in spec.objects)  # the prompt names what it wants
        assert all(world.allowed(s.color, s.shape, training=True) for s in target.shapes)
        assert world.render(target).size == (64, 64)
    assert open_ > 100 and named > 25


def test_the_style_checker_reads_ground_truth_right():
    assert style_adapter.ground_truth(300, seed=1) == 1.0
    scene = world.Scene("gray", (world.Shape("circle", "pink", 20, 20, 9), world.Shape("square", "blue", 45, 45, 6)),
                        "two_object")
    assert checker.look(world.render(scene)) == ("gray", "pink")  # the colour with the most area
    assert checker.look(world.render(world.Scene("black", (), "single_object"))) == ("black", None)


def test_training_resumes_where_it_stopped_and_writes_what_diffusers_loads(tmp_path):
    from diffusers import StableDiffusionPipeline

    from imagegen_nb import tiny

    cfg = style_adapter.StyleConfig(batch=4, checkpoint_every=1)
    straight = style_adapter.train(tmp_path / "straight", cfg, steps=3)
    style_adapter.train(tmp_path / "resumed", cfg, steps=2)
    resumed = style_adapter.train(tmp_path / "resumed", cfg, steps=3)
    assert len(straight) == 3 and np.allclose(resumed, straight)
    weights = tmp_path / "straight" / "adapter" / style_adapter.WEIGHTS_NAME
    assert weights.stat().st_size < 2_000_000  # a few hundred kB
    pipe = StableDiffusionPipeline.from_pretrained(tiny.model_path())
    pipe.load_ip_adapter(str(weights.parent), subfolder="", weight_name=weights.name)
    reference = world.render(world.sample_scene(seed=4))
    gen = torch.Generator().manual_seed(0)
    image = pipe("a circle", ip_adapter_image=reference, num_inference_steps=3, generator=gen).images[0]
    assert image.size == (64, 64)
    assert np.asarray(image).std() > 1  # a picture, not a flat field


def test_the_shipped_adapter_carries_the_look_and_keeps_the_content():
    """Floors from a seeded sample, below the full evaluation's figures (docs/style.md)."""
    from imagegen_nb import tiny

    scores = style_adapter.evaluate(tiny.ip_adapter_path(), n=16, seed=0)  # full evaluation (n=64): 100/98/87/97
    open_, named = scores["open"], scores["named"]
    assert open_["background"] >= 90 and open_["colour"] >= 90
    assert open_["background_plain"] <= 60 and open_["colour_plain"] <= 30  # chance, without the reference
    assert open_["content_styled"] >= open_["content_plain"] - 10
    assert named["background"] >= 85 and named["content_styled"] >= 75  # what the prompt names, it keeps


def test_style_is_the_built_in_model_s_default_adapter_and_the_lesson_reads_it():
    import imagegen_nb as ig
    from imagegen_nb.teach import style as lesson

    reference = world.render(world.Scene("black", (world.Shape("circle", "pink", 32, 32, 10),), "colors"))
    image = ig.generate("two squares", seed=1, style=reference, progress=False)
    assert ig.recipe(image)["style"]["ip_adapter"] == ig.registry.BUILTIN_IP_ADAPTER
    assert checker.look(image) == ("black", "pink")
    fig = lesson.sweep("two squares", reference, scales=(0.0, 1.0), seed=1)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0] == "reference\nblack, pink" and titles[2].startswith("style_scale 1\nblack, pink")
    fig = lesson.style_vs_content(prompts=("a circle", "a yellow circle"), seed=0)
    assert len(fig.axes) == 6
    yellow = fig.axes[2].get_title(), fig.axes[5].get_title()
    assert all(", yellow" in t for t in yellow)  # what the prompt names, it keeps
    fig, scores = lesson.measure(n=4, scales=(0.0, 1.0), seed=2)
    assert scores[1.0]["background"] > scores[0.0]["background"]
