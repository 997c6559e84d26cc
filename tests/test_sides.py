"""Side labels: which side each word of a position caption's objects is on, and a probe loss that training on
it lowers, so the text encoder's token states come to say the side."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from imagegen_nb.tiny import components, sides, train, world


def _said(scene, text):
    return [(w, sides.SIDES[s]) for w, s in zip(text.split(), sides.word_sides(scene, text)) if s is not None]


def _scene(relation):
    for seed in range(100):
        scene = world.sample_scene(seed=seed, category="position")
        if scene.relation == relation:
            return scene
    raise AssertionError(f"no {relation} scene")


def test_the_first_named_object_takes_the_relation_and_the_second_its_opposite():
    left = _scene("left of")
    assert _said(left, world.caption(left)) == [
        (left.shapes[0].color, "left"), (left.shapes[0].shape, "left"),
        (left.shapes[1].color, "right"), (left.shapes[1].shape, "right")]
    # the mirror image's caption names the same objects in the same order, on the other sides
    mirror = world.flip_horizontal(left)
    assert [s for _, s in _said(mirror, world.caption(mirror))] == ["right", "right", "left", "left"]
    below = _scene("below")
    text = f"a large {below.shapes[0].color} {below.shapes[0].shape} below a {below.shapes[1].color} " \
           f"{below.shapes[1].shape} on a white background"
    assert [s for _, s in _said(below, text)] == ["below"] * 3 + ["above"] * 2


def test_captions_that_say_no_side_have_no_labels():
    for category in ("single_object", "counting", "two_object", "color_attr"):
        scene = world.sample_scene(seed=2, category=category)
        assert set(sides.word_sides(scene, world.caption(scene))) == {None}
    scene = _scene("above")
    labels = sides.targets([scene, scene], [world.caption(scene), ""], max_tokens=24)
    assert labels.shape == (2, 24) and labels.dtype == np.int64
    assert (labels[1] == sides.IGNORE).all()
    assert sorted(labels[0][labels[0] != sides.IGNORE].tolist()) == [2, 2, 3, 3]  # above, above, below, below


def test_token_k_is_word_k_so_labels_line_up_with_the_tokenizer(tmp_path):
    tokenizer = components.build_tokenizer(tmp_path, components.SMOKE)
    scene = _scene("right of")
    text = world.caption(scene)
    ids = tokenizer(text).input_ids
    labels = sides.targets([scene], [text], tokenizer.model_max_length)[0]
    assert len(ids) == len(text.split()) + 1  # one token per word, then </s>
    labelled = [tokenizer.convert_ids_to_tokens(ids[k]) for k in np.nonzero(labels != sides.IGNORE)[0]]
    assert labelled == [w for w, _ in _said(scene, text)]


def test_teaching_the_text_encoder_the_sides_makes_its_states_say_them(tmp_path):
    torch.manual_seed(0)
    arch = components.SMOKE
    tokenizer = components.build_tokenizer(tmp_path, arch)
    encoder, probe = components.build_text_encoder(len(tokenizer), arch), sides.probe(arch.text_width)
    weights = tuple(float(c == "position") for c in world.CATEGORIES)
    cfg = train.TrainConfig(sides_lr=3e-3, batch=32, sides_first=400, category_weights=weights)
    losses = train._teach_sides(tokenizer, encoder, probe, cfg, "cpu")
    assert np.mean(losses[:5]) > 1.0  # four sides at chance: ln 4 = 1.39
    assert np.mean(losses[100:150]) > 0.5  # the relation word alone gives the axis, not the side: ln 2 = 0.69
    assert np.mean(losses[-10:]) < 0.1
    # on captions it has not seen, the probe reads each word's side from its state
    _, captions, scenes = world.batch(64, seed=999, weights=weights)
    labels = torch.from_numpy(sides.targets(scenes, captions, tokenizer.model_max_length))
    with torch.no_grad():
        read = probe(train._encode_text(tokenizer, encoder, captions, "cpu")).argmax(-1)
    keep = labels != sides.IGNORE
    assert keep.sum() > 200 and (read[keep] == labels[keep]).float().mean() > 0.95


def test_a_fresh_encoder_learns_the_sides_and_to_say_what_a_trained_one_says(tmp_path):
    torch.manual_seed(0)
    arch = components.SMOKE
    tokenizer = components.build_tokenizer(tmp_path, arch)
    trained, fresh = (components.build_text_encoder(len(tokenizer), arch) for _ in range(2))
    captions = world.batch(32, seed=5)[1]

    def gap():
        with torch.no_grad():
            old, new = (train._encode_text(tokenizer, e, captions, "cpu") for e in (trained, fresh))
        return ((new - old).pow(2).mean() / old.pow(2).mean()).item()

    before = gap()
    cfg = train.TrainConfig(sides_lr=3e-3, batch=32, sides_first=150)
    losses = train._teach_sides(tokenizer, fresh, sides.probe(arch.text_width), cfg, "cpu", like=trained)
    assert before > 1.0 and gap() < 0.1 * before
    assert len(losses) == 150 and np.mean(losses[-10:]) < np.mean(losses[:10])


def test_a_batch_without_sides_adds_nothing():
    probe = sides.probe(8)
    labels = torch.full((2, 5), sides.IGNORE)
    assert sides.loss(probe, torch.randn(2, 5, 8), labels).item() == 0.0


def test_training_with_side_labels_checkpoints_the_probe_and_resumes(tmp_path):
    cfg = train.TrainConfig(vae_batch=4, batch=8, warmup=1, lr=1e-3, checkpoint_every=2, sides=0.5, sides_first=3)
    train.train_vae(tmp_path, components.SMOKE, cfg, steps=2)
    first = train.train_unet(tmp_path, components.SMOKE, cfg, steps=2)
    state = torch.load(tmp_path / "unet.pt", weights_only=False)
    assert state["step"] == 2 and state["side_probe"]["weight"].shape == (len(sides.SIDES), 32)
    more = train.train_unet(tmp_path, components.SMOKE, cfg, steps=4)
    assert more[:2] == first and len(more) == 4 and np.isfinite(more).all()
    # from trained weights: a fresh encoder learns the sides while copying the trained one, then training goes on
    sd = train.export(tmp_path, tmp_path / "export")
    again = train.train_unet(tmp_path / "again", components.SMOKE, cfg, steps=1, init_from=sd)
    assert len(again) == 1 and np.isfinite(again).all() and (tmp_path / "again" / "unet.pt").exists()


def test_sides_first_0_continues_with_the_loaded_encoder(tmp_path):
    cfg = train.TrainConfig(vae_batch=4, batch=8, warmup=1, lr=0.0, sides=0.5, sides_first=0)
    train.train_vae(tmp_path, components.SMOKE, cfg, steps=2)
    train.train_unet(tmp_path, components.SMOKE, dataclasses.replace(cfg, lr=1e-3), steps=2)
    sd = train.export(tmp_path, tmp_path / "export")
    loaded = _text_encoder_state(sd / "text_encoder")
    train.train_unet(tmp_path / "on", components.SMOKE, cfg, steps=1, init_from=sd)
    kept = _text_encoder_state(tmp_path / "on" / "text_encoder")
    # lr 0: the encoder is the loaded one, not a fresh one
    assert all(torch.equal(loaded[k].float(), kept[k].float()) for k in loaded)
    train.train_unet(tmp_path / "fresh", components.SMOKE, dataclasses.replace(cfg, sides_first=2), steps=1,
                     init_from=sd)
    fresh = _text_encoder_state(tmp_path / "fresh" / "text_encoder")
    assert not all(torch.equal(loaded[k].float(), fresh[k].float()) for k in loaded)


def _text_encoder_state(folder):
    from safetensors.torch import load_file

    return load_file(folder / "model.safetensors")
