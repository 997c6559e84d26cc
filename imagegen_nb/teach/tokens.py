"""Lesson: from a prompt to what the denoiser reads. The tokenizer cuts the prompt into pieces with ids, the text
encoder turns them into one vector per token, and the denoiser reads those vectors (cross-attention in SD, SDXL,
PixArt and Sana; joint attention with the picture's tokens in SD3, FLUX and Z-Image).

Each family feeds its text its own way, and the lesson follows the pipeline's own code for each (diffusers 0.42):

| family | text encoders, as the denoiser reads them |
|---|---|
| SD 1.5, built-in | one encoder's last hidden state, all `model_max_length` vectors (padding read too) |
| SDXL | two CLIP encoders' second-to-last hidden states, side by side per token; the second's pooled vector too |
| SD3 | two CLIP (second-to-last states, side by side, zero-padded to T5's width) then T5's tokens, one sequence |
| FLUX | CLIP's pooled vector only (it modulates every block); T5's tokens are the text sequence |
| Z-Image | Qwen3's second-to-last states of the prompt inside a chat template; padding dropped |
| PixArt-Sigma | T5's last hidden state, padding masked out of the attention |
| Sana | Gemma's last hidden state of an instruction followed by the prompt; the instruction's tokens are dropped |

>>> from imagegen_nb.teach import tokens
>>> tokens.encode("a red circle").pieces
['a', 'red', 'circle', '</s>']
>>> fig = tokens.show("a red circle to the left of a blue square")
>>> len(fig.axes)
2
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ._common import new_figure, pipe_and_family

__all__ = ["Encoded", "encode", "show", "similarity", "similarity_matrix", "streams", "words"]

# Call arguments of the pipelines that change how the prompt is encoded; `streams` takes them too.
_ENCODING_ARGUMENTS = ("max_sequence_length", "complex_human_instruction")


@dataclass
class Encoded:
    """A prompt as the denoiser receives it from one text encoder."""

    prompt: str
    pieces: list[str]  # the tokens the denoiser reads, as the tokenizer writes them (padding left out)
    ids: list[int]  # their vocabulary ids
    embeddings: Any  # (len(pieces), width) float32 numpy, the vectors the denoiser reads; None if it reads none
    padded_length: int  # how many token vectors from this encoder the denoiser gets (0: none, only `pooled`)
    encoder: str = "text_encoder"  # the pipeline's component name
    text: str = ""  # what the tokenizer read: the prompt, or the prompt inside a template or after an instruction
    use: str = ""  # how the denoiser reads this encoder's output
    padding_masked: bool = False  # True: the denoiser's attention ignores the padding vectors
    pooled: Any = None  # (width,) float32 numpy: the pooled vector the pipeline takes from this encoder, if any
    offsets: list | None = field(default=None, repr=False)  # (start, end) of each piece in `text`; None: unknown
    slots: list = field(default_factory=list, repr=False)  # where each piece sits among the vectors read
    prompt_start: int = 0  # where the prompt begins in `text`


def _call_defaults(pipe, family, overrides: dict) -> dict:
    """The pipeline's default for each encoding argument, then the family's, then the caller's."""
    import inspect

    params = inspect.signature(type(pipe).__call__).parameters
    out = {k: params[k].default for k in _ENCODING_ARGUMENTS if k in params}
    out.update({k: v for k, v in family.call_kwargs.items() if k in _ENCODING_ARGUMENTS})
    out.update(overrides)
    return out


def _tokenize(tokenizer, text: str, length: int):
    """(ids, attention mask, offsets) of `text` padded to `length`, as the pipelines tokenize."""
    kw = dict(padding="max_length", max_length=length, truncation=True, add_special_tokens=True)
    try:
        out = tokenizer(text, return_offsets_mapping=True, **kw)
        offsets = [tuple(o) for o in out["offset_mapping"]]
    except (NotImplementedError, TypeError, ValueError):  # slow tokenizers have no offsets
        out, offsets = tokenizer(text, **kw), None
    return list(out["input_ids"]), list(out["attention_mask"]), offsets


