"""The teaching figures on the built-in model: each builds with few steps, has the panels it promises, and the numbers
behind it are checked where they can be (the schedule is the scheduler's, x0 inverts the noising, attention rows
sum to one, a seed's noise remakes its picture). Nothing here depends on the quality of the shipped weights."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

import imagegen_nb as ig
from imagegen_nb.teach import (
    attention,
    control,
    forward,
    geneval,
    guidance,
    inpaint,
    latent,
    reverse,
    samplers,
    schedules,
    seeds,
    terminal_snr,
    tokens,
)

FEW = dict(num_inference_steps=2)


@pytest.fixture(scope="module")
def pipe():
    return ig.cache.shared.pipeline(None, "generate")[1]


@pytest.fixture(scope="module")
def trace():
    return ig.trace("a red circle to the left of a blue square", seed=0, num_inference_steps=4, guidance_scale=4.0,
                    progress=False)


def test_teach_imports_nothing_heavy():
    code = "import sys, imagegen_nb.teach; print(sorted(m for m in ('torch', 'matplotlib') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_tokens_match_the_pipeline_encoding(pipe):
    e = tokens.encode("a red circle")
    assert e.pieces[:3] == ["a", "red", "circle"] and len(e.ids) == len(e.pieces)
    assert e.padded_length == pipe.tokenizer.model_max_length
    embeds = pipe.encode_prompt("a red circle", "cpu", 1, False)[0][0, : len(e.ids)].detach().float().numpy()
    assert np.allclose(e.embeddings, embeds, atol=1e-5)
    fig = tokens.show("a red circle to the left of a blue square")
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    matrix, pooled, a, b = tokens.similarity_matrix("a red circle", "a red circle")
    assert np.allclose(np.diag(matrix), 1, atol=1e-5) and pooled == pytest.approx(1, abs=1e-5)
    assert len(tokens.similarity("a red circle", "a blue square").axes) == 1


def test_forward_noising_is_inverted_by_predict_x0(pipe):
    from diffusers import DDPMScheduler

    from imagegen_nb.steps import predict_x0

    n = forward.noised(timesteps=(0, 300, 999), seed=3)
    ddpm = DDPMScheduler.from_config(pipe.scheduler.config)
    for t, x_t, ab in zip(n.timesteps, n.latents, n.noise_levels):
        assert ab == pytest.approx(float(pipe.scheduler.alphas_cumprod[t]))
        # DDPM's own forward process; at t = 999 a zero-SNR DDPM has alpha_bar exactly 0 where DPM-Solver keeps
        # 2**-24 (to stay finite), a difference of sqrt(2**-24) x0 ~ 1e-4
        assert torch.allclose(x_t, ddpm.add_noise(n.latent, n.noise, torch.tensor([t])), atol=1e-5 if t < 999 else 1e-3)
        # x0 from the exact model output (the noise, or v for a v-prediction model) and x_t is the clean latent
        exact = n.noise if pipe.scheduler.config.prediction_type == "epsilon" else \
            ab ** 0.5 * n.noise - (1 - ab) ** 0.5 * n.latent
        assert torch.allclose(predict_x0(pipe.scheduler, exact, x_t, t), n.latent, atol=1e-3 if t < 999 else 2e-2)
    fig = forward.figure(timesteps=(0, 500, 999))
    assert len(fig.axes) == 9
    with pytest.raises(ValueError, match="timesteps must be integers"):
        forward.noised(timesteps=(1000,))


def test_schedules_are_the_schedulers_own(pipe):
    fig = schedules.figure(("ddim", "euler", "dpm++"), num_inference_steps=10, step=3, strength=0.6)
    assert len(fig.axes) == 3
    assert np.array_equal(fig.axes[0].lines[0].get_ydata(), pipe.scheduler.alphas_cumprod.double().numpy())
    ddim = schedules.visited("ddim", 5)
    # (on a zero-SNR schedule DDIM's last alpha_bar is 0, kept at 1e-12, and DPM-Solver's 2**-24: atol covers it)
    assert np.allclose(ddim.alpha_bar, pipe.scheduler.alphas_cumprod.double().numpy()[ddim.timesteps.astype(int)],
                       atol=1e-7)
    euler = schedules.visited("euler", 5)
    assert np.allclose(euler.sigma, np.sqrt((1 - euler.alpha_bar) / euler.alpha_bar))
    # Euler's sigmas are the VP schedule's noise-to-signal ratios at its timesteps (interpolated)
    ab_at = np.interp(euler.timesteps, np.arange(1000), pipe.scheduler.alphas_cumprod.double().numpy())
    assert np.allclose(euler.alpha_bar, ab_at, rtol=0.05, atol=1e-3)
    with pytest.raises(ValueError, match="strength"):
        schedules.figure(("ddim",), 4, strength=1.5)
    with pytest.raises(ValueError, match="unknown scheduler"):
        schedules.visited("nope")


def test_reverse_grid_gif_and_html(trace, tmp_path):
    assert len(reverse.grid(trace, n=3).axes) == 9
    assert len(reverse.grid(trace, n=10, fast=True).axes) == 3 * len(trace)  # at most one column per step
    path = reverse.gif(trace, tmp_path / "steps.gif")
    from PIL import Image

    with Image.open(path) as gif:
        assert gif.n_frames == len(trace)
    assert "<script" in reverse.html(trace)._repr_html_()
    with pytest.raises(ValueError, match=".gif"):
        reverse.gif(trace, tmp_path / "steps.mp4")


def test_guidance_panels(trace, implied_noise):
    fig = guidance.at_step(trace, 1)
    assert len(fig.axes) == 4
    # the heatmap is mean |eps_cond - eps_uncond| over channels
    heat = fig.axes[3].images[0].get_array()
    cond = implied_noise(trace, trace.model_output_cond)[1]
    uncond = implied_noise(trace, trace.model_output_uncond)[1]
    assert np.allclose(heat, (cond - uncond).abs().mean(0).numpy(), atol=1e-3)
    plain = ig.trace("a red circle", seed=0, guidance_scale=1.0, progress=False, **FEW)
    with pytest.raises(ValueError, match="guidance_scale > 1"):
        guidance.at_step(plain)
    fig = guidance.sweep("a blue square", scales=(1, 3), **FEW)
    assert [ax.get_title() for ax in fig.axes] == ["w = 1", "w = 3"]


def test_samplers_grid_is_timed():
    fig = samplers.compare("a red circle", schedulers=("ddim", "euler"), steps=(1, 2))
    assert len(fig.axes) == 4
    assert all(ax.get_title().endswith(" s") for ax in fig.axes)
    with pytest.raises(ValueError, match="unknown scheduler"):
        samplers.run("a red circle", ("warp",), (2,))


def test_latent_roundtrip():
    r = latent.roundtrip()
    assert tuple(r.latent.shape) == (1, 4, 16, 16) and r.compression == 12.0 and r.decoded.size == (64, 64)
    fig = latent.explain()
    assert len(fig.axes) == 7 and fig.axes[1].get_title() == "channel 0"


def test_attention_maps_are_distributions_and_processors_come_back(pipe, pixels):
    before = dict(pipe.unet.attn_processors)
    maps = attention.record("a red circle to the left of a blue square", seed=0, **FEW)
    after = dict(pipe.unet.attn_processors)
    assert before.keys() == after.keys() and all(before[k] is after[k] for k in before)
    # each latent pixel's attention over the tokens (padding included) sums to 1, after averaging too
    assert np.allclose(maps.maps.sum(0), 1, atol=1e-4)
    assert [w for w, _ in maps.words] == "a red circle to the left of a blue square".split()
    assert maps.calls > 0 and all(name.endswith("attn2.processor") for name in maps.layers)
    assert maps.attention == "cross" and maps.text_share == 1.0
    assert maps.word_map("circle").shape == (16, 16) and maps.word_maps.shape == (10, 16, 16)
    # the built-in tokenizer spells each word with one token: a word's map is its token's column
    assert np.array_equal(maps.word_map("circle"), maps.maps[2])
    plain = ig.generate("a red circle to the left of a blue square", seed=0, progress=False, **FEW)
    assert np.abs(pixels(plain) - pixels(maps.image)).mean() <= 1.0  # recording does not change the picture
    fig = attention.figure("a blue square", seed=0, **FEW)
    assert [ax.get_title() for ax in fig.axes] == ["picture", "a", "blue", "square"]


def test_attention_processors_restored_after_an_error(pipe):
    before = dict(pipe.unet.attn_processors)
    with pytest.raises(ValueError):
        attention.record("a red circle", num_inference_steps=0)
    assert all(before[k] is v for k, v in pipe.unet.attn_processors.items())


def test_seed_noise_remakes_the_picture_and_slerp_keeps_the_norm(pixels):
    a = ig.generate("a red circle", seed=5, progress=False, **FEW)
    b = ig.generate("a red circle", seed=5, latents=seeds.noise(5), progress=False, **FEW)
    assert (pixels(a) == pixels(b)).all()
    x, y = seeds.noise(0), seeds.noise(1)
    assert torch.allclose(seeds.slerp(x, y, 0.0), x, atol=1e-5) and torch.allclose(seeds.slerp(x, y, 1.0), y, atol=1e-5)
    mid_norm = float(seeds.slerp(x, y, 0.5).norm())
    assert abs(mid_norm - float(x.norm())) < 0.1 * float(x.norm())
    assert float((0.5 * x + 0.5 * y).norm()) < 0.8 * float(x.norm())  # a straight line loses ~1/sqrt(2)
    fig = seeds.interpolation("a red circle", 5, 6, n=3, **FEW)
    assert len(fig.axes) == 3
    assert (pixels(_first_image(fig)) == pixels(a)).all()
    assert len(seeds.grid("a red circle", seeds=range(3), **FEW).axes) == 3


def _first_image(fig):
    from PIL import Image

    return Image.fromarray(np.asarray(fig.axes[0].images[0].get_array()))


def test_inpaint_mask_in_latent_space():
    m = np.zeros((64, 64), bool)
    m[:, 32:] = True
    lm = inpaint.latent_mask(m, (64, 64))
    assert tuple(lm.shape) == (1, 1, 16, 16)
    assert (lm[0, 0, :, :8] == 0).all() and (lm[0, 0, :, 8:] == 1).all()
    fig = inpaint.explain(None, m, "a blue square", **FEW)
    assert len(fig.axes) == 4


def test_control_sweep():
    fig = control.sweep(None, "a blue square", scales=(0.0, 1.0), **FEW)
    assert [ax.get_title() for ax in fig.axes] == ["picture", "canny map", "scale 0", "scale 1"]


def test_geneval_prompts_scores_and_published_bars():
    from imagegen_nb.tiny import checker

    ps = geneval.prompts(2, seed=1)
    assert set(ps) == set(geneval.CATEGORIES)
    assert all(checker.parse(p).count for p in ps["counting"])
    assert all(checker.parse(p).relation for p in ps["position"])
    s = geneval.score(1, **FEW)
    assert set(s) == {*geneval.CATEGORIES, "overall"} and all(0 <= v <= 1 for v in s.values())
    assert s["overall"] == pytest.approx(np.mean([s[c] for c in geneval.CATEGORIES]))
    fig = geneval.figure(scores=s)
    ax = fig.axes[0]
    assert len(fig.axes) == 1 and len(ax.containers) == 3
    columns = ["overall", *geneval.CATEGORIES]
    for container, name in zip(ax.containers[1:], ("SD 1.5", "SDXL")):
        assert [bar.get_height() for bar in container] == [geneval.PUBLISHED[name][c] for c in columns]
    assert geneval.PUBLISHED["SD 1.5"]["overall"] == 0.43 and geneval.PUBLISHED["SDXL"]["position"] == 0.15


def test_terminal_snr_leak_tells_the_layout_only_under_sd15s_schedule(pipe):
    leaks = terminal_snr.leak(draws=400)
    sd15, zero = leaks["SD 1.5 schedule"], leaks["zero terminal SNR"]
    assert sd15.alpha_bar == pytest.approx(0.0047, abs=1e-4) and zero.alpha_bar == 0.0
    assert sd15.read_correctly > 0.85  # a faint copy of the picture in x_T gives its layout away
    assert 0.4 < zero.read_correctly < 0.6  # pure noise: a coin toss
    assert zero.x_T.shape == terminal_snr.encode(pipe, terminal_snr._default_picture()).shape
    # the same noise under both: SD 1.5's scores are shifted by the picture's share, by over a standard deviation
    assert np.mean(sd15.scores) > 1.2 * np.std(zero.scores) and abs(np.mean(zero.scores)) < 0.2 * np.std(zero.scores)
    fig = terminal_snr.figure(draws=40)
    assert len(fig.axes) == 6 and "of 40 draws" in fig.axes[2].get_title()
    with pytest.raises(ValueError, match="draws"):
        terminal_snr.leak(draws=0)


def test_the_built_in_model_decides_the_layout_from_the_prompt_not_from_x_T():
    shares = terminal_snr.follows(32)
    # zero terminal SNR: x_T holds no residue to follow, so all three are the same draw, and the prompt decides
    assert shares["picture residue"] == shares["mirror residue"] == shares["pure noise"]
    assert shares["pure noise"] >= 0.9
    with pytest.raises(ValueError, match="positive integer"):
        terminal_snr.follows(0)
