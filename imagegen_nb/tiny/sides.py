"""Side labels: a training loss that makes the text encoder write, into each word of a position caption, which side
of the picture that word's object is on.

In "a red circle to the left of a blue square" the side of "red" depends on two things at once: the relation word,
and "red" being named before it. Trained on pictures alone, the built-in model learns the relation word but not the
word order, so it cannot bind a colour to a side (`benchmarks/position_capacity.py --part pictures`). The world
knows the answer for every caption, so training can say it: a linear probe reads each object word's side (left,
right, above, below) from the text encoder's token states, and its cross-entropy joins the diffusion loss. The
token states then carry the side, and cross-attention only has to match a side to a place. The probe is a training
aid; the exported text encoder is a plain `T5EncoderModel` whose states hold what the probe taught.

>>> from imagegen_nb.tiny import sides, world
>>> scene = world.sample_scene(seed=3, category="position")
>>> text = world.caption(scene)
>>> text
'a blue triangle to the right of a pink triangle'
>>> [(w, sides.SIDES[s]) for w, s in zip(text.split(), sides.word_sides(scene, text)) if s is not None]
[('blue', 'right'), ('triangle', 'right'), ('pink', 'left'), ('triangle', 'left')]
"""

from __future__ import annotations

import numpy as np

from . import grounding, world

SIDES = ("left", "right", "above", "below")  # the probe's classes: where a word's object is, against the other one
_FIRST = {"left of": 0, "right of": 1, "above": 2, "below": 3}  # the first-named object's side, by relation
_OTHER = {0: 1, 1: 0, 2: 3, 3: 2}
IGNORE = -100  # the label of words without a side, skipped by torch's cross-entropy


def word_sides(scene: world.Scene, text: str) -> list[int | None]:
    """For each word of a caption of `scene`, the index in SIDES of its object's side, or None where the caption
    says no side (words that name no object, and every caption that is not a position one). The relation is read
    from the scene, so a caption must describe it as the world's grammar does."""
    if scene.category != "position" or scene.relation not in _FIRST:
        return [None] * len(text.split())
    first = _FIRST[scene.relation]
    return [None if obj is None else (first if obj == 0 else _OTHER[first])
            for obj in grounding.word_objects(scene, text)]


def targets(scenes: list[world.Scene], captions: list[str], max_tokens: int) -> np.ndarray:
    """(n, max_tokens) int64 side labels for a batch, IGNORE where there is none (an empty caption has none)."""
    return word_targets(word_sides, scenes, captions, max_tokens)


def word_targets(word_labels, scenes: list[world.Scene], captions: list[str], max_tokens: int) -> np.ndarray:
    """(n, max_tokens) int64 labels of a batch from `word_labels(scene, text)` (a label or None per word), IGNORE
    where there is none. Token k is word k: the built-in tokenizer writes one token per word and no start token."""
    labels = np.full((len(scenes), max_tokens), IGNORE, dtype=np.int64)
    for i, (scene, text) in enumerate(zip(scenes, captions)):
        for k, label in enumerate(word_labels(scene, text)[:max_tokens] if text else []):
            if label is not None:
                labels[i, k] = label
    return labels


def probe(width: int):
    """The linear read-out of a side from a token state (`width`: the text encoder's hidden size)."""
    import torch

    return torch.nn.Linear(width, len(SIDES))


def loss(probe, states, labels):
    """Cross-entropy of the probe's reading of the token `states` (n, tokens, width) against `labels` (n, tokens);
    zero for a batch without side labels."""
    import torch.nn.functional as F

    keep = labels != IGNORE
    if not keep.any():
        return states.new_zeros(())
    return F.cross_entropy(probe(states[keep]), labels[keep])
