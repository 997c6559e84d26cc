"""The lessons on tiny random models of every family: each lesson a family accepts runs, and its numbers are the
pipeline's own (token vectors equal `encode_prompt`'s, attention probes equal the softmax the layer computes, a
seed's noise remakes its picture); a lesson that cannot apply says why."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import imagegen_nb as ig
from imagegen_nb import attention_maps, cache, testing
from imagegen_nb.teach import attention, forward, geneval, guidance, latent, seeds, terminal_snr, tokens

PROMPT = "a red house to the left"
ENCODING = {"sana": {"complex_human_instruction": None}}  # as testing.CALL_KWARGS: the tiny Gemma reads 1024 tokens
TRANSFORMERS = ("sd3", "flux-dev", "zimage-turbo", "pixart-sigma", "sana")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("teach-families")
    out = {fam: str(testing.make_tiny_model(fam, root / fam)) for fam in testing.FAMILIES}
    yield out
    for model in out.values():
        cache.evict(model)


def _call(fam):
    h, w = testing.SAMPLE_SIZE[fam]
    return dict(width=w, height=h, num_inference_steps=2, guidance_scale=2.0, **testing.CALL_KWARGS[fam])


def _pipe(model):
    return cache.shared.pipeline(model, "generate")[1]


@pytest.mark.parametrize("fam", testing.FAMILIES)
def test_token_vectors_are_what_the_pipeline_encodes(models, fam):
    model, kw = models[fam], ENCODING.get(fam, {})
    streams = tokens.streams(PROMPT, model, **kw)
    pipe = _pipe(model)
    with torch.no_grad():
        if fam == "sd15":
            embeds = pipe.encode_prompt(PROMPT, "cpu", 1, False)[0][0]
            pairs = [(embeds[: len(streams[0].ids)], streams[0].embeddings)]
        elif fam == "sdxl":
            embeds, _, pooled, _ = pipe.encode_prompt(prompt=PROMPT, device="cpu", num_images_per_prompt=1,
                                                      do_classifier_free_guidance=False)
            both = np.concatenate([streams[0].embeddings, streams[1].embeddings], -1)
            pairs = [(embeds[0, : len(streams[0].ids)], both), (pooled[0], streams[1].pooled)]
        elif fam == "sd3":
            embeds, _, pooled, _ = pipe.encode_prompt(PROMPT, PROMPT, PROMPT, device="cpu",
                                                      do_classifier_free_guidance=False)
            clip = np.concatenate([streams[0].embeddings, streams[1].embeddings], -1)
            clip = np.pad(clip, ((0, 0), (0, embeds.shape[-1] - clip.shape[1])))  # zero-padded to T5's width
            n, offset = len(streams[2].ids), streams[0].padded_length
            assert offset + streams[2].padded_length == embeds.shape[1]
            pairs = [(embeds[0, : len(streams[0].ids)], clip), (embeds[0, offset: offset + n], streams[2].embeddings),
                     (pooled[0], np.concatenate([streams[0].pooled, streams[1].pooled]))]
        elif fam == "flux-dev":
            embeds, pooled, _ = pipe.encode_prompt(PROMPT, PROMPT, device="cpu")
            assert streams[0].embeddings is None and streams[1].padded_length == embeds.shape[1]
            pairs = [(embeds[0, : len(streams[1].ids)], streams[1].embeddings), (pooled[0], streams[0].pooled)]
        elif fam == "zimage-turbo":
            embeds, _ = pipe.encode_prompt(PROMPT, device="cpu", do_classifier_free_guidance=False)
            assert streams[0].text != PROMPT and streams[0].padded_length == len(embeds[0])  # template, no padding
            pairs = [(embeds[0], streams[0].embeddings)]
        else:  # PixArt, Sana: padding masked out
            embeds, mask, _, _ = pipe.encode_prompt(PROMPT, do_classifier_free_guidance=False, device="cpu", **kw)
            assert streams[0].padded_length == embeds.shape[1] and streams[0].padding_masked
            pairs = [(embeds[0][mask[0].bool()], streams[0].embeddings)]
    for expected, got in pairs:
        assert got.shape == tuple(expected.shape) and np.allclose(got, expected.float().numpy(), atol=1e-5)
    assert [w for w, _ in tokens.words(tokens.encode(PROMPT, model, **kw))] == PROMPT.split()
    fig = tokens.show(PROMPT, model, **kw)
    assert len(fig.axes) == 2 * len(streams)
    assert len(tokens.similarity("a red house", "a blue car", model).axes) == 1


def test_a_word_spelled_with_several_tokens_keeps_them_together(models):
    e = tokens.encode(PROMPT, models["sana"], complex_human_instruction=None)  # character-level pieces
    spelled = dict(tokens.words(e))
    assert "".join(e.pieces[i] for i in spelled["house"]) == "house"
    with pytest.raises(TypeError, match="encoding arguments"):
        tokens.streams(PROMPT, models["sana"], guidance_scale=2.0)


@pytest.mark.parametrize("fam", testing.FAMILIES)
def test_forward_latent_and_terminal_snr_lessons_run(models, fam, tmp_path):
    model = models[fam]
    picture = ig.generate(PROMPT, model=model, seed=0, progress=False, **_call(fam))
    n = forward.noised(picture, timesteps=(0, 500, 999), model=model)
    assert n.kind == ("vp" if fam in ("sd15", "sdxl", "pixart-sigma") else "flow")
    assert len(forward.figure(picture, timesteps=(0, 999), model=model).axes) == 6
    r = latent.roundtrip(picture, model=model)
    assert r.latent.ndim == 4 and r.decoded.size == picture.size
    assert len(latent.explain(picture, model=model).axes) == min(4, r.latent.shape[1]) + 3
    leaks = terminal_snr.leak(picture, draws=20, model=model)
    if n.kind == "flow":  # one schedule, ending at (or within a thousandth of) pure noise
        (item,) = leaks.values()
        assert item.schedule.startswith("flow matching") and item.alpha_bar < 1e-6
    else:
        assert len(leaks) == 2 and list(leaks)[1] == "zero terminal SNR"
        assert (list(leaks)[0] == "SD 1.5 schedule") == (fam != "pixart-sigma")  # PixArt's betas are DDPM's
    assert len(terminal_snr.figure(picture, draws=10, model=model).axes) == 3 * len(leaks)


def test_follows_runs_on_unets_and_says_why_not_elsewhere(models):
    for fam in ("sd15", "sdxl"):
        shares = terminal_snr.follows(2, model=models[fam])
        assert sorted(shares) == ["mirror residue", "picture residue", "pure noise"]
    with pytest.raises(ValueError, match="transformer"):
        terminal_snr.follows(2, model=models["pixart-sigma"])
    with pytest.raises(ValueError, match="flow matching"):
        terminal_snr.follows(2, model=models["sana"])


def _processors(pipe):
    denoiser = getattr(pipe, "unet", None) or pipe.transformer
    return {name: module.processor for name, module in denoiser.named_modules() if hasattr(module, "processor")}


@pytest.mark.parametrize("fam", testing.FAMILIES)
def test_attention_word_maps(models, fam, pixels):
    model = models[fam]
    pipe = _pipe(model)
    before = _processors(pipe)
    m = attention.record(PROMPT, model=model, seed=0, **_call(fam))
    after = _processors(pipe)
    assert before.keys() == after.keys() and all(before[k] is after[k] for k in before)
    h, w = testing.SAMPLE_SIZE[fam]
    grid = (h // pipe.vae_scale_factor, w // pipe.vae_scale_factor)
    assert [word for word, _ in m.words] == PROMPT.split()
    assert m.word_maps.shape == (len(PROMPT.split()), *grid) and m.maps.shape[1:] == grid
    assert np.isfinite(m.maps).all() and (m.maps >= 0).all() and (m.word_maps >= 0).all()
    # each image position's weights over the text keys sum to 1 (joint attention: renormalised over the text)
    assert np.allclose(m.maps.sum(0), 1, atol=1e-4)
    assert (m.word_maps.sum(0) <= 1 + 1e-4).all()
    assert m.attention == ("joint" if fam in ("sd3", "flux-dev", "zimage-turbo") else "cross")
    assert (0 < m.text_share < 1) if m.attention == "joint" else m.text_share == 1.0
    if fam in ("pixart-sigma", "sana"):  # padding is masked out: it gets no attention
        padding = [k for k in range(m.maps.shape[0]) if k not in m.positions]
        assert np.abs(m.maps[padding]).max() == 0
    plain = ig.generate(PROMPT, model=model, seed=0, progress=False, **_call(fam))
    if fam in TRANSFORMERS:  # probes leave the layers' outputs to the original processors
        assert (pixels(plain) == pixels(m.image)).all()
    else:
        assert np.abs(pixels(plain) - pixels(m.image)).mean() <= 1.0
    assert len(attention.figure(PROMPT, model=model, seed=0, **_call(fam)).axes) == 1 + len(m.words)


@pytest.mark.parametrize("fam", TRANSFORMERS)
def test_attention_probes_compute_the_layers_own_softmax(models, fam, monkeypatch):
    """Each probe's probabilities equal softmax(Q K^T / sqrt(d) + mask) from the Q, K and mask the layer hands
    to scaled_dot_product_attention right after it: projections, norms, rotary embeddings and order all match."""
    events = []
    real_probs, real_sdpa = attention_maps._row_probs, torch.nn.functional.scaled_dot_product_attention

    def probe_probs(query, key, bias):
        out = real_probs(query, key, bias)
        events.append(("probe", out))
        return out

    def sdpa(query, key, value, attn_mask=None, *args, **kwargs):
        events.append(("sdpa", (query, key, attn_mask)))
        return real_sdpa(query, key, value, attn_mask, *args, **kwargs)

    monkeypatch.setattr(attention_maps, "_row_probs", probe_probs)
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", sdpa)
    attention.record(PROMPT, model=models[fam], seed=0, **_call(fam))
    checked = 0
    for k, (kind, probs) in enumerate(events):
        if kind != "probe":
            continue
        nxt, (query, key, mask) = events[k + 1]
        assert nxt == "sdpa"
        scores = query.float() @ key.float().transpose(-1, -2) * query.shape[-1] ** -0.5
        if mask is not None:
            scores = scores + (attention_maps._as_bias(mask))
        full = scores.softmax(-1)
        n = probs.shape[2]
        candidates = [full[b: b + 1, :, s: s + n] for b in range(full.shape[0]) for s in (0, full.shape[2] - n)]
        assert any(c.shape == probs.shape and torch.allclose(c, probs, atol=1e-5) for c in candidates)
        checked += 1
    assert checked >= 2  # every layer at every step


@pytest.mark.parametrize("fam", testing.FAMILIES)
def test_seed_noise_remakes_the_picture(models, fam, pixels):
    model, kw = models[fam], _call(fam)
    a = ig.generate(PROMPT, model=model, seed=5, progress=False, **kw)
    b = ig.generate(PROMPT, model=model, seed=5, latents=seeds.noise(5, model=model, width=kw["width"],
                                                                    height=kw["height"]), progress=False, **kw)
    assert (pixels(a) == pixels(b)).all()
    assert len(seeds.interpolation(PROMPT, 0, 1, n=3, model=model, **kw).axes) == 3


def test_guidance_lesson_says_why_a_trace_has_no_split(models):
    flux = ig.trace(PROMPT, model=models["flux-dev"], seed=0, progress=False, **_call("flux-dev"))
    with pytest.raises(ValueError, match="guidance-distilled"):
        guidance.at_step(flux)
    pixart = ig.trace(PROMPT, model=models["pixart-sigma"], seed=0, progress=False, **_call("pixart-sigma"))
    if pixart.noise_cond is None:  # traces do not split PixArt's 8-channel output (noise and variance)
        with pytest.raises(ValueError, match="variance"):
            guidance.at_step(pixart)


def test_geneval_figure_says_it_is_not_comparable_and_marks_chance():
    fig = geneval.figure(scores={c: 0.9 for c in geneval.CATEGORIES})
    text = " ".join(t.get_text() for t in fig.texts)
    assert "Not comparable" in text and "far easier" in text and "not comparable" in fig._suptitle.get_text()
    ticks = fig.axes[0].collections[0]  # the chance markers
    assert len(ticks.get_segments()) == 1 + len(geneval.CATEGORIES)
    assert any("chance" in t.get_text() for t in fig.axes[0].texts)
    # CHANCE is what chance() measures; the first ones have exact values
    measured = geneval.chance(300, seed=1)
    assert all(abs(measured[c] - geneval.CHANCE[c]) < 0.06 for c in geneval.CATEGORIES)
    assert geneval.CHANCE["single object"] == pytest.approx(1 / 3, abs=0.01)
    assert geneval.CHANCE["counting"] == pytest.approx(1 / 9, abs=0.01)
    assert geneval.CHANCE["colors"] == pytest.approx(1 / 21, abs=0.01)