def _run(encoder, ids, mask=None, *, hidden: int | None = None):
    """The encoder's output for one padded sequence: (states (L, W), output object). `hidden=None` is the last
    hidden state (`output[0]`), `hidden=-2` the second-to-last layer's."""
    import torch

    device = next(encoder.parameters()).device
    kw = {"output_hidden_states": True} if hidden is not None else {}
    if mask is not None:
        kw["attention_mask"] = torch.tensor([mask], device=device)
    with torch.inference_mode():
        out = encoder(torch.tensor([ids], device=device), **kw)
    states = out[0] if hidden is None else out.hidden_states[hidden]
    return states[0].float().cpu().numpy(), out


def _stream(prompt, tokenizer, encoder, name, *, text=None, length=None, hidden=None, padding="read",
            encoder_mask=None, pooled=None, use="", per_token=True, select=None) -> Encoded:
    """One encoder's Encoded, computed as the pipeline computes it.

    `padding`: "read" (the denoiser reads the padding vectors too), "masked" (its attention ignores them) or
    "dropped" (the pipeline cuts them off). The encoder gets the attention mask unless padding is "read"
    (`encoder_mask` overrides). `pooled` names the output field of the pooled vector the pipeline keeps.
    `select`: the positions the pipeline keeps after encoding (Sana).
    """
    text = prompt if text is None else text
    length = tokenizer.model_max_length if length is None else length
    ids, mask, offsets = _tokenize(tokenizer, text, length)
    use_mask = padding != "read" if encoder_mask is None else encoder_mask
    states, out = _run(encoder, ids, mask if use_mask else None, hidden=hidden)
    positions = list(range(len(ids))) if select is None else list(select)
    kept = [i for i in positions if mask[i]]
    vectors = len(kept) if padding == "dropped" else len(positions)
    start = text.rfind(prompt) if prompt else len(text)
    return Encoded(
        prompt=prompt, pieces=tokenizer.convert_ids_to_tokens([ids[i] for i in kept]), ids=[ids[i] for i in kept],
        embeddings=states[kept] if per_token else None, padded_length=vectors if per_token else 0, encoder=name,
        text=text, use=use, padding_masked=padding != "read",
        pooled=getattr(out, pooled)[0].float().cpu().numpy() if pooled is not None else None,
        offsets=[offsets[i] for i in kept] if offsets is not None else None, prompt_start=max(start, 0),
        slots=list(range(len(kept))) if padding == "dropped" else [positions.index(i) for i in kept])


