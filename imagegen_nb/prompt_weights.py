"""AUTOMATIC1111's prompt weighting and long prompts, for models with one text encoder (`StableDiffusionPipeline`:
the built-in U-Net, SD 1.x, SD-Turbo).

The syntax: `(words)` multiplies the attention the picture pays to those words by 1.1, `((words))` by 1.1^2,
`[words]` divides it by 1.1, `(words:1.5)` sets the factor; brackets nest, and `\\(`, `\\)`, `\\[`, `\\]` are
literal brackets. How a weight acts, as A1111 does it: each token's output state from the text encoder is multiplied
by its weight, then the whole sequence is rescaled to the mean it had unweighted, so a weight moves attention
between the words rather than making the prompt louder. A prompt longer than the encoder's window (75 tokens for
CLIP) is cut into windows that are encoded apart and put one after another, so the UNet's cross-attention reads
them all instead of losing the tail.

A prompt without brackets, within the window, goes to the pipeline as it is: the same picture as ever.

>>> from imagegen_nb import prompt_weights
>>> prompt_weights.parse("a (red:1.5) circle and a [blue] \\\\(square\\\\)")
[('a ', 1.0), ('red', 1.5), (' circle and a ', 1.0), ('blue', 0.9090909090909091), (' (square)', 1.0)]
>>> prompt_weights.parse("a red circle")
[('a red circle', 1.0)]
"""

from __future__ import annotations

import re

__all__ = ["PIPELINES", "is_plain", "parse", "plain_text", "prompt_embeds", "too_long"]

UP, DOWN = 1.1, 1 / 1.1  # A1111's factors for () and []
PIPELINES = ("StableDiffusionPipeline",)  # the families' pipelines whose one text encoder this module drives

_TOKEN = re.compile(r"\\[()\[\]\\]|\(|\)|\[|\]|:\s*-?[0-9.]+\s*\)|[^\\()\[\]:]+|:|\\")


def parse(prompt: str) -> list[tuple[str, float]]:
    """The prompt as (text, weight) segments, neighbours of one weight merged; unbalanced brackets are taken
    as closed at the end (as A1111 does)."""
    segments: list[list] = []
    stack: list[tuple[int, str]] = []  # (index of the first segment inside, "(" or "[")

    def scale(start: int, factor: float) -> None:
        for seg in segments[start:]:
            seg[1] *= factor

    for match in _TOKEN.finditer(prompt):
        token = match.group(0)
        if token.startswith("\\") and len(token) == 2:
            segments.append([token[1], 1.0])
        elif token in ("(", "["):
            stack.append((len(segments), token))
        elif token == ")" and stack and stack[-1][1] == "(":
            scale(stack.pop()[0], UP)
        elif token == "]" and stack and stack[-1][1] == "[":
            scale(stack.pop()[0], DOWN)
        elif token.startswith(":") and token.endswith(")") and stack and stack[-1][1] == "(":
            try:
                weight = float(token[1:-1])
            except ValueError:
                segments.append([token, 1.0])
                continue
            scale(stack.pop()[0], weight)
        else:
            segments.append([token, 1.0])
    for start, bracket in reversed(stack):  # unclosed: as if closed at the end
        scale(start, UP if bracket == "(" else DOWN)
    merged: list[tuple[str, float]] = []
    for text, weight in segments:
        if merged and merged[-1][1] == weight:
            merged[-1] = (merged[-1][0] + text, weight)
        else:
            merged.append((text, weight))
    return merged or [("", 1.0)]


def plain_text(prompt: str) -> str:
    """The prompt's words without the weighting syntax (escaped brackets as brackets)."""
    return "".join(text for text, _ in parse(prompt))


def is_plain(prompt: str) -> bool:
    """True if the prompt has no weighting syntax and no escapes: it goes to the pipeline as it is."""
    return not re.search(r"[()\[\]\\]", prompt)


def _token_ids(tokenizer, segments):
    """Token ids with one weight each, and the ids the tokenizer puts before and after a prompt."""
    ids, weights = [], []
    for text, weight in segments:
        part = tokenizer(text, add_special_tokens=False).input_ids if text.strip() else []
        ids += part
        weights += [weight] * len(part)
    empty = tokenizer("").input_ids  # e.g. CLIP: [BOS, EOS]; T5: [EOS]
    return ids, weights, empty[:-1], empty[-1:]


def _encode(pipe, prompt: str, windows: int | None = None):
    """The weighted states of one prompt, (1, windows x window length, width), and how many windows it took."""
    import torch

    tokenizer, encoder = pipe.tokenizer, pipe.text_encoder
    ids, weights, prefix, suffix = _token_ids(tokenizer, parse(prompt))
    length = tokenizer.model_max_length
    room = length - len(prefix) - len(suffix)
    needed = max(1, -(-len(ids) // room))
    windows = needed if windows is None else windows
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else suffix[0]
    param = next(encoder.parameters())
    mask_wanted = getattr(encoder.config, "use_attention_mask", False)
    states = []
    for w in range(windows):
        chunk, chunk_weights = ids[w * room:(w + 1) * room], weights[w * room:(w + 1) * room]
        row = prefix + chunk + suffix
        mask = [1] * len(row) + [0] * (length - len(row))
        row_weights = [1.0] * len(prefix) + chunk_weights + [1.0] * len(suffix)
        row += [pad] * (length - len(row))
        row_weights += [1.0] * (length - len(row_weights))
        ids_t = torch.tensor([row], device=param.device)
        attention = torch.tensor([mask], device=param.device) if mask_wanted else None
        z = encoder(ids_t, attention_mask=attention)[0]
        w_t = torch.tensor(row_weights, device=z.device, dtype=z.dtype)[None, :, None]
        before = z.mean()
        z = z * w_t
        ratio = before / z.mean()
        # A1111: weights move attention between words, not the prompt's loudness. Its rescaling is made for CLIP,
        # whose states average well away from 0; where the means are near 0 (or change sign), it is skipped.
        if 0.5 < float(ratio) < 2.0:
            z = z * ratio
        states.append(z)
    return torch.cat(states, dim=1), needed


def prompt_embeds(pipe, prompts: list[str], negative_prompt: str | None):
    """`prompt_embeds` and `negative_prompt_embeds` for a `StableDiffusionPipeline` call: each prompt's weighted
    states, all padded with empty windows to the longest, and the negative prompt's (or the empty prompt's) the same
    length."""
    import torch

    with torch.inference_mode():
        needed = max(_encode(pipe, p)[1] for p in [*prompts, negative_prompt or ""])
        positive = torch.cat([_encode(pipe, p, needed)[0] for p in prompts])
        negative = _encode(pipe, negative_prompt or "", needed)[0].expand(len(prompts), -1, -1)
    return positive, negative.contiguous()


def too_long(pipe, prompt: str) -> bool:
    """True if the prompt's tokens do not fit in one window of the pipeline's tokenizer."""
    ids, _, prefix, suffix = _token_ids(pipe.tokenizer, parse(prompt))
    return len(ids) > pipe.tokenizer.model_max_length - len(prefix) - len(suffix)
