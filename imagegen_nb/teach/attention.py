"""Lesson: attention from the picture to the prompt, where each word acts on the picture. Each image position
(query) spreads one unit of attention over the keys it reads,

    A = softmax(Q K^T / sqrt(d))        (Vaswani et al. 2017; as used in the UNet by Rombach et al. 2022)

so row A[p, :] says how much position p reads from each token. Averaging A over heads, layers and steps, and
summing the columns of one word's tokens, gives a map of where that word went (Hertz et al. 2022,
"Prompt-to-Prompt").

Two kinds of denoiser read the prompt two ways:

- cross-attention (the UNets of SD 1.5, SDXL and the built-in model; the DiTs PixArt-Sigma and Sana): image
  queries, text keys only. Each row sums to 1 over the text tokens (padding included where the model reads it;
  PixArt and Sana mask their padding out, so it gets 0).
- joint attention (SD3, FLUX, Z-Image): image and text tokens attend over both together. The maps are the
  image-to-text block, each image row renormalised to sum to 1 over the text keys; `text_share` says how much of
  the row the text had before that (the rest went to other image tokens).

The maps are recorded for one `ig.generate` call only (`imagegen_nb.attention_maps`); the original processors
are put back afterwards, also after an error. Where a word is spelled with several tokens (byte- or
character-level tokenizers; SD3 reads every word twice, once from CLIP and once from T5) its map sums them.

>>> from imagegen_nb.teach import attention
>>> fig = attention.figure("a red circle", seed=0, num_inference_steps=3)
>>> [ax.get_title() for ax in fig.axes]
['picture', 'a', 'red', 'circle']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..attention_maps import JOINT, AttentionRecorder
from ._common import new_figure, pipe_and_family, show_image

__all__ = ["AttentionMaps", "AttentionRecorder", "figure", "record"]


@dataclass
class AttentionMaps:
    """Attention from the picture to the text of one run, averaged over heads, layers and steps."""

    image: Any  # the picture (with its recipe)
    pieces: list[str]  # the text tokens the denoiser reads (padding left out), in the order of the text keys
    positions: list[int]  # where each of `pieces` sits among the text keys (the first axis of `maps`)
    words: list[tuple[str, list[int]]]  # each word of the prompt, with the text-key positions of its tokens
    maps: Any  # (text keys incl. padding, h, w) float32 numpy at latent resolution; sums to 1 over keys per pixel
    word_maps: Any  # (len(words), h, w): the share of each pixel's text attention that goes to the word's tokens
    calls: int = 0  # attention layer calls averaged
    layers: list[str] = field(default_factory=list)  # names of the layers that recorded
    attention: str = "cross"  # "cross", or "joint" (maps renormalised over the text keys)
    text_share: float = 1.0  # joint attention: mean share of an image position's attention on the text keys

    def word_map(self, word: str):
        """The map of the first word of the prompt spelled `word` (case and a trailing comma or full stop ignored).

        >>> from imagegen_nb.teach import attention
        >>> attention.record("a red circle", num_inference_steps=2).word_map("Red").shape
        (16, 16)
        """
        for k, (text, _) in enumerate(self.words):
            if text.lower().rstrip(".,;:!?") == word.lower().rstrip(".,;:!?"):
                return self.word_maps[k]
        raise ValueError(f"{word!r} is not a word of the prompt; its words are {[w for w, _ in self.words]}")


class _Store:
    def __init__(self, size: tuple[int, int]):
        self.size = size  # (h, w) of the latent
        self.total = None
        self.calls = 0
        self.layers: set[str] = set()
        self.shares: list[float] = []

    def add(self, name: str, probs, heads: int) -> None:
        import torch

        bh, n, k = probs.shape
        # head_to_batch_dim orders the batch as (sample, head); with guidance the last sample is the conditional one
        p = probs.detach().reshape(bh // heads, heads, n, k)[-1].float().mean(0)  # (n, k)
        h, w = self.size
        down = round((h * w / n) ** 0.5)
        grid = p.T.reshape(1, k, h // down, w // down)
        # bilinear resizing is a convex combination per output pixel, so each pixel's map still sums to 1
        grid = torch.nn.functional.interpolate(grid, size=(h, w), mode="bilinear", align_corners=False)[0]
        grid = grid.cpu()
        self.total = grid if self.total is None else self.total + grid
        self.calls += 1
        self.layers.add(name)

    def add_share(self, share: float) -> None:
        self.shares.append(share)


def _text_keys(prompt: str, pipe, model, kwargs) -> tuple[list[str], list[int], list[tuple[str, list[int]]]]:
    """(pieces, their text-key positions, words with their key positions) for the text sequence the denoiser's
    attention reads, built from the token lesson's account of each family (`tokens.streams`)."""
    from . import tokens

    encoding = {k: kwargs[k] for k in ("max_sequence_length", "complex_human_instruction") if k in kwargs}
    streams = tokens.streams(prompt, model, **encoding)
    kind = type(pipe).__name__
    if kind.startswith("StableDiffusion3"):  # [CLIP-L and CLIP-G side by side (77), T5]
        parts = [(streams[0], 0), (streams[2], streams[0].padded_length)]
    elif kind.startswith("Flux"):  # the T5 sequence; CLIP is pooled only
        parts = [(streams[1], 0)]
    else:  # one sequence: SD, SDXL (both CLIP encoders share the token positions), PixArt, Sana, Z-Image
        parts = [(streams[0], 0)]
    pieces, positions, merged = [], [], {}
    for e, offset in parts:
        pieces += e.pieces
        positions += [offset + s for s in e.slots]
        for index, word, where in tokens.word_spans(e):
            merged.setdefault(index, (word, []))[1].extend(offset + e.slots[i] for i in where)
    return pieces, positions, [merged[k] for k in sorted(merged)]


