"""Attention grounding: a training loss that pulls each word's cross-attention onto the object the word names.

The shapes world knows where every object of a caption is, so the built-in model can be told, during training,
where "red" and "circle" should attend in "a red circle to the left of a blue square". Diffusion loss alone leaves
the attention maps diffuse (a fifth of each pixel's attention on the object words, spread over both objects); this
loss is a direct signal for which words belong to which object. Two terms, both in [0, 1] (after TokenCompose,
Wang et al. 2024):

- token: each object word's attention map (normalised over the picture) should fall inside its object;
- binding: each object pixel should read more from its own object's words than from the other object's.

>>> from imagegen_nb.tiny import grounding, world
>>> scene = world.sample_scene(seed=0, category="position")
>>> text = "a red circle to the left of a blue square"
>>> [(w, o) for w, o in zip(text.split(), grounding.word_objects(scene, text)) if o is not None]
[('red', 0), ('circle', 0), ('blue', 1), ('square', 1)]
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from . import world

_RELATION_WORDS = {"to", "left", "right", "of", "above", "below"}
_OBJECT_WORDS = set(world.COLORS) | set(world.SIZES) | set(world.SHAPES) | {world.plural(s) for s in world.SHAPES} \
    | set(world.NUMBERS.values())


def word_objects(scene: world.Scene, text: str) -> list[int | None]:
    """For each word of a caption of `scene`, the index of the shape it describes (for counting captions the
    first shape stands for all of them), or None for words that name no object (articles, relations, background).
    """
    out: list[int | None] = []
    obj, in_background = 0, False
    for word in text.lower().split():
        if word == "on" or in_background:  # "... on a white background"
            in_background = True
            out.append(None)
            continue
        if word == "and" or (word in _RELATION_WORDS and scene.category == "position"):
            obj = 1 if len(scene.shapes) > 1 and scene.category != "counting" else obj
            out.append(None)
            continue
        out.append(obj if word in _OBJECT_WORDS else None)
    return out


def object_masks(scene: world.Scene) -> np.ndarray:
    """(len(shapes), 64, 64) float32 masks: where each shape of the scene is drawn (1 inside, 0 outside)."""
    masks = []
    for s in scene.shapes:
        image = Image.new("L", (world.SIZE, world.SIZE), 0)
        world.draw_shape(ImageDraw.Draw(image), s, 255)
        masks.append(np.asarray(image, dtype=np.float32) / 255.0)
    return np.stack(masks)


def targets(scenes: list[world.Scene], captions: list[str], max_tokens: int) -> tuple[np.ndarray, np.ndarray]:
    """What the loss compares attention with, for a batch.

    Returns `words` (n, 2, max_tokens), 1 where token k names object j (0: the first shape, or every shape of a
    counting caption; 1: the second), and `masks` (n, 2, 64, 64), the two objects' masks (zeros where a scene has
    no such object). An empty caption (dropped for guidance) has no words. Token k is word k: the built-in
    tokenizer writes one token per word and no start token.
    """
    n = len(scenes)
    words = np.zeros((n, 2, max_tokens), dtype=np.float32)
    masks = np.zeros((n, 2, world.SIZE, world.SIZE), dtype=np.float32)
    for i, (scene, text) in enumerate(zip(scenes, captions)):
        if not text:
            continue
        for k, obj in enumerate(word_objects(scene, text)[:max_tokens]):
            if obj is not None:
                words[i, obj, k] = 1.0
        m = object_masks(scene)
        if scene.category == "counting":
            masks[i, 0] = m.max(0)
        else:
            masks[i, : len(m)] = m[:2]
    return words, masks


class Store:
    """Collects the cross-attention probabilities of one forward pass, with their gradients (give it to
    `attention_maps.AttentionRecorder`, which computes attention explicitly and hands each layer's here)."""

    def __init__(self):
        self.layers: list[tuple[object, int]] = []

    def add(self, name: str, probs, heads: int) -> None:
        self.layers.append((probs, heads))

    def clear(self) -> None:
        self.layers.clear()


def loss(store: Store, words, masks):
    """The mean over cross-attention layers of (token + binding) / 2, for tensors from `targets` (on the model's
    device). Samples without object words add nothing."""
    import torch
    import torch.nn.functional as F

    n = words.shape[0]
    has = words.sum(-1) > 0  # (n, 2): object j is named
    if not has.any():
        return words.new_zeros(())
    named = has.all(-1, keepdim=True) & has  # binding needs two named objects
    pooled: dict[int, torch.Tensor] = {}  # layers of one resolution share the pooled masks
    terms = []
    for probs, heads in store.layers:
        bh, hw, k = probs.shape
        a = probs.reshape(n, heads, hw, k).mean(1)  # (n, hw, tokens), averaged over heads
        if hw not in pooled:  # the share of each cell inside each object
            pooled[hw] = F.adaptive_avg_pool2d(masks, int(round(hw**0.5))).reshape(n, 2, hw)
        m = pooled[hw]
        per_object = torch.einsum("npk,njk->njp", a, words[:, :, :k])  # (n, 2, hw) attention on object j's words
        # token: the share of object j's words' attention that falls inside object j
        spread = per_object / per_object.sum(-1, keepdim=True).clamp_min(1e-8)
        token = 1 - (spread * m).sum(-1)
        # binding: inside object j, the share of object-word attention that goes to j's own words
        both = per_object.sum(1, keepdim=True).clamp_min(1e-8)
        own = per_object / both
        inside = m.sum(-1).clamp_min(1e-8)
        binding = 1 - (own * m).sum(-1) / inside
        term = (token * has).sum() / has.sum() + (binding * named).sum() / named.sum().clamp_min(1)
        terms.append(term / 2)
    return torch.stack(terms).mean()
