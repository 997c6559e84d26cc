"""The attention-grounding loss: which words name which object, the objects' masks, and a loss that is low when
each word attends to its own object, high when the objects' words are swapped, and that training can lower."""

from __future__ import annotations

import numpy as np
import torch

from imagegen_nb.tiny import components, grounding, train, world


def _named(scene, text):
    return [(w, o) for w, o in zip(text.split(), grounding.word_objects(scene, text)) if o is not None]


def test_words_are_assigned_to_the_object_they_describe():
    position = world.sample_scene(seed=1, category="position")
    assert _named(position, "a red circle to the left of a blue square") == [
        ("red", 0), ("circle", 0), ("blue", 1), ("square", 1)]
    assert _named(position, "a yellow triangle below a large green circle on a black background") == [
        ("yellow", 0), ("triangle", 0), ("large", 1), ("green", 1), ("circle", 1)]
    attr = world.sample_scene(seed=1, category="color_attr")
    assert _named(attr, "a red circle and a blue square on a white background") == [
        ("red", 0), ("circle", 0), ("blue", 1), ("square", 1)]
    counting = world.sample_scene(seed=1, category="counting")
    assert _named(counting, "three green triangles") == [("three", 0), ("green", 0), ("triangles", 0)]


def test_object_masks_cover_each_shape_where_it_is_drawn():
    scene = world.sample_scene(seed=4, category="position")
    masks = grounding.object_masks(scene)
    image = np.asarray(world.render(scene)).astype(int)
    assert masks.shape == (2, 64, 64) and set(np.unique(masks)) <= {0.0, 1.0}
    for mask, shape in zip(masks, scene.shapes):
        ys, xs = np.nonzero(mask)
        assert abs(xs.mean() - shape.x) < 3 and abs(ys.mean() - shape.y) < 3
        assert (np.abs(image[mask > 0] - world.COLORS[shape.color]).max(1) == 0).mean() > 0.95
    assert (masks[0] * masks[1]).sum() == 0


def _batch(n=6, category="position"):
    weights = [float(c == category) for c in world.CATEGORIES]
    _, captions, scenes = world.batch(n, seed=3, weights=weights)
    words, masks = grounding.targets(scenes, captions, max_tokens=24)
    return torch.from_numpy(words), torch.from_numpy(masks), captions


def _ideal_attention(words, masks, side=16):
    """Attention (n, side*side, tokens) where each object's pixels attend only to that object's words."""
    m = torch.nn.functional.adaptive_avg_pool2d(masks, side).flatten(2)  # (n, 2, hw)
    m = (m > 0.5).float()
    per_word = words / words.sum(-1, keepdim=True).clamp_min(1)  # (n, 2, k)
    probs = torch.einsum("njp,njk->npk", m, per_word)
    probs[..., -1] += 1 - probs.sum(-1)  # the rest of each pixel's attention on a padding token
    return probs


def test_loss_is_low_for_grounded_attention_and_high_for_swapped_objects():
    words, masks, captions = _batch()
    assert words.sum() > 0 and all(captions)
    store = grounding.Store()
    store.add("layer", _ideal_attention(words, masks), heads=1)
    grounded = grounding.loss(store, words, masks).item()
    store.clear()
    store.add("layer", _ideal_attention(words.flip(1), masks), heads=1)  # each object reads the other's words
    swapped = grounding.loss(store, words, masks).item()
    store.clear()
    store.add("layer", torch.full((6, 256, 24), 1 / 24), heads=1)  # attention spread evenly
    uniform = grounding.loss(store, words, masks).item()
    assert grounded < 0.15 and swapped > 0.85 and grounded < uniform < swapped


def test_empty_captions_and_single_objects_have_no_binding_term():
    words, masks, _ = _batch(category="single_object")
    assert words[:, 1].sum() == 0 and masks[:, 1].sum() == 0
    store = grounding.Store()
    store.add("layer", _ideal_attention(words, masks), heads=1)
    assert grounding.loss(store, words, masks).item() < 0.15
    empty_words, empty_masks = map(torch.from_numpy, grounding.targets(
        [world.sample_scene(seed=0)], [""], max_tokens=24))
    assert empty_words.sum() == 0 and grounding.loss(store, empty_words, empty_masks).item() == 0.0


def test_training_on_the_loss_moves_the_unets_attention_onto_the_objects(tmp_path):
    torch.manual_seed(0)
    arch = components.SMOKE
    tokenizer = components.build_tokenizer(tmp_path / "tokenizer", arch)
    text_encoder, unet = components.build_text_encoder(len(tokenizer), arch), components.build_unet(arch)
    store = train._record_attention(unet)
    weights = [float(c == "position") for c in world.CATEGORIES]
    _, captions, scenes = world.batch(8, seed=0, weights=weights)
    words, masks = map(torch.from_numpy, grounding.targets(scenes, captions, tokenizer.model_max_length))
    latents, t = torch.randn(8, 4, 16, 16), torch.full((8,), 500)
    opt = torch.optim.Adam(list(unet.parameters()) + list(text_encoder.parameters()), lr=3e-3)
    losses = []
    for _ in range(25):
        store.clear()
        unet(latents, t, train._encode_text(tokenizer, text_encoder, captions, "cpu"))
        assert len(store.layers) == 7  # every cross-attention layer of the UNet recorded
        loss = grounding.loss(store, words, masks)
        opt.zero_grad(); loss.backward(); opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_grounding_weight_is_a_training_setting_off_by_default():
    assert train._config({}, ["grounding=0.05"]).grounding == 0.05
    assert train.TrainConfig().grounding == 0.0
