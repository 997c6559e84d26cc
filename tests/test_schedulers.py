"""Every scheduler the library offers samples every model it accepts correctly, and the ones it cannot are refused
with the reason: on the built-in model (v-prediction, zero terminal SNR) the world's checker reads the same shapes
and colours as with the default scheduler; on tiny random models of each family the deterministic solvers converge
to the default scheduler's picture."""

from __future__ import annotations

import re

import numpy as np
import pytest

import imagegen_nb as ig
from imagegen_nb import schedulers, testing
from imagegen_nb.tiny import checker

PROMPTS = ("a red circle to the left of a blue square on a white background",
           "two green triangles on a black background",
           "a yellow square on a gray background")
# Solvers of the probability-flow ODE: from the same noise they reach the same picture as the default (DPM-Solver++
# for the built-in model), up to their discretisation error. The others add fresh noise at every step (DDPM,
# Euler ancestral, LCM's consistency steps), so they draw a different sample of the same prompt.
DETERMINISTIC = {"ddim", "pndm", "euler", "dpm++", "unipc", "flow_euler"}
BUILTIN_FITTING = ["ddim", "ddpm", "euler", "euler_a", "dpm++", "unipc", "lcm"]


def _pixels(image):
    return np.asarray(image.convert("RGB"), dtype=np.float32)


def _found(image):
    return sorted((d.color, d.shape) for d in checker.detect(image))


@pytest.fixture(scope="module")
def builtin():
    return ig.cache.shared.pipeline(None, "generate")[1]


@pytest.fixture(scope="module")
def defaults():
    return {prompt: ig.generate(prompt, seed=0, progress=False) for prompt in PROMPTS}


def test_the_built_in_model_is_offered_every_scheduler_that_can_sample_it(builtin):
    assert schedulers.fitting(builtin.scheduler.config, builtin) == BUILTIN_FITTING


@pytest.mark.parametrize("name", BUILTIN_FITTING)
def test_each_scheduler_keeps_what_the_built_in_model_was_trained_with(builtin, name):
    sched = schedulers.build(name, builtin.scheduler.config, pipeline=builtin)
    cfg = sched.config
    assert cfg.prediction_type == "v_prediction" and cfg.rescale_betas_zero_snr
    assert cfg.timestep_spacing == "trailing" and not cfg.get("clip_sample", False)
    assert not cfg.get("thresholding", False)
    sched.set_timesteps(12)
    # zero terminal SNR: the first step is the pure-noise timestep (alpha_bar 0, or diffusers' 2**-24 stand-in)
    assert int(sched.timesteps[0]) == 999 and float(sched.alphas_cumprod[999]) <= 2.0**-24


@pytest.mark.parametrize("name", BUILTIN_FITTING)
def test_each_scheduler_draws_the_prompt_on_the_built_in_model(defaults, name):
    for prompt, default in defaults.items():
        image = ig.generate(prompt, seed=0, scheduler=name, progress=False)
        named_background = prompt.rsplit(" on a ", 1)[1].split()[0]
        assert checker.background(image) == checker.background(default) == named_background, (name, prompt)
        assert checker.grade(image, prompt), (name, prompt, _found(image))
        assert _found(image) == _found(default), (name, prompt)
        if name in DETERMINISTIC:
            diff = np.abs(_pixels(image) - _pixels(default)).mean()
            assert diff < 4.0, (name, prompt, diff)  # measured 0.3 to 2.2 (of 255) at the default 12 steps


def test_pndm_is_refused_on_a_zero_snr_model_and_says_why(builtin):
    before = builtin.scheduler
    with pytest.raises(ValueError, match=r"'pndm' cannot sample this model: .*zero-terminal-SNR.*choose one of ddim"):
        ig.generate("a red circle", scheduler="pndm", progress=False)
    assert builtin.scheduler is before  # nothing was swapped in
    with pytest.raises(ValueError, match="unknown scheduler"):
        schedulers.build("heun", builtin.scheduler.config)


