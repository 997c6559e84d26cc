"""The built-in transformer model (tiny.dit): its parts load offline and run in the stock ZImagePipeline with the
conventions training uses, the library's tasks run it, and its training lowers the loss and resumes exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import imagegen_nb as ig
from imagegen_nb import cache, tiny
from imagegen_nb.registry import family_of, resolve
from imagegen_nb.tiny import dit, train_dit

SHIPPED = tiny.model_path("dit")
FAST = dict(num_inference_steps=2, progress=False)


pytestmark = pytest.mark.usefixtures("one_thread")


def _cfg(**kw) -> train_dit.TrainConfig:
    return train_dit.TrainConfig(**{"batch": 4, "steps": 6, "warmup": 2, "checkpoint_every": 2, **kw})


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A few steps of the smoke architecture, exported as a ZImagePipeline folder."""
    out = tmp_path_factory.mktemp("dit-run")
    torch.set_num_threads(1)
    train_dit.train(out, dit.SMOKE, _cfg(steps=4), progress=False)
    folder = dit.export(train_dit.checkpoint_path(out), out / "export")
    yield out, folder
    cache.evict(str(folder))


def _pixels(image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


# -- the exported folder ------------------------------------------------------------------------------------------

def test_export_is_a_zimage_folder_that_loads_offline(run):
    from diffusers import ZImagePipeline

    _, folder = run
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "ZImagePipeline"
    assert index["text_encoder"] == ["transformers", "Qwen3Model"]
    pipe = ZImagePipeline.from_pretrained(folder, local_files_only=True)
    assert pipe.vae.config.shift_factor == 0.0  # null breaks the Z-Image pipelines
    assert pipe.tokenizer.chat_template == dit.CHAT_TEMPLATE
    assert json.loads((folder / "training.json").read_text())["step"] == 4
    assert family_of(str(folder)).name == "tiny-dit"


def test_prompt_states_are_the_pipelines(run):
    from diffusers import ZImagePipeline

    _, folder = run
    pipe = ZImagePipeline.from_pretrained(folder)
    prompts = ["a red circle to the left of a blue square", ""]
    ours = dit.encode_prompts(pipe.tokenizer, pipe.text_encoder, prompts)
    theirs, _ = pipe.encode_prompt(list(prompts), device="cpu", do_classifier_free_guidance=False)
    assert [len(s) for s in ours] == [len(prompts[0].split()) + 1, 1]  # a token per word, then </s>
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_pipeline_follows_the_training_convention(run):
    """A transformer that returns exactly the training target x0 - eps, fed the timesteps 1 - sigma, makes the
    pipeline's Euler steps land on x0: the sign, the timestep and the interpolation agree with train_dit."""
    from diffusers import ZImagePipeline

    _, folder = run
    pipe = ZImagePipeline.from_pretrained(folder)
    eps = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    x0 = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    seen = []

    def oracle(module, args, kwargs, output):
        frames, t = args[0], args[1]
        sigma = 1 - t[0]
        seen.append(float(sigma))
        x_t = frames[0][:, 0]
        torch.testing.assert_close(x_t, (1 - sigma) * x0[0] + sigma * eps[0], atol=1e-4, rtol=1e-4)
        return ([(x0[0] - eps[0]).unsqueeze(1)] * len(frames),)

    handle = pipe.transformer.register_forward_hook(oracle, with_kwargs=True)
    try:
        out = pipe("a red circle", height=32, width=32, num_inference_steps=4, guidance_scale=0.0, latents=eps,
                   output_type="latent").images
    finally:
        handle.remove()
    assert seen == pytest.approx([1.0, 0.75, 0.5, 0.25])
    torch.testing.assert_close(out, x0, atol=1e-4, rtol=1e-4)


def test_flow_pair_formulas():
    x0 = torch.randn(8, 4, 4, 4)
    gen = torch.Generator().manual_seed(0)
    x_t, target, sigma = train_dit.flow_pair(x0, gen, train_dit.TrainConfig())
    assert ((sigma > 0) & (sigma < 1)).all()
    s = sigma.view(-1, 1, 1, 1)
    eps = (x_t - (1 - s) * x0) / s
    torch.testing.assert_close(target, x0 - eps, atol=1e-4, rtol=1e-4)


# -- through the library ------------------------------------------------------------------------------------------

def test_generate_is_deterministic(run):
    model = str(run[1])
    a = ig.generate("a red circle", model=model, seed=0, **FAST)
    b = ig.generate("a red circle", model=model, seed=0, **FAST)
    c = ig.generate("a red circle", model=model, seed=1, **FAST)
    assert np.array_equal(_pixels(a), _pixels(b))
    assert not np.array_equal(_pixels(a), _pixels(c))
    assert np.array_equal(_pixels(ig.regenerate(a)), _pixels(a))


def test_all_tasks_return_the_right_size(run):
    model = str(run[1])
    image = ig.generate("a red circle", model=model, seed=0, width=48, height=32, **FAST)
    assert image.size == (48, 32)
    assert ig.recipe(image)["family"] == "tiny-dit"
    edited = ig.edit(image, "a blue square", model=model, seed=0, **FAST)
    assert edited.size == (48, 32) and ig.recipe(edited)["family"] == "tiny-dit"
    mask = Image.new("L", image.size, 0)
    mask.paste(255, (8, 8, 24, 24))
    painted = ig.inpaint(image, mask, "a green triangle", model=model, seed=0, **FAST)
    assert painted.size == (48, 32) and ig.recipe(painted)["task"] == "inpaint"


def test_sizes_must_be_multiples_of_eight(run):
    with pytest.raises(ValueError, match="8"):
        ig.generate("a red circle", model=str(run[1]), seed=0, width=60, height=64, **FAST)


def test_registry_knows_the_builtin_transformer():
    family = ig.registry.FAMILIES["tiny-dit"]
    assert (family.pipeline, family.default_size, family.size_factor, family.flow) == ("ZImagePipeline", 64, 8, True)
    assert family.default_steps <= 8
    location, fam = resolve("tiny-dit")
    assert fam is family and location == str(SHIPPED)
    assert family_of(str(SHIPPED)) is family
    assert family_of(str(tiny.model_path())).name == "tiny"


@pytest.mark.skipif(not (SHIPPED / "model_index.json").exists(), reason="no shipped transformer weights")
def test_shipped_model_draws_through_the_library():
    image = ig.generate("a red circle", model="tiny-dit", seed=0, progress=False)
    assert image.size == (64, 64)
    assert ig.recipe(image)["model"] == "tiny-dit" and ig.recipe(image)["family"] == "tiny-dit"
    assert np.array_equal(_pixels(ig.regenerate(image)), _pixels(image))


# -- training -----------------------------------------------------------------------------------------------------

def test_training_lowers_the_loss(tmp_path):
    trainer = train_dit.Trainer(tmp_path, dit.SMOKE, _cfg(steps=30, lr=3e-3, warmup=1, batch=8))
    before = trainer.validation_loss(batch=16, ema=False)
    for _ in range(30):
        trainer.step()
    assert trainer.validation_loss(batch=16, ema=False) < 0.8 * before


def test_word_lessons_train(tmp_path):
    trainer = train_dit.Trainer(tmp_path, dit.SMOKE, _cfg(sides=0.5, binding=0.5, lr=3e-3, warmup=1, batch=8))
    for _ in range(3):
        trainer.step()
    assert set(trainer.taught) == {"sides", "binding"} and all(len(v) == 3 for v in trainer.taught.values())
    assert set(trainer.state()["probes"]) == {f"{n}.{p}" for n in ("sides", "binding") for p in ("weight", "bias")}


def test_a_stopped_run_resumes_to_the_same_weights(tmp_path):
    cfg = _cfg(steps=5, sides=0.5)
    whole = train_dit.train(tmp_path / "whole", dit.SMOKE, cfg, progress=False)
    train_dit.train(tmp_path / "parts", dit.SMOKE, cfg, progress=False, stop_after=3)
    state = torch.load(train_dit.checkpoint_path(tmp_path / "parts"), map_location="cpu", weights_only=True)
    assert state["step"] == 3
    resumed = train_dit.train(tmp_path / "parts", dit.SMOKE, cfg, progress=False)
    assert resumed.step_count == whole.step_count == 5
    assert resumed.losses == whole.losses
    for name in ("transformer", "text_encoder", "ema_transformer", "probes"):
        a, b = getattr(whole, name).state_dict(), getattr(resumed, name).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), name


def test_init_from_an_exported_folder(run, tmp_path):
    _, folder = run
    trainer = train_dit.Trainer(tmp_path, dit.SMOKE, _cfg(), init_from=folder)
    from diffusers import ZImageTransformer2DModel

    shipped = ZImageTransformer2DModel.from_pretrained(folder / "transformer").state_dict()
    assert all(torch.equal(shipped[k].float(), v) for k, v in trainer.transformer.state_dict().items())
    with pytest.raises(ValueError, match="does not fit"):
        train_dit.Trainer(tmp_path / "other", dit.Architecture(), _cfg(), init_from=folder)


def test_command_line_trains_resumes_and_exports(tmp_path):
    out = tmp_path / "run"
    train_dit.main(["--out", str(out), "--arch", "smoke", "--steps", "2", "--batch", "2", "--no-progress"])
    train_dit.main(["--out", str(out), "--steps", "3", "--no-progress", "--export-to", str(tmp_path / "model")])
    saved = json.loads((out / "config.json").read_text())
    assert saved["arch"]["dim"] == dit.SMOKE.dim and saved["train"]["batch"] == 2
    assert json.loads((tmp_path / "model" / "training.json").read_text())["step"] == 3
