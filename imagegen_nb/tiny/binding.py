"""Binding labels: a training loss that makes the text encoder write, into each word of an object, the rest of that
object: a shape word says its object's colour, a colour or size word its object's shape.

In "a red circle and a blue square" cross-attention reads colour from "red" and "blue" and shape from "circle" and
"square"; nothing in those four states says which colour goes with which shape, and the built-in model swaps them
in about a third of its pictures (the checker then finds a blue circle and a red square). Its text encoder's
shape-word states name their own object's colour no better than a guess between the caption's two colours (a
linear probe reads it right 61% of the time). The world knows the answer for every caption, so training can say
it, as `tiny.sides` does for sides: a linear probe reads the bound colour or shape from each object word's state,
and its cross-entropy joins the diffusion loss. Then the state of "circle" says *red*, so a pixel that attends to
"circle" reads red there too. The probe is a training aid; the exported text encoder is a plain `T5EncoderModel`.

>>> from imagegen_nb.tiny import binding, world
>>> scene = world.sample_scene(seed=1, category="color_attr")
>>> text = world.caption(scene)
>>> text
'an orange square and a purple circle'
>>> [(w, binding.CLASSES[c]) for w, c in zip(text.split(), binding.word_bindings(scene, text)) if c is not None]
[('orange', 'square'), ('square', 'orange'), ('purple', 'circle'), ('circle', 'purple')]
"""

from __future__ import annotations

import numpy as np

from . import grounding, sides, world

CLASSES = (*world.COLORS, *world.SHAPES)  # the probe's classes: a shape word's colour, or a colour word's shape
IGNORE = sides.IGNORE
_SHAPE_WORDS = {**{s: s for s in world.SHAPES}, **{world.plural(s): s for s in world.SHAPES}}

loss = sides.loss  # the same masked cross-entropy of a linear read-out


def word_bindings(scene: world.Scene, text: str) -> list[int | None]:
    """For each word of a caption of `scene`, the index in CLASSES of what the word's object is besides that word:
    its colour for a shape word (None if the caption does not name the colour), its shape for a colour or size
    word; None for every other word (articles, numbers, relations, the background)."""
    words = text.lower().split()
    objects = grounding.word_objects(scene, text)
    named_color = {o for w, o in zip(words, objects) if o is not None and w in world.COLORS}
    out: list[int | None] = []
    for word, obj in zip(words, objects):
        if obj is None:
            out.append(None)
        elif word in _SHAPE_WORDS:
            out.append(CLASSES.index(scene.shapes[obj].color) if obj in named_color else None)
        elif word in world.COLORS or word in world.SIZES:
            out.append(CLASSES.index(scene.shapes[obj].shape))
        else:
            out.append(None)
    return out


def targets(scenes: list[world.Scene], captions: list[str], max_tokens: int) -> np.ndarray:
    """(n, max_tokens) int64 binding labels for a batch, IGNORE where there is none (an empty caption has none)."""
    return sides.word_targets(word_bindings, scenes, captions, max_tokens)


def probe(width: int):
    """The linear read-out of a bound colour or shape from a token state (`width`: the text encoder's hidden size)."""
    import torch

    return torch.nn.Linear(width, len(CLASSES))