def streams(prompt: str, model=None, **call_kwargs) -> list[Encoded]:
    """What the denoiser gets from each text encoder of `model`, computed as its pipeline's `encode_prompt` does.

    Keyword arguments are the pipeline call's encoding arguments (`max_sequence_length`, Sana's
    `complex_human_instruction`); unset ones take the pipeline's defaults.

    >>> from imagegen_nb.teach import tokens
    >>> [(e.encoder, e.padded_length) for e in tokens.streams("a red circle")]
    [('text_encoder', 24)]
    """
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a string, not {type(prompt).__name__}")
    unknown = sorted(set(call_kwargs) - set(_ENCODING_ARGUMENTS))
    if unknown:
        raise TypeError(f"unexpected keyword arguments {unknown}; the encoding arguments are "
                        f"{', '.join(_ENCODING_ARGUMENTS)}")
    pipe, family = pipe_and_family(model)
    if getattr(pipe, "tokenizer", None) is None or getattr(pipe, "text_encoder", None) is None:
        raise ValueError(f"{family.name} models have no text encoder: they are conditioned on class labels")
    args = _call_defaults(pipe, family, call_kwargs)
    kind = type(pipe).__name__
    penultimate = -2  # the second-to-last layer's hidden state

    if kind.startswith("StableDiffusionXL"):
        w1, w2 = pipe.text_encoder.config.hidden_size, pipe.text_encoder_2.config.hidden_size
        side = f"side by side per token ({w1} + {w2} = {w1 + w2} features): the UNet's cross-attention keys and values"
        return [
            _stream(prompt, pipe.tokenizer, pipe.text_encoder, "text_encoder", hidden=penultimate,
                    use=f"second-to-last layer, {side}"),
            _stream(prompt, pipe.tokenizer_2, pipe.text_encoder_2, "text_encoder_2", hidden=penultimate,
                    pooled="text_embeds", use=f"second-to-last layer, {side}; its pooled vector joins the timestep "
                                              "embedding"),
        ]
    if kind.startswith("StableDiffusion3"):
        t5_width = pipe.text_encoder_3.config.d_model
        clip = (f"second-to-last layer, side by side with the other CLIP's and zero-padded to T5's width "
                f"({t5_width}); the joint attention's first {pipe.tokenizer_max_length} text tokens; its pooled "
                "vector joins the timestep embedding")
        return [
            _stream(prompt, pipe.tokenizer, pipe.text_encoder, "text_encoder", hidden=penultimate,
                    pooled="text_embeds", use=clip),
            _stream(prompt, pipe.tokenizer_2, pipe.text_encoder_2, "text_encoder_2", hidden=penultimate,
                    pooled="text_embeds", use=clip),
            _stream(prompt, pipe.tokenizer_3, pipe.text_encoder_3, "text_encoder_3",
                    length=args["max_sequence_length"],
                    use="last layer, after the CLIP tokens in the joint attention's text sequence"),
        ]
    if kind.startswith("Flux"):
        return [
            _stream(prompt, pipe.tokenizer, pipe.text_encoder, "text_encoder", pooled="pooler_output",
                    per_token=False, use="the pooled vector only (it modulates every block with the timestep); its "
                                         "token vectors are not used"),
            _stream(prompt, pipe.tokenizer_2, pipe.text_encoder_2, "text_encoder_2",
                    length=args["max_sequence_length"],
                    use="last layer: the text tokens of the joint attention"),
        ]
    if kind.startswith("ZImage"):
        text = pipe.tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                                  add_generation_prompt=True, enable_thinking=True)
        return [_stream(prompt, pipe.tokenizer, pipe.text_encoder, "text_encoder", text=text,
                        length=args["max_sequence_length"], hidden=-2, padding="dropped",
                        use="second-to-last layer of the prompt in a chat template; padding dropped; the text "
                            "tokens of the single-stream attention")]
    if kind.startswith("PixArt"):
        return [_stream(prompt, pipe.tokenizer, pipe.text_encoder, "text_encoder",
                        length=args["max_sequence_length"], padding="masked",
                        use="last layer: the cross-attention keys and values, padding masked out")]
    if kind.startswith("Sana"):
        pipe.tokenizer.padding_side = "right"  # as the pipeline sets it
        instruction = args.get("complex_human_instruction")
        length = args["max_sequence_length"]
        text, total = prompt, length
        if instruction:
            preamble = "\n".join(instruction)
            text = preamble + prompt
            total = len(pipe.tokenizer.encode(preamble)) + length - 2
        # the pipeline keeps the first token and the last max_sequence_length - 1
        select = [0, *range(total - length + 1, total)]
        use = "last layer: the cross-attention keys and values, padding masked out"
        if instruction:
            use += "; the instruction before the prompt shapes the states, but its tokens are dropped"
        return [_stream(prompt, pipe.tokenizer, pipe.text_encoder, "text_encoder", text=text, length=total,
                        padding="masked", select=select, use=use)]
    # Stable Diffusion 1.x/2.x and the built-in model
    masked = bool(getattr(pipe.text_encoder.config, "use_attention_mask", False))
    return [_stream(prompt, pipe.tokenizer, pipe.text_encoder, "text_encoder", encoder_mask=masked,
                    use="last layer: the UNet's cross-attention keys and values, padding read too")]


def encode(prompt: str, model=None, **call_kwargs) -> Encoded:
    """The first text encoder whose token vectors the denoiser reads (`streams` has them all): SDXL's and SD3's
    first CLIP, FLUX's T5 (its CLIP gives only a pooled vector).

    >>> from imagegen_nb.teach import tokens
    >>> e = tokens.encode("two green triangles")
    >>> e.pieces[:3], e.embeddings.shape[0] == len(e.ids)
    (['two', 'green', 'triangles'], True)
    """
    return next(e for e in streams(prompt, model, **call_kwargs) if e.embeddings is not None)