def test_the_model_config_decides_over_a_schedulers_own_defaults():
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, FlowMatchEulerDiscreteScheduler

    # SD 1.5's own scheduler settings (epsilon, leading spacing): DDIM keeps them and does not clip x0
    sd15 = {"_class_name": "PNDMScheduler", "beta_schedule": "scaled_linear", "beta_start": 0.00085,
            "beta_end": 0.012, "steps_offset": 1, "skip_prk_steps": True, "timestep_spacing": "leading"}
    ddim = schedulers.build("ddim", sd15)
    assert isinstance(ddim, DDIMScheduler) and not ddim.config.clip_sample
    assert (ddim.config.prediction_type, ddim.config.timestep_spacing, ddim.config.steps_offset) == (
        "epsilon", "leading", 1)
    assert schedulers.build("ddim", {**sd15, "clip_sample": True}).config.clip_sample  # the model asks for it
    assert schedulers.build("pndm", {**sd15, "_class_name": "DDIMScheduler"}).config.skip_prk_steps
    assert schedulers.unfit("pndm", sd15) is None
    assert "prediction_type='sample'" in schedulers.unfit("pndm", {**sd15, "prediction_type": "sample"})
    assert "flow-matching models" in schedulers.unfit("flow_euler", sd15)
    # a flow model: its shift reaches the flow solvers under each one's name for it
    flow = FlowMatchEulerDiscreteScheduler(shift=3.0).config
    dpm = schedulers.build("dpm++", flow)
    assert isinstance(dpm, DPMSolverMultistepScheduler) and dpm.config.use_flow_sigmas
    assert (dpm.config.prediction_type, dpm.config.flow_shift) == ("flow_prediction", 3.0)
    sana_like = DPMSolverMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0)
    assert schedulers.build("flow_euler", sana_like.config).config.shift == 3.0
    assert "no flow-matching form" in schedulers.unfit("euler", flow)


# -- tiny random models of every family ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("scheduler-families")
    out = {fam: str(testing.make_tiny_model(fam, root / fam)) for fam in testing.FAMILIES}
    yield out
    for model in out.values():
        ig.cache.evict(model)


def _args(fam, model, steps):
    h, w = testing.SAMPLE_SIZE[fam]
    return dict(model=model, num_inference_steps=steps, guidance_scale=2.0, width=w, height=h, seed=0,
                progress=False, **testing.CALL_KWARGS[fam])


EXPECTED_FITTING = {
    "sd15": ["ddim", "ddpm", "pndm", "euler", "euler_a", "dpm++", "unipc", "lcm"],
    "sdxl": ["ddim", "ddpm", "pndm", "euler", "euler_a", "dpm++", "unipc", "lcm"],
    "pixart-sigma": ["ddim", "ddpm", "pndm", "euler", "euler_a", "dpm++", "unipc", "lcm"],
    "sd3": ["dpm++", "unipc", "flow_euler"],
    "flux-dev": ["dpm++", "unipc", "flow_euler"],
    "zimage-turbo": ["flow_euler"],  # its pipelines pass their own sigmas (a list) with mu
    "sana": ["dpm++", "unipc", "flow_euler"],
}


@pytest.mark.parametrize("fam", testing.FAMILIES)
def test_every_accepted_scheduler_samples_each_family(folders, fam):
    model = folders[fam]
    _, pipe = ig.cache.shared.pipeline(model, "generate")
    names = schedulers.fitting(pipe.scheduler.config, pipe)
    assert names == EXPECTED_FITTING[fam]
    family = ig.registry.family_of(model)
    for name in set(schedulers.SCHEDULERS) - set(names):  # the rest are refused, with a reason, before running
        with pytest.raises(ValueError, match=rf"scheduler '{re.escape(name)}' (cannot sample|does not fit)"):
            schedulers.check(name, family)
            schedulers.swap(pipe, name)
    steps = 40
    default = _pixels(ig.generate("a red house", **_args(fam, model, steps)))
    for name in names:
        quick = _pixels(ig.generate("a red house", scheduler=name, **_args(fam, model, 2)))
        assert np.isfinite(quick).all() and quick.std() > 0, name
        image = _pixels(ig.generate("a red house", scheduler=name, **_args(fam, model, steps)))
        assert np.isfinite(image).all() and image.std() > 0, name
        if name in DETERMINISTIC:
            # the same ODE from the same noise: 40 steps of any solver land near the default's picture
            diff = np.abs(image - default).mean()
            assert diff < 1.5, (fam, name, diff)  # measured at most 1.0; a wrong schedule gives 20 to 40


@pytest.mark.parametrize("fam", ["sd3", "flux-dev", "zimage-turbo"])
def test_flow_edits_need_a_scheduler_that_can_noise_the_picture(folders, fam):
    from PIL import Image

    model = folders[fam]
    h, w = testing.SAMPLE_SIZE[fam]
    picture = Image.new("RGB", (w, h), (200, 40, 40))
    args = {k: v for k, v in _args(fam, model, 4).items() if k not in ("width", "height")}
    with pytest.raises(ValueError, match="scale_noise|own sigmas"):
        ig.edit(picture, "a blue house", scheduler="unipc", strength=0.5, **args)
    edited = ig.edit(picture, "a blue house", scheduler="flow_euler", strength=0.5, **args)
    assert np.isfinite(_pixels(edited)).all() and edited.size == (w, h)
