"""Lesson: cross-attention, where each word of the prompt acts on the picture. In every cross-attention layer of
the UNet each latent pixel (query) spreads one unit of attention over the prompt's token vectors (keys):

    A = softmax(Q K^T / sqrt(d))        (Vaswani et al. 2017; as used in the UNet by Rombach et al. 2022)

so row A[p, :] says how much pixel p reads from each token. Averaging A over heads, layers and steps, and looking
at the column of one word, gives a map of where that word went (Hertz et al. 2022, "Prompt-to-Prompt").

The maps are recorded by a custom attention processor installed on the UNet for one `ig.generate` call only; the
original processors are put back afterwards, also after an error.

>>> from imagegen_nb.teach import attention
>>> fig = attention.figure("a red circle", seed=0, num_inference_steps=3)
>>> [ax.get_title() for ax in fig.axes]
['picture', 'a', 'red', 'circle']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ._common import new_figure, pipeline, show_image

__all__ = ["AttentionMaps", "AttentionRecorder", "figure", "record"]


@dataclass
class AttentionMaps:
    """Cross-attention of one picture, averaged over heads, cross-attention layers and steps."""

    image: Any  # the picture (with its recipe)
    pieces: list[str]  # the prompt's tokens (unpadded, specials included)
    words: list[tuple[int, str]]  # (token position, piece) of the tokens that are words, not special tokens
    maps: Any  # (tokens incl. padding, h, w) float32 numpy at latent resolution; sums to 1 over tokens per pixel
    calls: int = 0  # cross-attention layer calls averaged
    layers: list[str] = field(default_factory=list)  # names of the cross-attention processors that recorded

    def word_map(self, word: str):
        """The map of the first token spelled `word`."""
        for position, piece in self.words:
            if piece.lower().removesuffix("</w>").lstrip("▁Ġ") == word.lower():
                return self.maps[position]
        raise ValueError(f"{word!r} is not a token of the prompt; its tokens are {[p for _, p in self.words]}")


class _Store:
    def __init__(self, size: tuple[int, int]):
        self.size = size  # (h, w) of the latent
        self.total = None
        self.calls = 0
        self.layers: set[str] = set()

    def add(self, name: str, probs, heads: int) -> None:
        import torch

        bh, n, k = probs.shape
        # head_to_batch_dim orders the batch as (sample, head); with guidance the last sample is the conditional one
        p = probs.reshape(bh // heads, heads, n, k)[-1].float().mean(0)  # (n, k)
        h, w = self.size
        down = round((h * w / n) ** 0.5)
        grid = p.T.reshape(1, k, h // down, w // down)
        # bilinear resizing is a convex combination per output pixel, so each pixel's map still sums to 1
        grid = torch.nn.functional.interpolate(grid, size=(h, w), mode="bilinear", align_corners=False)[0]
        grid = grid.cpu()
        self.total = grid if self.total is None else self.total + grid
        self.calls += 1
        self.layers.add(name)


class AttentionRecorder:
    """A diffusers attention processor: for cross-attention it computes the attention probabilities explicitly
    (the classic `AttnProcessor` path: softmax(QK^T/sqrt(d)) V) and hands them to a store; self-attention, and
    anything it does not know how to record, goes to the original processor unchanged."""

    def __init__(self, name: str, original, store: _Store):
        self.name, self.original, self.store = name, original, store

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, *args,
                 **kwargs):
        import torch

        if encoder_hidden_states is None or getattr(attn, "norm_q", None) is not None:
            return self.original(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch, channel, height * width).transpose(1, 2)
        batch_size, sequence_length, _ = encoder_hidden_states.shape
        attention_mask = attn.prepare_attention_mask(attention_mask, sequence_length, batch_size)
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query = attn.to_q(hidden_states)
        if attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key = attn.head_to_batch_dim(attn.to_k(encoder_hidden_states))
        value = attn.head_to_batch_dim(attn.to_v(encoder_hidden_states))
        query = attn.head_to_batch_dim(query)
        probs = attn.get_attention_scores(query, key, attention_mask)  # softmax(Q K^T * scale)
        self.store.add(self.name, probs, attn.heads)
        hidden_states = attn.batch_to_head_dim(torch.bmm(probs, value))
        hidden_states = attn.to_out[1](attn.to_out[0](hidden_states))
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch, channel, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


def record(prompt: str, *, seed: int = 0, model=None, **kwargs) -> AttentionMaps:
    """Make a picture with `ig.generate` while recording every cross-attention layer at every step.

    The recording processors are installed on the cached UNet for this call only (under the cache's lock, so a
    widget cannot run in between) and the original processors are restored afterwards.

    >>> from imagegen_nb.teach import attention
    >>> maps = attention.record("a blue square", seed=0, num_inference_steps=2)
    >>> [p for _, p in maps.words], maps.maps.shape[1:]
    (['a', 'blue', 'square'], (16, 16))
    """
    from .. import cache
    from ..tasks import generate

    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a string, not {type(prompt).__name__}")
    pipe, family = pipeline(model)
    unet = getattr(pipe, "unet", None)
    if unet is None or not hasattr(unet, "set_attn_processor"):
        raise ValueError(f"{family.name} models have no UNet with cross-attention layers (they are transformers "
                         "with joint attention); this lesson works with the built-in model, SD 1.5 and SDXL")
    width = kwargs.get("width") or family.default_size
    height = kwargs.get("height") or family.default_size
    store = _Store((height // pipe.vae_scale_factor, width // pipe.vae_scale_factor))
    with cache.shared.lock:
        originals = dict(unet.attn_processors)
        unet.set_attn_processor({name: AttentionRecorder(name, proc, store) for name, proc in originals.items()})
        try:
            image = generate(prompt, seed=seed, model=model, progress=False, **kwargs)
        finally:
            unet.set_attn_processor(dict(originals))
    if store.total is None:
        raise RuntimeError("no cross-attention layer ran; nothing was recorded")
    tokenizer = pipe.tokenizer
    ids = tokenizer(prompt, truncation=True, max_length=tokenizer.model_max_length).input_ids
    pieces = tokenizer.convert_ids_to_tokens(ids)
    specials = set(tokenizer.all_special_tokens)
    words = [(i, p) for i, p in enumerate(pieces) if p not in specials]
    maps = (store.total / store.calls).numpy()
    return AttentionMaps(image, pieces, words, maps, store.calls, sorted(store.layers))


def figure(prompt: str, *, seed: int = 0, model=None, **kwargs):
    """The picture, then one panel per word of the prompt: the picture with that word's attention map over it
    (each map stretched to its own range, so it shows where, not how much).

    >>> from imagegen_nb.teach import attention
    >>> fig = attention.figure("two green triangles", seed=1, num_inference_steps=2)
    >>> len(fig.axes)
    4
    """
    import numpy as np

    m = record(prompt, seed=seed, model=model, **kwargs)
    fig, axes = new_figure(1, 1 + len(m.words), cell=1.9,
                           title=f"cross-attention per word, averaged over {m.calls} layer calls")
    show_image(axes[0, 0], m.image, "picture")
    w, h = m.image.size
    for ax, (position, piece) in zip(axes[0, 1:], m.words):
        heat = m.maps[position]
        heat = (heat - heat.min()) / max(float(heat.max() - heat.min()), 1e-12)
        show_image(ax, np.asarray(m.image.convert("L")), piece, cmap="gray")
        ax.imshow(heat, cmap="jet", alpha=0.55, extent=(0, w, h, 0), interpolation="bilinear", vmin=0, vmax=1)
    return fig
