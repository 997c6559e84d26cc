"""Recording the attention probabilities of diffusers denoisers: which text tokens each image position reads.

Two ways, both installed as attention processors for one call and taken out afterwards by the caller:

- `AttentionRecorder`, for UNet cross-attention: it computes the attention explicitly (the classic `AttnProcessor`
  path, softmax(Q K^T / sqrt(d)) V) and hands the probabilities, with their gradients, to a store. The built-in
  model's training losses read them this way too (`imagegen_nb.tiny.grounding`).
- Probes (`probes_for`), for transformers: a probe recomputes Q and K from the layer's own projections, norms and
  rotary embeddings, exactly as the layer's processor does, hands the image-to-text block of softmax(Q K^T / sqrt(d)
  + mask) to a store, and then runs the original processor, so the layer's output is untouched. Cross-attention
  DiTs (PixArt-Sigma, Sana) attend from image queries to text keys only. Joint attention (SD3, FLUX, Z-Image)
  attends over image and text keys together; the probe keeps the image queries' rows over the text keys,
  renormalised to sum to 1 over the text, and reports how much of the row the text got before renormalising.

A store is any object with `add(name, probs, heads)`: `probs` is (samples x heads, image positions, text tokens),
sample-major. Probes hand over the conditional sample only, averaged over heads (heads = 1).
"""

from __future__ import annotations

from typing import Any

__all__ = ["AttentionRecorder", "JOINT", "install_probes", "probes_for"]

# Processor classes whose attention is joint (image and text tokens in one softmax).
JOINT = ("JointAttnProcessor2_0", "FluxAttnProcessor", "ZSingleStreamAttnProcessor")
_CHUNK_BYTES = 1 << 28  # compute at most this many bytes of probabilities at once (heads are chunked)


class AttentionRecorder:
    """A diffusers attention processor: for cross-attention it computes the attention probabilities explicitly
    (the classic `AttnProcessor` path: softmax(QK^T/sqrt(d)) V) and hands them to a store; self-attention, and
    anything it does not know how to record, goes to the original processor unchanged."""

    def __init__(self, name: str, original, store):
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


# ----------------------------------------------------------------------------------------------------------------
# Probes for transformers


def _row_probs(query, key, bias):
    """softmax(Q K^T / sqrt(d) + bias) in float32 for query rows (B, H, n, d) against keys (B, H, L, d); `bias` is
    additive and broadcasts to (B, H, n, L), or None. The scale is scaled_dot_product_attention's default."""
    scores = query.float() @ key.float().transpose(-1, -2) * query.shape[-1] ** -0.5
    if bias is not None:
        scores = scores + bias
    return scores.softmax(-1)


def _as_bias(mask, dtype=None):
    """An attention mask as scaled_dot_product_attention reads it (True = attend, or additive floats) -> additive."""
    import torch

    if mask is None:
        return None
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=torch.float32, device=mask.device).masked_fill(~mask, float("-inf"))
    return mask.float()


class _Probe:
    """Base of the probes: `rows` gives (query rows, keys, bias, text columns) of the conditional sample in
    (1, H, n, d) / (1, H, L, d) layout, or None when the call has no text to record."""

    def __init__(self, name: str, original, store, context: dict, cond_index: int = -1):
        self.name, self.original, self.store, self.context, self.cond_index = name, original, store, context, cond_index

    def _record(self, query, key, bias, text) -> None:
        import torch

        heads, n, length = query.shape[1], query.shape[2], key.shape[2]
        step = max(1, _CHUNK_BYTES // max(1, 4 * n * length))
        total, share = None, 0.0
        with torch.no_grad():
            for h in range(0, heads, step):
                b = None if bias is None else bias[:, h:h + step] if bias.shape[1] > 1 else bias
                p = _row_probs(query[:, h:h + step], key[:, h:h + step], b)[0]  # (h, n, L)
                on_text = p[..., text]  # (h, n, K)
                mass = on_text.sum(-1, keepdim=True)
                share += float(mass.sum())
                block = (on_text / mass.clamp_min(1e-30)).sum(0)  # renormalised over the text, summed over heads
                total = block if total is None else total + block
        self.store.add(self.name, (total / heads)[None], 1)
        note = getattr(self.store, "add_share", None)
        if note is not None:
            note(share / (heads * n))

    def _sample(self, x):
        return x[self.cond_index:][:1]  # keep the batch axis


class _CrossProbe(_Probe):
    """PixArt-Sigma's cross-attention (`AttnProcessor2_0`): norms after the head split, mask prepared per head."""

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, *args,
                 **kwargs):
        if encoder_hidden_states is not None and hidden_states.ndim == 3 and attn.spatial_norm is None \
                and attn.group_norm is None:
            batch, length = encoder_hidden_states.shape[:2]
            query = attn.to_q(hidden_states)
            context = attn.norm_encoder_hidden_states(encoder_hidden_states) if attn.norm_cross \
                else encoder_hidden_states
            key = attn.to_k(context)
            query, key, head_dim = _split_heads(attn, query, key, batch)
            bias = None
            if attention_mask is not None:
                mask = attn.prepare_attention_mask(attention_mask, length, batch)
                bias = _as_bias(mask.view(batch, attn.heads, -1, mask.shape[-1]))
                bias = self._sample(bias)
            self._record(self._sample(query), self._sample(key), bias, slice(None))
        return self.original(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)