def words(e: Encoded) -> list[tuple[str, list[int]]]:
    """The prompt's words (split at white space), each with the positions in `e.pieces` of the tokens that spell
    it (a byte- or character-level tokenizer spells a word with several). Tokens of a template or instruction
    around the prompt, and special tokens, belong to no word.

    >>> from imagegen_nb.teach import tokens
    >>> tokens.words(tokens.encode("a red circle"))
    [('a', [0]), ('red', [1]), ('circle', [2])]
    """
    return [(word, positions) for _, word, positions in word_spans(e)]


def word_spans(e: Encoded) -> list[tuple[int, str, list[int]]]:
    """(index of the word in the prompt, word, piece positions) for each word some piece spells."""
    spans = [(m.group(), e.prompt_start + m.start(), e.prompt_start + m.end()) for m in re.finditer(r"\S+", e.prompt)]
    if e.offsets is None:  # no character offsets: each non-special piece is its own word
        return [(i, p, [i]) for i, p in enumerate(e.pieces) if not (p.startswith("<") and p.endswith(">"))]
    out = []
    for k, (word, start, end) in enumerate(spans):
        positions = [i for i, (a, b) in enumerate(e.offsets) if b > a and a < end and b > start]
        if positions:
            out.append((k, word, positions))
    return out


def show(prompt: str, model=None, **call_kwargs):
    """For each text encoder: the tokens the denoiser reads (piece and id) above a heatmap of their vectors, one
    row per token, one column per dimension. Two words that mean alike give rows that look alike. An encoder the
    pipeline takes only a pooled vector from (FLUX's CLIP) shows that one vector.

    >>> from imagegen_nb.teach import tokens
    >>> fig = tokens.show("three yellow squares")
    >>> fig.axes[1].get_ylabel()
    'token'
    """
    import textwrap

    encoded = streams(prompt, model, **call_kwargs)
    width = max(len(e.pieces) for e in encoded)
    fig, axes = new_figure(2 * len(encoded), 1, cell=1.0, height_ratios=[1, 3] * len(encoded))
    fig.set_size_inches(max(6.0, min(0.9 * width, 40.0)), 4.5 * len(encoded))
    for k, e in enumerate(encoded):
        ax = axes[2 * k, 0]
        ax.set_xlim(0, max(1, len(e.pieces)))
        ax.set_ylim(0, 1)
        ax.set_axis_off()
        for i, (piece, tid) in enumerate(zip(e.pieces, e.ids)):
            ax.text(i + 0.5, 0.62, piece, ha="center", va="center", fontsize=9,
                    bbox=dict(boxstyle="round,pad=0.3", facecolor="#e8eef7", edgecolor="#7a8ca8"))
            ax.text(i + 0.5, 0.15, str(tid), ha="center", va="center", fontsize=8, color="#555")
        if e.embeddings is None:
            count = f"{len(e.pieces)} tokens (ids below) -> one pooled vector"
        else:
            padding = "padding masked out" if e.padding_masked else "padding read too"
            count = f"{len(e.pieces)} tokens (ids below), {e.padded_length} vectors ({padding})"
        head = f"{prompt!r}: {count}" if len(encoded) == 1 else f"{e.encoder}: {count}"
        ax.set_title("\n".join([head, *textwrap.wrap(e.use, 110)]), fontsize=8)
        ax = axes[2 * k + 1, 0]
        values = e.embeddings if e.embeddings is not None else e.pooled[None]
        v = float(abs(values).max()) or 1.0
        ax.imshow(values, aspect="auto", cmap="RdBu_r", vmin=-v, vmax=v, interpolation="nearest")
        if e.embeddings is not None:
            ax.set_yticks(range(len(e.pieces)), e.pieces, fontsize=8)
            ax.set_ylabel("token")
        else:
            ax.set_yticks([0], ["pooled"], fontsize=8)
        ax.set_xlabel(f"dimension (of {values.shape[1]})", fontsize=8)
    return fig


def similarity_matrix(prompt_a: str, prompt_b: str, model=None):
    """Cosine similarities between every token vector of `prompt_a` (rows) and of `prompt_b` (columns), and the
    cosine similarity of the two prompts' mean token vectors, for the encoder `encode` shows. Returns
    (matrix, pooled, encoded_a, encoded_b)."""
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
    ax.set_title(f"cosine similarity of token vectors ({a.encoder})\nmean vectors: {pooled:.2f}", fontsize=9)
    return fig
