"""Lesson: from a prompt to what the denoiser reads. The tokenizer cuts the prompt into pieces with ids, the text
encoder turns them into one vector per token, and the denoiser's cross-attention reads those vectors.

>>> from imagegen_nb.teach import tokens
>>> tokens.encode("a red circle").pieces
['a', 'red', 'circle', '</s>']
>>> fig = tokens.show("a red circle to the left of a blue square")
>>> len(fig.axes)
2
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._common import new_figure, pipeline

__all__ = ["Encoded", "encode", "show", "similarity", "similarity_matrix"]


@dataclass
class Encoded:
    """A prompt as the denoiser receives it."""

    prompt: str
    pieces: list[str]  # the tokens as the tokenizer writes them, up to and including the end token
    ids: list[int]  # their vocabulary ids
    embeddings: Any  # (len(pieces), width) float32 numpy: the text encoder's output for those tokens
    padded_length: int  # how many token vectors the denoiser gets (the rest are padding)


def encode(prompt: str, model=None) -> Encoded:
    """Tokenize `prompt` and run the text encoder as the pipeline does (padded to the tokenizer's
    `model_max_length`; the encoder's last hidden state is the conditioning). For models with two text encoders
    (SDXL, SD3, FLUX) this shows the first.

    >>> from imagegen_nb.teach import tokens
    >>> e = tokens.encode("two green triangles")
    >>> e.pieces[:3], e.embeddings.shape[0] == len(e.ids)
    (['two', 'green', 'triangles'], True)
    """
    import torch

    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a string, not {type(prompt).__name__}")
    pipe, _ = pipeline(model)
    tokenizer, encoder = pipe.tokenizer, pipe.text_encoder
    length = tokenizer.model_max_length
    unpadded = tokenizer(prompt, truncation=True, max_length=length).input_ids
    padded = tokenizer(prompt, padding="max_length", truncation=True, max_length=length, return_tensors="pt")
    device = next(encoder.parameters()).device
    with torch.inference_mode():
        hidden = encoder(padded.input_ids.to(device))[0][0].float().cpu().numpy()
    return Encoded(prompt, tokenizer.convert_ids_to_tokens(unpadded), list(unpadded), hidden[: len(unpadded)],
                   int(padded.input_ids.shape[1]))


def show(prompt: str, model=None):
    """The prompt's tokens (piece and id) above a heatmap of their embeddings: one row per token, one column per
    dimension of the text encoder's output. Two words that mean alike give rows that look alike.

    >>> from imagegen_nb.teach import tokens
    >>> fig = tokens.show("three yellow squares")
    >>> fig.axes[1].get_ylabel()
    'token'
    """
    e = encode(prompt, model)
    fig, axes = new_figure(2, 1, cell=1.0, height_ratios=[1, 3])
    fig.set_size_inches(max(6.0, 0.9 * len(e.pieces)), 4.5)
    ax = axes[0, 0]
    ax.set_xlim(0, len(e.pieces))
    ax.set_ylim(0, 1)
    ax.set_axis_off()
    for i, (piece, tid) in enumerate(zip(e.pieces, e.ids)):
        ax.text(i + 0.5, 0.62, piece, ha="center", va="center", fontsize=9,
                bbox=dict(boxstyle="round,pad=0.3", facecolor="#e8eef7", edgecolor="#7a8ca8"))
        ax.text(i + 0.5, 0.15, str(tid), ha="center", va="center", fontsize=8, color="#555")
    ax.set_title(f"{prompt!r}: {len(e.pieces)} tokens (ids below), padded to {e.padded_length}", fontsize=9)
    ax = axes[1, 0]
    v = float(abs(e.embeddings).max()) or 1.0
    ax.imshow(e.embeddings, aspect="auto", cmap="RdBu_r", vmin=-v, vmax=v, interpolation="nearest")
    ax.set_yticks(range(len(e.pieces)), e.pieces, fontsize=8)
    ax.set_ylabel("token")
    ax.set_xlabel(f"embedding dimension (of {e.embeddings.shape[1]})")
    return fig


def similarity_matrix(prompt_a: str, prompt_b: str, model=None):
    """Cosine similarities between every token vector of `prompt_a` (rows) and of `prompt_b` (columns), and the
    cosine similarity of the two prompts' mean token vectors. Returns (matrix, pooled, encoded_a, encoded_b)."""
    import numpy as np

    a, b = encode(prompt_a, model), encode(prompt_b, model)

    def unit(x):
        return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)

    matrix = unit(a.embeddings) @ unit(b.embeddings).T
    pooled = float(unit(a.embeddings.mean(0)) @ unit(b.embeddings.mean(0)))
    return matrix, pooled, a, b


def similarity(prompt_a: str, prompt_b: str, model=None):
    """How alike the encoder finds two prompts, token by token: cos(e_i, f_j) = e_i . f_j / (|e_i| |f_j|).

    The text encoder reads the whole sentence, so the same word in two prompts is not the same vector: "red" in
    "a red circle" and in "a red square" are close but differ.

    >>> from imagegen_nb.teach import tokens
    >>> fig = tokens.similarity("a red circle", "a red square")
    >>> len(fig.axes)
    1
    """
    matrix, pooled, a, b = similarity_matrix(prompt_a, prompt_b, model)
    fig, axes = new_figure(1, 1)
    fig.set_size_inches(max(4.0, 0.6 * len(b.pieces) + 2), max(3.5, 0.5 * len(a.pieces) + 1.5))
    ax = axes[0, 0]
    ax.imshow(matrix, cmap="viridis", vmin=-1, vmax=1, interpolation="nearest")
    ax.set_yticks(range(len(a.pieces)), a.pieces, fontsize=8)
    ax.set_xticks(range(len(b.pieces)), b.pieces, fontsize=8, rotation=45, ha="right")
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=6,
                    color="white" if matrix[i, j] < 0.5 else "black")
    ax.set_title(f"cosine similarity of token vectors\nmean vectors: {pooled:.2f}", fontsize=9)
    return fig
