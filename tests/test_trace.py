"""Traces and previews on the built-in model: the recorded numbers obey the forward process they came from, the
cond/uncond split is the one guidance mixed, decoding the last x0 gives the final picture, and the cheap preview
is the linear map it claims to be. Nothing here depends on the quality of the shipped weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import imagegen_nb as ig
from imagegen_nb import previews, steps

PROMPT = "a red circle to the left of a blue square"


@pytest.fixture(scope="module")
def vp_trace():
    return ig.trace(PROMPT, seed=0, num_inference_steps=6, guidance_scale=4.0, progress=False)


def test_trace_shapes_and_types(vp_trace):
    tr = vp_trace
    assert len(tr) == 6 and tr.family == "tiny" and tr.schedule_kind == "vp"
    for name in ("latents", "noise", "x0", "noise_cond", "noise_uncond", "model_output", "model_output_cond",
                 "model_output_uncond"):
        t = getattr(tr, name)
        assert t.dtype == torch.float16 and t.device.type == "cpu" and tuple(t.shape) == (6, 4, 16, 16), name
    assert tr.sigmas is None and tr.alpha_bar.shape == (6,) and tr.timesteps.shape == (6,)
    assert ig.recipe(tr.image)["prompt"] == PROMPT
    assert "6 steps" in repr(tr) and "v_prediction" in repr(tr)


def test_same_picture_as_generate(vp_trace, pixels):
    plain = ig.generate(PROMPT, seed=0, num_inference_steps=6, guidance_scale=4.0, progress=False)
    assert (pixels(plain) == pixels(vp_trace.image)).all()


def _relative(a, b):
    return float(((a - b).abs() / (b.abs() + 1)).max())


def test_vp_forward_process_holds_at_every_step(vp_trace, implied_noise):
    # x_t = sqrt(alpha_bar) x0 + sqrt(1 - alpha_bar) eps with the trace's own eps and x0, to float16 precision
    tr = vp_trace
    _, pipe = ig.cache.shared.pipeline(None, "generate")
    assert tr.prediction_type == pipe.scheduler.config.prediction_type == "v_prediction"
    # trace.noise is the noise eps, not the model's v: the textbook eps = sqrt(ab) v + sqrt(1 - ab) x_t
    eps = implied_noise(tr)
    assert _relative(tr.noise.double(), eps) < 2e-3
    assert (tr.noise.double() - tr.model_output.double()).abs().max() > 0.5  # v is something else
    shown = torch.stack([tr.tensor(i, "noise") for i in range(len(tr))]).double()  # what decode(i, "noise") shows
    assert torch.equal(shown, tr.noise.double())
    ab = tr.alpha_bar.view(-1, 1, 1, 1)
    rebuilt = ab.sqrt() * tr.x0.double() + (1 - ab).sqrt() * tr.noise.double()
    assert _relative(rebuilt, tr.latents.double()) < 2e-3
    # and v = sqrt(ab) eps - sqrt(1 - ab) x0, what the model was trained to output
    v = ab.sqrt() * tr.noise.double() - (1 - ab).sqrt() * tr.x0.double()
    assert _relative(v, tr.model_output.double()) < 2e-3
    # the first step of a zero-terminal-SNR schedule is pure noise: x_t is eps itself
    assert float(tr.alpha_bar[0]) <= 2.0**-24 and _relative(tr.noise[0].double(), tr.latents[0].double()) < 2e-3
    # the levels are the scheduler's own alphas_cumprod at the visited timesteps
    expected = pipe.scheduler.alphas_cumprod.double()[tr.timesteps.round().long()]
    assert torch.equal(tr.alpha_bar, expected)
    assert (tr.alpha_bar[1:] > tr.alpha_bar[:-1]).all()  # noise falls step by step


def test_guided_noise_is_the_classifier_free_mix(vp_trace, implied_noise):
    tr, w = vp_trace, 4.0
    cond, uncond = tr.model_output_cond.double(), tr.model_output_uncond.double()
    assert torch.allclose(tr.model_output.double(), uncond + w * (cond - uncond), rtol=5e-3, atol=5e-2)
    # eps is affine in the model's output at a given x_t, so the halves' noise mixes the same way
    assert _relative(tr.noise_cond.double(), implied_noise(tr, tr.model_output_cond)) < 2e-3
    assert _relative(tr.noise_uncond.double(), implied_noise(tr, tr.model_output_uncond)) < 2e-3
    mix = tr.noise_uncond.double() + w * (tr.noise_cond.double() - tr.noise_uncond.double())
    assert torch.allclose(tr.noise.double(), mix, rtol=5e-3, atol=5e-2)
    # and the x0 a noise implies is the recorded one for the guided noise
    i = 2
    assert torch.allclose(tr.x0_from(i, tr.noise[i]), tr.x0[i].float(), rtol=2e-3, atol=5e-2)


def test_last_x0_decodes_to_the_final_picture(vp_trace):
    decoded = np.asarray(vp_trace.decode(-1, "x0"), np.float32)
    final = np.asarray(vp_trace.image, np.float32)
    assert decoded.shape == final.shape == (64, 64, 3)
    assert np.abs(decoded - final).mean() < 2.0


def test_decode_kinds_and_fast_preview(vp_trace):
    tr = vp_trace
    assert tr.decode(0, "latent").size == (64, 64)
    assert tr.decode(1, "noise", fast=True).size == (16, 16)
    assert tr.decode(1, "noise_cond").size == (64, 64)
    with pytest.raises(ValueError, match="what must be one of"):
        tr.decode(0, "pixels")
    with pytest.raises(IndexError, match="out of range"):
        tr.decode(6)


def test_no_guidance_no_split():
    tr = ig.trace("a blue square", seed=1, num_inference_steps=2, guidance_scale=1.0, progress=False)
    assert tr.noise_cond is None and tr.noise_uncond is None
    with pytest.raises(ValueError, match="without classifier-free guidance"):
        tr.decode(0, "noise_cond")


def test_sigma_scheduler_records_sigmas():
    # Euler keeps x = x0 + sigma * eps (k-diffusion form): each step moves x along (x - x0) / sigma
    tr = ig.trace("a blue square", seed=1, num_inference_steps=4, scheduler="euler", progress=False)
    assert tr.schedule_kind == "sigma" and tr.alpha_bar is None
    x, x0, s = tr.latents.double(), tr.x0.double(), tr.sigmas.double()
    assert s[0] > s[1] > s[2] > s[3] > 0
    # (from step 1 on: the first sigma of a zero-SNR schedule is 4096, where float16 records of x are coarse)
    for k in (1, 2):
        assert torch.allclose(x[k + 1], x[k] + (s[k + 1] - s[k]) * (x[k] - x0[k]) / s[k], atol=2e-2), k
    # x = x0 + sigma * eps at every step, and eps is the noise, not the model's v
    # (to float16 precision of each term: sigma * eps is up to 20 here, where a float16 step is 0.016)
    noise_term = s.view(-1, 1, 1, 1) * tr.noise.double()
    assert float(((x0 + noise_term - x).abs() / (x0.abs() + noise_term.abs() + 1)).max()) < 2e-3
    assert tr.noise.double().std() > 0.5 and tr.prediction_type == "v_prediction"
    assert tr.decode(0, "latent").size == (64, 64)


def test_other_tasks_and_a_users_run(pixels):
    base = ig.generate("a red circle", seed=0, num_inference_steps=2, progress=False)
    tr = ig.trace("a blue circle", task="edit", image=base, strength=0.5, num_inference_steps=6, seed=0,
                  progress=False)
    assert len(tr) == 3 and float(tr.timesteps[0]) < 999  # the edit starts halfway down the schedule
    mask = np.zeros((64, 64), bool)
    mask[:, 32:] = True
    tr = ig.trace("a blue circle", task="inpaint", image=base, mask=mask, num_inference_steps=2, seed=0,
                  progress=False)
    assert len(tr) == 2 and (pixels(tr.image)[:, :28] == pixels(base)[:, :28]).all()
    seen = []
    run = ig.Run(on_step=lambda r, s: seen.append(s.index))
    tr = ig.trace("a red circle", task="control", control_image=base, num_inference_steps=2, seed=0, run=run,
                  progress=False)
    assert seen == [0, 1] and len(tr) == 2 and run.keep_raw_output and tr.noise_cond is not None


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="image="):
        ig.trace("a red circle", task="edit")
    with pytest.raises(ValueError, match="mask="):
        ig.trace("a red circle", task="inpaint", image=np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(ValueError, match="unknown task 'upscale'; choose one of generate"):
        ig.trace("a red circle", task="upscale")
    with pytest.raises(ValueError, match="one picture"):
        ig.trace("a red circle", num_images=2)


def test_public_trace_stays_the_function_after_its_module_is_imported():
    import importlib
    import inspect

    module = importlib.import_module("imagegen_nb.traces")
    assert inspect.isfunction(ig.trace) and ig.trace is module.trace and ig.Trace is module.Trace


# -- previews --------------------------------------------------------------------------------------------------


def test_preview_of_a_step_is_the_shipped_linear_map():
    frames = []

    def listener(run, step):
        frames.append((step.x0.clone(), previews.preview_image(step, step.pipe)))

    ig.generate("a red circle", seed=0, num_inference_steps=2, progress=False, run=ig.Run(on_step=listener))
    _, pipe = ig.cache.shared.pipeline(None, "generate")
    assert previews.family_of_pipe(pipe) == "tiny"
    w, b = previews.linear_map("tiny", pipe)
    assert previews.linear_map("tiny", pipe)[0] is w  # read once per VAE
    shipped = json.loads((ig.tiny.model_path() / "vae" / previews.MAP_FILE).read_text())
    assert torch.equal(w, torch.tensor(shipped["weights"])) and torch.equal(b, torch.tensor(shipped["bias"]))
    x0, picture = frames[-1]
    assert picture.size == (16, 16)
    rgb = torch.einsum("chw,cd->hwd", x0[0], w) + b
    expected = ((rgb + 1) * 127.5).clamp(0, 255).to(torch.uint8).numpy()
    assert np.abs(np.asarray(picture, np.int16) - expected.astype(np.int16)).max() <= 1


def test_fitted_map_is_the_least_squares_solution():
    # pixels ~ [latent, 1] @ [W; b] over the patch means of the fitting pictures: the normal equations' solution,
    # and better than the best constant (R^2 > 0) on the pictures it was fitted on, for any VAE
    from imagegen_nb.tiny import latent_rgb, world

    _, pipe = ig.cache.shared.pipeline(None, "generate")
    w, b = latent_rgb.fit(pipe.vae, n=8)
    pictures, _, _ = world.batch(8, seed=0, training=True, flip=False)
    px = torch.from_numpy(pictures.astype(np.float32) / 127.5 - 1).permute(0, 3, 1, 2)
    with torch.inference_mode():
        z = pipe.vae.encode(px).latent_dist.mean * pipe.vae.config.scaling_factor
    target = torch.nn.functional.adaptive_avg_pool2d(px, z.shape[-2:]).permute(0, 2, 3, 1).reshape(-1, 3).double()
    x1 = torch.cat([z.permute(0, 2, 3, 1).reshape(-1, 4), torch.ones(len(target), 1)], 1).double()
    solution = torch.linalg.solve(x1.T @ x1, x1.T @ target).float()
    assert torch.allclose(torch.cat([w, b[None]]), solution, atol=1e-3)
    residual = ((x1.float() @ solution - target.float()) ** 2).sum()
    assert residual < ((target - target.mean(0)) ** 2).sum()


def test_the_shipped_map_is_the_fit_of_the_shipped_vae():
    from imagegen_nb.tiny import latent_rgb

    _, pipe = ig.cache.shared.pipeline(None, "generate")
    w, b = latent_rgb.fit(pipe.vae)
    shipped = json.loads((ig.tiny.model_path() / "vae" / previews.MAP_FILE).read_text())
    assert torch.allclose(w, torch.tensor(shipped["weights"]), atol=1e-4)
    assert torch.allclose(b, torch.tensor(shipped["bias"]), atol=1e-4)


def test_a_vae_without_a_map_decodes(tmp_path):
    import shutil

    from diffusers import StableDiffusionPipeline

    folder = tmp_path / "copy"
    shutil.copytree(ig.tiny.model_path(), folder)
    (folder / "vae" / previews.MAP_FILE).unlink()
    pipe = StableDiffusionPipeline.from_pretrained(folder)
    assert previews.family_of_pipe(pipe) == "tiny"  # the built-in kind, loaded outside the cache, without its map
    assert previews.linear_map("tiny", pipe) is None
    latent = torch.zeros(1, 4, 16, 16)
    assert previews.preview_image(latent, pipe).size == (64, 64)  # the VAE's full decode, not a 16x16 map


def test_published_factors_and_packed_latents():
    from diffusers import FluxPipeline

    assert previews.preview_image(torch.zeros(1, 4, 64, 64), family="sd15").getpixel((0, 0)) == (127, 127, 127)
    assert previews.preview_image(torch.zeros(4, 8, 8), family="sdxl").size == (8, 8)
    packed = torch.randn(1, 8 * 6, 64)  # FLUX: 16 channels in 2x2 patches, a 16x12 latent
    ours = previews._unpack(packed, (12, 16))
    theirs = FluxPipeline._unpack_latents(packed, 16 * 8, 12 * 8, 8)
    assert torch.equal(ours, theirs)
    assert previews.preview_image(packed, family="flux-dev", size=(12, 16)).size == (12, 16)
    with pytest.raises(ValueError, match="no linear latent"):
        previews.preview_image(torch.zeros(1, 32, 8, 8), family="sana")
    with pytest.raises(TypeError, match="Step or a latent tensor"):
        previews.preview_image("latent")


def test_the_vae_s_own_map_wins_over_the_family_name():
    # the map belongs to the VAE that ships it: a family name without a table does not turn it off
    _, pipe = ig.cache.shared.pipeline(None, "generate")
    assert previews.preview_image(torch.zeros(1, 4, 16, 16), pipe, family="unknown").size == (16, 16)


def test_predict_x0_inverts_the_forward_process_for_each_kind():
    # a known clean latent and noise, noised by each scheduler's own add_noise, give back the clean latent
    from diffusers import DDIMScheduler, EulerDiscreteScheduler, FlowMatchEulerDiscreteScheduler

    _, pipe = ig.cache.shared.pipeline(None, "generate")
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(1, 4, 16, 16, generator=g), torch.randn(1, 4, 16, 16, generator=g)
    for cls in (DDIMScheduler, EulerDiscreteScheduler):
        sched = cls.from_config(pipe.scheduler.config)
        sched.set_timesteps(10)
        t = sched.timesteps[3]
        x_t = sched.add_noise(x0, eps, t[None])
        ab = float(sched.alphas_cumprod[int(t)])
        # what an exact model outputs: the noise, or v (the same v on the VP and the sigma form of the schedule)
        out = eps if sched.config.prediction_type == "epsilon" else ab**0.5 * eps - (1 - ab) ** 0.5 * x0
        assert torch.allclose(steps.predict_x0(sched, out, x_t, t, 3), x0, atol=1e-4), cls.__name__
    flow = FlowMatchEulerDiscreteScheduler()
    flow.set_timesteps(10)
    t = flow.timesteps[3]
    x_t = flow.scale_noise(x0, t[None], eps)
    assert torch.allclose(steps.predict_x0(flow, eps - x0, x_t, t, 3), x0, atol=1e-4)


# -- flow-matching families: eps and x0 from the velocity --------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    from imagegen_nb import testing

    root = tmp_path_factory.mktemp("trace-families")
    out = {fam: str(testing.make_tiny_model(fam, root / fam)) for fam in ("sd15", "sd3", "flux-dev", "zimage-turbo")}
    yield out
    for model in out.values():
        ig.cache.evict(model)


def _tiny_trace(tiny_models, fam, **kwargs):
    from imagegen_nb import testing

    h, w = testing.SAMPLE_SIZE[fam]
    args = dict(model=tiny_models[fam], seed=0, num_inference_steps=5, guidance_scale=3.0, width=w, height=h,
                progress=False, **testing.CALL_KWARGS[fam])
    return ig.trace("a red house", **{**args, **kwargs})


# (Z-Image takes only FlowMatchEuler)
@pytest.mark.parametrize(("fam", "scheduler"), [("sd3", None), ("sd3", "unipc"), ("flux-dev", None),
                                               ("flux-dev", "unipc"), ("zimage-turbo", None)])
def test_flow_traces_hold_the_flow_forward_process(tiny_models, fam, scheduler):
    tr = _tiny_trace(tiny_models, fam, scheduler=scheduler)
    assert tr.schedule_kind == "flow" and tr.prediction_type == "flow" and tr.alpha_bar is None and len(tr) == 5
    x, x0, eps = tr.latents.double(), tr.x0.double(), tr.noise.double()
    s = tr.sigmas.double().view(-1, 1, 1, 1)
    assert (s[1:] < s[:-1]).all() and float(s[0]) > 0.9
    # x_t = (1 - sigma) x0 + sigma eps, and the model's output is the velocity eps - x0
    assert _relative((1 - s) * x0 + s * eps, x) < 2e-3
    assert _relative(eps - x0, tr.model_output.double()) < 5e-3
    if fam == "flux-dev":  # guidance-distilled: one model call per step, no split; latents unpacked
        assert tr.noise_cond is None and tr.latents.ndim == 4
    else:
        c, u, m = tr.model_output_cond.double(), tr.model_output_uncond.double(), tr.model_output.double()
        # SD3 mixes as ordinary CFG; Z-Image's pipelines mix cond + w (cond - uncond)
        mix = u + 3.0 * (c - u) if fam == "sd3" else c + 3.0 * (c - u)
        assert torch.allclose(mix, m, atol=2e-2), fam
        s2 = float(tr.sigmas[2])  # x0_from inverts the same relation for each half's noise
        assert _relative((1 - s2) * tr.x0_from(2, tr.noise_cond[2]).double() + s2 * tr.noise_cond[2].double(),
                         x[2]) < 5e-3
    assert tr.decode(1, "noise", fast=True).size == tr.decode(1, "model_output", fast=True).size


def test_trace_player_says_what_its_noise_panel_holds(vp_trace, tiny_models):
    from imagegen_nb.widgets import trace_player

    assert "implied by the model's output v" in dict(trace_player.captions(vp_trace))["noise"]
    flow = trace_player.captions(_tiny_trace(tiny_models, "sd3", num_inference_steps=2))
    assert "velocity" in dict(flow)["noise"] and "predicted noise" not in dict(flow)["noise"]
    eps = trace_player.captions(_tiny_trace(tiny_models, "sd15", num_inference_steps=2))
    assert dict(eps)["noise"].startswith("predicted noise ε")


# -- counting steps as users mean them ---------------------------------------------------------------------------


def _watched(pipe, n, scheduler=None, stop_after=None):
    """Call `pipe` for n steps under a Run (with `scheduler` swapped in); the steps it heard and the Run."""
    seen = []

    def listen(run, step):
        seen.append((step.index, step.total, step.timestep, step.model_calls))
        if stop_after is not None and step.index + 1 == stop_after:
            run.stop()

    run = ig.Run(on_step=listen)
    previous = pipe.scheduler
    if scheduler is not None:
        pipe.scheduler = scheduler
    try:
        with steps.watch(pipe, run, total=n), torch.inference_mode():
            pipe("a red house", num_inference_steps=n, width=32, height=32, generator=torch.Generator().manual_seed(0))
    finally:
        pipe.scheduler = previous
    return seen, run


def test_pndm_counts_its_first_step_once(tiny_models):
    # SD 1.5's own scheduler repeats its first timestep (PLMS warm-up): 5 model calls for 4 steps
    seen = []
    ig.generate("a red house", model=tiny_models["sd15"], num_inference_steps=4, width=32, height=32, seed=0,
                progress=False, run=ig.Run(on_step=lambda run, step: seen.append((step.index, step.total,
                                                                                step.timestep, step.model_calls))))
    assert [s[:2] for s in seen] == [(0, 4), (1, 4), (2, 4), (3, 4)]
    assert [s[3] for s in seen] == [2, 1, 1, 1] and len({s[2] for s in seen}) == 4
    tr = _tiny_trace(tiny_models, "sd15", num_inference_steps=4)
    assert len(tr) == 4 and len(set(tr.timesteps.tolist())) == 4 and tr.schedule_kind == "vp"
    ab = tr.alpha_bar.view(-1, 1, 1, 1)
    assert _relative(ab.sqrt() * tr.x0.double() + (1 - ab).sqrt() * tr.noise.double(), tr.latents.double()) < 2e-3


@pytest.mark.filterwarnings("ignore:__array_wrap__ must accept context:DeprecationWarning")  # KDPM2 on NumPy 2
@pytest.mark.parametrize("kind", ["heun", "kdpm2", "pndm_prk"])
def test_two_and_four_call_steps_count_once(tiny_models, kind):
    from diffusers import HeunDiscreteScheduler, KDPM2DiscreteScheduler, PNDMScheduler

    _, pipe = ig.cache.shared.pipeline(tiny_models["sd15"], "generate")
    config = pipe.scheduler.config

    def fresh():
        if kind == "heun":
            return HeunDiscreteScheduler.from_config(config)
        if kind == "kdpm2":
            return KDPM2DiscreteScheduler.from_config(config)
        return PNDMScheduler.from_config(config, skip_prk_steps=False)  # Runge-Kutta warm-up: 4 calls a step

    calls = {"heun": [2, 2, 2, 1], "kdpm2": [2, 2, 2, 1], "pndm_prk": [4, 4, 4, 1]}[kind]
    seen, run = _watched(pipe, 4, fresh())
    assert [s[0] for s in seen] == [0, 1, 2, 3] and {s[1] for s in seen} == {4}
    assert [s[3] for s in seen] == calls and run.steps_done == 4 and not run.stopped
    # Stop after step 2 of 4: the step's second call still runs, nothing after it
    seen, run = _watched(pipe, 4, fresh(), stop_after=2)
    assert [s[3] for s in seen] == calls[:2] and run.steps_done == 2 and run.stopped


def test_a_stopped_run_used_again_runs_in_full():
    run = ig.Run(on_step=lambda run, step: run.stop() if step.index == 1 and run.total == 6 else None)
    ig.generate("a red circle", seed=0, num_inference_steps=6, progress=False, run=run)
    assert run.stopped and run.steps_done == 2
    image = ig.generate("a red circle", seed=0, num_inference_steps=5, progress=False, run=run)
    assert not run.stopped and run.steps_done == 5 and ig.recipe(image).get("stopped_at") is None


# -- a trace does not keep a model alive (last: it empties the shared cache) ---------------------------------------


def test_a_trace_lets_an_evicted_pipeline_go():
    import gc
    import weakref

    tr = ig.trace("a red circle", seed=0, num_inference_steps=3, progress=False)
    entry, pipe = ig.cache.shared.pipeline(None, "generate")
    pipe_ref, unet_ref = weakref.ref(pipe), weakref.ref(pipe.unet)
    del entry, pipe
    ig.cache.clear()
    gc.collect()
    assert pipe_ref() is None and unet_ref() is None
    assert tr.decode(-1, "x0").size == (64, 64)  # the trace loads the model again when asked to decode


def test_a_finished_run_lets_an_evicted_pipeline_go():
    import gc
    import weakref

    run = ig.Run()
    ig.generate("a red circle", seed=0, num_inference_steps=2, progress=False, run=run)
    entry, pipe = ig.cache.shared.pipeline(None, "generate")
    assert run.pipe is pipe
    pipe_ref = weakref.ref(pipe)
    del entry, pipe
    ig.cache.clear()
    gc.collect()
    assert pipe_ref() is None and run.pipe is None


# -- tiny autoencoders ------------------------------------------------------------------------------------------

def _tiny_ae(seed: int = 0, latent_channels: int = 4):
    from diffusers import AutoencoderTiny

    torch.manual_seed(seed)
    return AutoencoderTiny(encoder_block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(8, 8, 8, 8),
                           latent_channels=latent_channels, scaling_factor=0.5, shift_factor=0.1)


@pytest.fixture
def unset_tiny_autoencoders():
    yield
    for family in list(previews._tiny):
        previews.use_tiny_autoencoder(None, family=family)


def test_a_tiny_autoencoder_decodes_the_previews_of_its_family(tmp_path, unset_tiny_autoencoders):
    ae = _tiny_ae()
    latent = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    assert previews.preview_image(latent, family="sd15").size == (8, 8)  # the linear map: latent resolution
    previews.use_tiny_autoencoder(ae, family="sd15")
    picture = previews.preview_image(latent, family="sd15")
    with torch.no_grad():  # what a pipeline does with it standing in for its VAE: z / scaling + shift, decode
        x = ae.decode(latent / 0.5 + 0.1).sample[0]
    expected = ((x + 1) * 127.5).clamp(0, 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    assert picture.size == (64, 64) and np.array_equal(np.asarray(picture), expected)
    assert previews.preview_image(latent, family="sdxl").size == (8, 8)  # another family keeps its map
    ae.save_pretrained(tmp_path / "taesd")  # a folder loads to the same decoder
    previews.use_tiny_autoencoder(tmp_path / "taesd", family="sd15")
    assert previews.tiny_autoencoder("sd15") is not ae
    assert np.array_equal(np.asarray(previews.preview_image(latent, family="sd15")), expected)
    previews.use_tiny_autoencoder(None, family="sd15")
    assert previews.preview_image(latent, family="sd15").size == (8, 8)


def test_a_run_previews_through_the_tiny_autoencoder(unset_tiny_autoencoders):
    previews.use_tiny_autoencoder(_tiny_ae(), family="tiny")
    frames = []
    ig.generate("a red circle", seed=0, num_inference_steps=3, progress=False,
                run=ig.Run(on_step=lambda run, step: frames.append(previews.preview_image(step, step.pipe))))
    assert [f.size for f in frames] == [(128, 128)] * 3  # the built-in 16x16 latent, decoded 8x by the tiny one
    assert len({f.tobytes() for f in frames}) == 3  # each step's own x0


def test_tiny_autoencoder_mistakes_are_named(tmp_path, unset_tiny_autoencoders):
    from imagegen_nb.errors import ModelNotFoundError

    with pytest.raises(TypeError, match="autoencoder must be an AutoencoderTiny"):
        previews.use_tiny_autoencoder(3, family="sd15")
    with pytest.raises(ValueError, match="family"):
        previews.use_tiny_autoencoder(_tiny_ae(), family="sd1.5")
    with pytest.raises(ModelNotFoundError, match="no tiny autoencoder"):
        previews.use_tiny_autoencoder(tmp_path / "nothing", family="sd15")
    previews.use_tiny_autoencoder(_tiny_ae(latent_channels=16), family="sd15")
    with pytest.warns(UserWarning, match="16 latent channels"):
        picture = previews.preview_image(torch.zeros(1, 4, 8, 8), family="sd15")
    assert picture.size == (8, 8)  # the linear map instead
