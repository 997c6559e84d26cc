"""The training script runs end to end on a tiny configuration and learns something in a few steps."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from imagegen_nb.tiny import components, surgery, train


def test_vae_then_unet_then_controlnet_train_and_export(tmp_path):
    cfg = train.TrainConfig(vae_batch=8, batch=8, controlnet_batch=8, warmup=1, lr=1e-3, checkpoint_every=10)
    vae_losses = train.train_vae(tmp_path, components.SMOKE, cfg, steps=60)
    assert np.mean(vae_losses[-10:]) < 0.8 * np.mean(vae_losses[:10])
    unet_losses = train.train_unet(tmp_path, components.SMOKE, cfg, steps=30)
    assert np.mean(unet_losses[-10:]) < np.mean(unet_losses[:3])
    cn_losses = train.train_controlnet(tmp_path, components.SMOKE, cfg, steps=3)
    assert len(cn_losses) == 3
    sd = train.export(tmp_path, tmp_path / "export")
    assert (sd / "model_index.json").exists() and (tmp_path / "export" / "controlnet-canny").exists()
    # The exported (fp16) folder is a starting point for more training: its weights load into a fresh model.
    from diffusers import UNet2DConditionModel

    unet = components.build_unet(components.SMOKE)
    assert surgery.load_weights(unet, sd / "unet") is False  # the same architecture: copied as it is
    saved = UNet2DConditionModel.from_pretrained(sd / "unet").state_dict()
    assert all(torch.equal(v, saved[k].float()) for k, v in unet.state_dict().items())
    # A ControlNet can start from an exported one (at learning rate 0 it stays exactly that one).
    (tmp_path / "controlnet.pt").unlink()
    train.train_controlnet(tmp_path, components.SMOKE, dataclasses.replace(cfg, controlnet_lr=0.0), steps=1,
                           init_from=tmp_path / "export" / "controlnet-canny")
    from diffusers import ControlNetModel

    exported = ControlNetModel.from_pretrained(tmp_path / "export" / "controlnet-canny").state_dict()
    again = ControlNetModel.from_pretrained(tmp_path / "controlnet").state_dict()
    assert all(torch.equal(v, exported[k].float()) for k, v in again.items())
    # A new run folder continues from it, taking the exported VAE along (here with attention grounding and a
    # v-prediction, zero-terminal-SNR schedule).
    changed = dataclasses.replace(cfg, grounding=0.1, prediction_type="v_prediction", zero_terminal_snr=True)
    more = train.train_unet(tmp_path / "more", components.SMOKE, changed, steps=2, init_from=sd)
    assert len(more) == 2 and np.isfinite(more).all() and (tmp_path / "more" / "vae" / "config.json").exists()


def test_learning_rate_warms_up_then_falls_along_a_cosine():
    factor = train.lr_lambda(warmup=10, total=110, final=0.1)
    assert factor(0) == pytest.approx(0.1) and factor(9) == pytest.approx(1.0)
    assert factor(60) == pytest.approx(0.55)  # half way down the cosine: (1 + 0.1) / 2
    assert factor(109) == pytest.approx(0.1, abs=1e-3) and factor(500) == pytest.approx(0.1)
    assert all(factor(s) >= factor(s + 1) for s in range(10, 200))


def test_a_model_folder_of_another_architecture_is_refused(tmp_path):
    components.build_unet(components.SMOKE).save_pretrained(tmp_path / "unet")
    with pytest.raises(ValueError, match="does not fit this architecture"):
        surgery.load_weights(components.build_unet(), tmp_path / "unet")


def test_a_unet_without_text_film_grows_into_one_that_starts_silent(tmp_path):
    plain_arch = dataclasses.replace(components.SMOKE, text_film=False)
    plain, film = components.build_unet(plain_arch), components.build_unet(components.SMOKE)
    assert film.config.resnet_time_scale_shift == "scale_shift" and film.config.addition_embed_type == "text"
    assert plain.config.resnet_time_scale_shift == "default" and plain.config.addition_embed_type is None
    plain.save_pretrained(tmp_path / "unet")
    assert surgery.load_weights(film, tmp_path / "unet") is True  # grown, not copied
    old, new = plain.state_dict(), film.state_dict()
    key = next(k for k in old if k.endswith("time_emb_proj.weight"))
    half = old[key].shape[0]
    assert new[key].shape[0] == 2 * half
    assert torch.equal(new[key][:half], torch.zeros_like(old[key])) and torch.equal(new[key][half:], old[key])
    assert all(torch.equal(new[k], old[k]) for k in old if ".time_emb_proj." not in k)  # everything else as it was
    with torch.no_grad():  # the pooled prompt adds nothing yet: a grafted model starts from what the old one knew
        assert film.add_embedding(torch.randn(2, 5, components.SMOKE.text_width)).abs().max() == 0
    old_cn = components.build_controlnet(plain, plain_arch)
    old_cn.save_pretrained(tmp_path / "controlnet")
    cn = components.build_controlnet(film, components.SMOKE)
    assert surgery.load_weights(cn, tmp_path / "controlnet") is True  # a ControlNet grows the same way
    assert cn.add_embedding.pool.num_heads == film.add_embedding.pool.num_heads  # and pools the prompt as its UNet
    key = "controlnet_mid_block.weight"
    assert torch.equal(cn.state_dict()[key], old_cn.state_dict()[key])


def test_a_resumed_run_keeps_its_architecture(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"arch": dataclasses.asdict(components.SMOKE)}))
    assert train._run_arch(tmp_path, None) == components.SMOKE
    assert train._run_arch(tmp_path, "film") == components.ARCHITECTURES["film"]
    assert train._run_arch(tmp_path / "new", None) == components.Architecture()


def test_training_resumes_exactly_where_it_stopped(tmp_path):
    cfg = train.TrainConfig(vae_batch=4, checkpoint_every=5)
    straight = train.train_vae(tmp_path / "a", components.SMOKE, cfg, steps=8)
    train.train_vae(tmp_path / "b", components.SMOKE, cfg, steps=5)  # "interrupted" after its checkpoint at 5
    resumed = train.train_vae(tmp_path / "b", components.SMOKE, cfg, steps=8)
    assert len(resumed) == 8
    np.testing.assert_allclose(resumed, straight, rtol=1e-5)


def test_config_comes_from_defaults_then_the_run_then_overrides():
    saved = {"lr": 1e-3, "category_weights": [1, 2, 3, 4, 5, 6], "a_field_of_an_older_version": 1}
    cfg = train._config(saved, ["batch=32", "category_weights=0,0,1,0,3,0", "high_noise=0.5"])
    assert cfg.lr == 1e-3 and cfg.batch == 32 and cfg.high_noise == 0.5
    assert cfg.category_weights == (0, 0, 1, 0, 3, 0) and cfg.seed == train.TrainConfig.seed
    assert train._config(saved, []).category_weights == (1, 2, 3, 4, 5, 6)
    with pytest.raises(ValueError, match="FIELD=VALUE"):
        train._config({}, ["learning_rate=1"])


def test_high_noise_share_draws_timesteps_from_the_noisier_half():
    scheduler = components.build_scheduler("ddpm")
    latents = torch.zeros(2000, 4, 2, 2)
    _, _, uniform, _ = train._noised(scheduler, latents, torch.Generator().manual_seed(0), 5.0)
    _, _, plain, _ = train._noised(scheduler, latents, torch.Generator().manual_seed(0), 5.0, high_noise=0.0)
    _, _, noisy, _ = train._noised(scheduler, latents, torch.Generator().manual_seed(0), 5.0, high_noise=1.0)
    assert torch.equal(uniform, plain)  # no share: the same draws as before the option existed
    assert 0.45 < (uniform >= 500).float().mean() < 0.55
    assert noisy.min() >= 500 and noisy.max() <= 999
    _, _, last, _ = train._noised(scheduler, latents, torch.Generator().manual_seed(0), 5.0, 1.0, high_noise_from=960)
    assert last.min() >= 960 and last.max() <= 999 and len(last.unique()) == 40  # every one of the last 40


def test_zero_terminal_snr_schedule_ends_in_pure_noise_and_trains_v():
    plain = components.build_scheduler("ddpm")
    zero = components.build_scheduler("ddpm", prediction_type="v_prediction", zero_terminal_snr=True)
    assert plain.alphas_cumprod[-1] > 1e-3 and zero.alphas_cumprod[-1] == 0
    with pytest.raises(ValueError, match="v_prediction"):
        components.build_scheduler("ddpm", zero_terminal_snr=True)
    latents = torch.randn(500, 4, 2, 2)
    x_t, target, t, weight = train._noised(zero, latents, torch.Generator().manual_seed(0), 5.0, high_noise=1.0)
    ab = zero.alphas_cumprod[t].view(-1, 1, 1, 1)
    eps = (x_t - ab.sqrt() * latents) / (1 - ab).sqrt()
    torch.testing.assert_close(target, ab.sqrt() * eps - (1 - ab).sqrt() * latents)  # v
    snr = ab.flatten() / (1 - ab.flatten())
    torch.testing.assert_close(weight, torch.clamp(snr + 1, max=5.0) / (snr + 1))
    assert torch.isfinite(weight).all() and weight[t.argmax()] == 1  # trained where x_t is (nearly) all noise
    _, eps, _, eps_weight = train._noised(plain, latents, torch.Generator().manual_seed(0), 5.0)
    assert torch.isfinite(eps_weight).all() and eps.std() == pytest.approx(1, abs=0.05)


def test_a_runs_schedule_settings_reach_its_exported_scheduler(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"train": {"prediction_type": "v_prediction",
                                                                 "zero_terminal_snr": True}}))
    scheduler = train._scheduler("dpm", train._run_config(tmp_path))
    assert scheduler.config.prediction_type == "v_prediction" and scheduler.config.rescale_betas_zero_snr
    assert train._scheduler("dpm", train._run_config(tmp_path / "elsewhere")).config.prediction_type == "epsilon"
    assert train._config({}, ["zero_terminal_snr=true"]).zero_terminal_snr is True
    with pytest.raises(ValueError, match="true or false"):
        train._config({}, ["zero_terminal_snr=yes please"])


def test_continuing_a_model_on_another_schedule_warns_and_names_the_fix(tmp_path, caplog):
    cfg = train.TrainConfig(vae_batch=4, batch=4, warmup=1, checkpoint_every=10)
    train.train_vae(tmp_path, components.SMOKE, cfg, steps=1)
    train.train_unet(tmp_path, components.SMOKE, cfg, steps=1)
    sd = train.export(tmp_path, tmp_path / "export")  # an epsilon model on SD 1.5's schedule
    with caplog.at_level("WARNING", logger="imagegen_nb.tiny.train"):
        train.train_unet(tmp_path / "same", components.SMOKE, cfg, steps=1, init_from=sd)
    assert "schedule" not in caplog.text
    v = dataclasses.replace(cfg, prediction_type="v_prediction", zero_terminal_snr=True)
    with caplog.at_level("WARNING", logger="imagegen_nb.tiny.train"):
        train.train_unet(tmp_path / "moved", components.SMOKE, v, steps=1, init_from=sd)
    assert "--set prediction_type=epsilon --set zero_terminal_snr=false" in caplog.text
