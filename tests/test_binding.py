"""Binding labels: each object word of a caption is labelled with the rest of its object (a shape word with its
colour, a colour word with its shape), and training on them makes the text encoder's states say it."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from imagegen_nb.tiny import binding, components, train, world


def _said(scene, text):
    return [(w, binding.CLASSES[c]) for w, c in zip(text.split(), binding.word_bindings(scene, text)) if c is not None]


def test_each_colour_word_names_its_shape_and_each_shape_word_its_colour():
    scene = world.sample_scene(seed=1, category="color_attr")
    a, b = scene.shapes
    text = f"a {a.color} {a.shape} and a {b.color} {b.shape} on a black background"
    assert _said(scene, text) == [(a.color, a.shape), (a.shape, a.color), (b.color, b.shape), (b.shape, b.color)]
    # the same objects named the other way round keep their own bindings
    swapped = f"a {b.color} {b.shape} and a {a.color} {a.shape}"
    assert _said(dataclasses.replace(scene, shapes=(b, a)), swapped) == [
        (b.color, b.shape), (b.shape, b.color), (a.color, a.shape), (a.shape, a.color)]


def test_a_shape_whose_colour_is_not_named_has_no_label():
    scene = world.sample_scene(seed=2, category="two_object")
    a, b = scene.shapes
    assert binding.word_bindings(scene, f"a {a.shape} and a {b.shape}") == [None] * 5
    s = world.sample_scene(seed=3, category="counting")
    shape = s.shapes[0].shape
    assert _said(s, f"{world.NUMBERS[len(s.shapes)]} large {s.shapes[0].color} {world.plural(shape)}") == [
        ("large", shape), (s.shapes[0].color, shape), (world.plural(shape), s.shapes[0].color)]
    labels = binding.targets([scene, scene], [world.caption(scene), ""], max_tokens=24)
    assert labels.shape == (2, 24) and (labels[1] == binding.IGNORE).all()


def test_teaching_the_binding_makes_shape_states_say_their_colour(tmp_path):
    torch.manual_seed(0)
    arch = components.SMOKE
    tokenizer = components.build_tokenizer(tmp_path, arch)
    encoder, probe = components.build_text_encoder(len(tokenizer), arch), binding.probe(arch.text_width)
    weights = tuple(float(c == "color_attr") for c in world.CATEGORIES)
    opt = torch.optim.AdamW([*encoder.parameters(), *probe.parameters()], lr=3e-3)
    losses = []
    for step in range(300):
        _, captions, scenes = world.batch(32, seed=step, weights=weights)
        labels = torch.from_numpy(binding.targets(scenes, captions, tokenizer.model_max_length))
        loss = binding.loss(probe, train._encode_text(tokenizer, encoder, captions, "cpu"), labels)
        opt.zero_grad(); loss.backward(); opt.step()
        losses.append(loss.item())
    assert np.mean(losses[:5]) > 1.5 and np.mean(losses[-10:]) < 0.1
    # on captions it has not seen, the probe reads each shape word's own colour (of the caption's two) from its state
    _, captions, scenes = world.batch(64, seed=999, weights=weights)
    labels = torch.from_numpy(binding.targets(scenes, captions, tokenizer.model_max_length))
    with torch.no_grad():
        read = probe(train._encode_text(tokenizer, encoder, captions, "cpu")).argmax(-1)
    shape_words = labels < len(world.COLORS)
    shape_words &= labels != binding.IGNORE
    assert shape_words.sum() > 100 and (read[shape_words] == labels[shape_words]).float().mean() > 0.95


def test_training_with_binding_labels_checkpoints_the_probe_and_resumes(tmp_path):
    cfg = train.TrainConfig(vae_batch=4, batch=8, warmup=1, lr=1e-3, checkpoint_every=2, binding=0.5)
    train.train_vae(tmp_path, components.SMOKE, cfg, steps=2)
    first = train.train_unet(tmp_path, components.SMOKE, cfg, steps=2)
    state = torch.load(tmp_path / "unet.pt", weights_only=False)
    assert state["step"] == 2 and state["binding_probe"]["weight"].shape == (len(binding.CLASSES), 32)
    more = train.train_unet(tmp_path, components.SMOKE, cfg, steps=4)
    assert more[:2] == first and len(more) == 4 and np.isfinite(more).all()


def test_the_model_card_names_the_lessons_its_run_had():
    from imagegen_nb.tiny import card

    both = card._parts({"arch": {"text_film": True}, "train": {"sides": 0.5, "binding": 0.5,
                                                                "prediction_type": "v_prediction"}})
    assert "which side" in both["text_notes"] and "which colour goes with which shape" in both["text_notes"]
    assert "v prediction" in both["unet_notes"] and "FiLM" in both["unet_notes"]
    assert card._parts({"train": {"sides": 0.0}})["text_notes"] == ""