class _SanaProbe(_Probe):
    """Sana's cross-attention (`SanaAttnProcessor2_0`): norms over all heads before the split."""

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None):
        if encoder_hidden_states is not None:
            batch, length = encoder_hidden_states.shape[:2]
            query, key = attn.to_q(hidden_states), attn.to_k(encoder_hidden_states)
            if attn.norm_q is not None:
                query = attn.norm_q(query)
            if attn.norm_k is not None:
                key = attn.norm_k(key)
            head_dim = key.shape[-1] // attn.heads
            query = query.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
            key = key.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
            bias = None
            if attention_mask is not None:
                mask = attn.prepare_attention_mask(attention_mask, length, batch)
                bias = self._sample(_as_bias(mask.view(batch, attn.heads, -1, mask.shape[-1])))
            self._record(self._sample(query), self._sample(key), bias, slice(None))
        return self.original(attn, hidden_states, encoder_hidden_states, attention_mask)


class _JointProbe(_Probe):
    """SD3's joint attention (`JointAttnProcessor2_0`): [image, text] tokens, per-head norms."""

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, *args, **kwargs):
        import torch

        if encoder_hidden_states is not None:
            batch, n = hidden_states.shape[:2]
            query, key = attn.to_q(hidden_states), attn.to_k(hidden_states)
            query, key, head_dim = _split_heads(attn, query, key, batch)
            text_key = attn.add_k_proj(encoder_hidden_states).view(batch, -1, attn.heads, head_dim).transpose(1, 2)
            if attn.norm_added_k is not None:
                text_key = attn.norm_added_k(text_key)
            keys = torch.cat([key, text_key], dim=2)
            self._record(self._sample(query), self._sample(keys), None, slice(n, None))
        return self.original(attn, hidden_states, encoder_hidden_states, attention_mask, *args, **kwargs)


class _FluxProbe(_Probe):
    """FLUX's attention (`FluxAttnProcessor`): [text, image] tokens with rotary embeddings; in the double-stream
    blocks the text comes in as `encoder_hidden_states`, in the single-stream blocks it is already the first
    `context["text_length"]` tokens of `hidden_states`."""

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, image_rotary_emb=None):
        import torch
        from diffusers.models.embeddings import apply_rotary_emb
        from diffusers.models.transformers.transformer_flux import _get_qkv_projections

        text_length = encoder_hidden_states.shape[1] if encoder_hidden_states is not None \
            else self.context.get("text_length")
        if text_length:
            query, key, _, text_query, text_key, _ = _get_qkv_projections(attn, hidden_states, encoder_hidden_states)
            query = attn.norm_q(query.unflatten(-1, (-1, attn.head_dim)))
            key = attn.norm_k(key.unflatten(-1, (-1, attn.head_dim)))
            if attn.added_kv_proj_dim is not None and encoder_hidden_states is not None:
                text_query = attn.norm_added_q(text_query.unflatten(-1, (-1, attn.head_dim)))
                text_key = attn.norm_added_k(text_key.unflatten(-1, (-1, attn.head_dim)))
                query, key = torch.cat([text_query, query], dim=1), torch.cat([text_key, key], dim=1)
            if image_rotary_emb is not None:
                query = apply_rotary_emb(query, image_rotary_emb, sequence_dim=1)
                key = apply_rotary_emb(key, image_rotary_emb, sequence_dim=1)
            query, key = query.transpose(1, 2), key.transpose(1, 2)  # (B, H, L, d)
            bias = _as_bias(attention_mask)
            self._record(self._sample(query[:, :, text_length:]), self._sample(key),
                         None if bias is None else self._sample(bias), slice(0, text_length))
        return self.original(attn, hidden_states, encoder_hidden_states, attention_mask, image_rotary_emb)