def record(prompt: str, *, seed: int = 0, model=None, **kwargs) -> AttentionMaps:
    """Make a picture with `ig.generate` while recording every attention layer that reads the text, at every step.

    The recording processors are installed on the cached denoiser for this call only (under the cache's lock, so
    a widget cannot run in between) and the original processors are restored afterwards. Other keyword arguments
    go to `ig.generate`; one picture only.

    >>> from imagegen_nb.teach import attention
    >>> maps = attention.record("a blue square", seed=0, num_inference_steps=2)
    >>> [w for w, _ in maps.words], maps.maps.shape[1:]
    (['a', 'blue', 'square'], (16, 16))
    """
    import numpy as np

    from .. import cache
    from ..attention_maps import install_probes
    from ..tasks import generate

    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a string, not {type(prompt).__name__}")
    if kwargs.get("num_images", 1) != 1:
        raise ValueError(f"attention maps are recorded for one picture, but num_images is {kwargs['num_images']!r}")
    if (kwargs.get("true_cfg_scale") or 1.0) > 1.0:
        raise ValueError("true_cfg_scale > 1 runs FLUX's transformer a second time with the negative prompt, whose "
                         "attention would be averaged in; record without it")
    pipe, family = pipe_and_family(model)
    width = kwargs.get("width") or family.default_size
    height = kwargs.get("height") or family.default_size
    store = _Store((height // pipe.vae_scale_factor, width // pipe.vae_scale_factor))
    unet = getattr(pipe, "unet", None)
    denoiser = unet if unet is not None else getattr(pipe, "transformer", None)
    if denoiser is None:
        raise ValueError(f"{family.name} models have no denoiser this lesson can record")
    joint = False
    with cache.shared.lock:
        if unet is not None:
            originals = dict(unet.attn_processors)
            unet.set_attn_processor({name: AttentionRecorder(name, proc, store) for name, proc in originals.items()})

            def remove():
                unet.set_attn_processor(dict(originals))
        else:
            joint = any(type(getattr(m, "processor", None)).__name__ in JOINT for m in denoiser.modules())
            remove = install_probes(denoiser, store)
        try:
            image = generate(prompt, seed=seed, model=model, progress=False, **kwargs)
        finally:
            remove()
    if store.total is None:
        raise RuntimeError("no attention layer that reads the text ran; nothing was recorded")
    pieces, positions, words = _text_keys(prompt, pipe, model, kwargs)
    maps = (store.total / store.calls).numpy()
    word_maps = np.stack([maps[where].sum(0) for _, where in words]) if words else np.zeros((0, *maps.shape[1:]))
    share = float(np.mean(store.shares)) if store.shares else 1.0
    return AttentionMaps(image, pieces, positions, words, maps, word_maps.astype(np.float32), store.calls,
                         sorted(store.layers), "joint" if joint else "cross", share)


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
    if m.attention == "joint":
        title = (f"joint attention, image-to-text part per word (the text gets {m.text_share:.0%} of an image "
                 f"token's attention; renormalised over the text), averaged over {m.calls} layer calls")
    else:
        title = f"cross-attention per word, averaged over {m.calls} layer calls"
    fig, axes = new_figure(1, 1 + len(m.words), cell=1.9, title=title)
    if m.attention == "joint":
        fig.set_size_inches(max(fig.get_size_inches()[0], 8.0), fig.get_size_inches()[1])
    show_image(axes[0, 0], m.image, "picture")
    w, h = m.image.size
    for ax, (word, _), heat in zip(axes[0, 1:], m.words, m.word_maps):
        heat = (heat - heat.min()) / max(float(heat.max() - heat.min()), 1e-12)
        show_image(ax, np.asarray(m.image.convert("L")), word, cmap="gray")
        ax.imshow(heat, cmap="jet", alpha=0.55, extent=(0, w, h, 0), interpolation="bilinear", vmin=0, vmax=1)
    return fig