class _ZImageProbe(_Probe):
    """Z-Image's single-stream attention (`ZSingleStreamAttnProcessor`) in the main layers: per sample
    [image tokens, padding to a multiple of 32, caption tokens, padding], with complex rotary embeddings.
    `context` holds the conditional sample's image token count, its padded length and its caption length."""

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, freqs_cis=None):
        import torch

        layout = self.context.get("zimage")
        if layout is not None:
            image, image_padded, caption = layout
            query = attn.to_q(hidden_states).unflatten(-1, (attn.heads, -1))
            key = attn.to_k(hidden_states).unflatten(-1, (attn.heads, -1))
            if attn.norm_q is not None:
                query = attn.norm_q(query)
            if attn.norm_k is not None:
                key = attn.norm_k(key)
            if freqs_cis is not None:  # the processor's own rotary embedding, in complex numbers
                def rotate(x):
                    z = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
                    return torch.view_as_real(z * freqs_cis.unsqueeze(2)).flatten(3).type_as(x)

                query, key = rotate(query), rotate(key)
            query, key = query.transpose(1, 2), key.transpose(1, 2)
            bias = None
            if attention_mask is not None:
                mask = attention_mask[:, None, None, :] if attention_mask.ndim == 2 else attention_mask
                bias = self._sample(_as_bias(mask))
            self._record(self._sample(query)[:, :, :image], self._sample(key), bias,
                         slice(image_padded, image_padded + caption))
        return self.original(attn, hidden_states, encoder_hidden_states, attention_mask, freqs_cis)


_PROBES = {"AttnProcessor2_0": _CrossProbe, "AttnProcessor": _CrossProbe, "SanaAttnProcessor2_0": _SanaProbe,
           "JointAttnProcessor2_0": _JointProbe, "FluxAttnProcessor": _FluxProbe,
           "ZSingleStreamAttnProcessor": _ZImageProbe}


def probes_for(transformer, store, context: dict) -> dict[str, Any]:
    """{module name: probe} for the attention modules of `transformer` that read the text: cross-attention
    (`attn2`) of PixArt and Sana, every joint attention of SD3 and FLUX, the main layers of Z-Image. Empty when
    the transformer is of none of these kinds."""
    name = type(transformer).__name__
    cond_index = 0 if name.startswith("ZImage") else -1  # Z-Image batches [conditional, unconditional]
    out = {}
    for module_name, module in transformer.named_modules():
        processor = getattr(module, "processor", None)
        kind = type(processor).__name__
        if kind not in _PROBES:
            continue
        if kind in ("AttnProcessor2_0", "AttnProcessor", "SanaAttnProcessor2_0") and \
                not module_name.endswith("attn2"):
            continue  # self-attention
        if kind == "ZSingleStreamAttnProcessor" and not module_name.startswith("layers."):
            continue  # the image-only and caption-only refiners
        out[module_name] = _PROBES[kind](module_name, processor, store, context, cond_index)
    return out


def install_probes(transformer, store):
    """Put probes on `transformer` (and a forward pre-hook that tells them the text length, or Z-Image's token
    layout); return a function that takes them all out again. Raises ValueError when nothing reads the text."""
    context: dict = {}
    probes = probes_for(transformer, store, context)
    if not probes:
        raise ValueError(f"{type(transformer).__name__} has no attention layer this module knows how to record")
    modules = dict(transformer.named_modules())
    originals = {name: modules[name].processor for name in probes}

    def before(module, args, kwargs):
        text = kwargs.get("encoder_hidden_states")
        if text is not None:
            context["text_length"] = text.shape[1]
        if type(module).__name__.startswith("ZImage"):  # forward(x: list, t, cap_feats: list, patch_size=...)
            x = args[0] if args else kwargs["x"]
            caps = args[2] if len(args) > 2 else kwargs["cap_feats"]
            p, pf = kwargs.get("patch_size", 2), kwargs.get("f_patch_size", 1)
            c, f, h, w = x[0].shape
            image = (f // pf) * (h // p) * (w // p)
            context["zimage"] = (image, image + (-image) % 32, int(caps[0].shape[0]))
        return None

    hook = transformer.register_forward_pre_hook(before, with_kwargs=True)
    for name, probe in probes.items():
        modules[name].processor = probe

    def remove() -> None:
        hook.remove()
        for name, processor in originals.items():
            modules[name].processor = processor

    return remove


def _split_heads(attn, query, key, batch: int):
    """Queries and keys as (batch, heads, tokens, head_dim), through the layer's own q/k norms, as its processor
    does before attending; returns them with the head width."""
    head_dim = key.shape[-1] // attn.heads
    query = query.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
    key = key.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
    if attn.norm_q is not None:
        query = attn.norm_q(query)
    if attn.norm_k is not None:
        key = attn.norm_k(key)
    return query, key, head_dim
