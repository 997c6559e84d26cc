"""The training script runs end to end on a tiny configuration and learns something in a few steps."""

from __future__ import annotations

import numpy as np

from imagegen_nb.tiny import components, train


def test_vae_then_unet_then_controlnet_train_and_export(tmp_path):
    cfg = train.TrainConfig(vae_batch=8, batch=8, warmup=1, lr=1e-3, checkpoint_every=10)
    vae_losses = train.train_vae(tmp_path, components.SMOKE, cfg, steps=60)
    assert np.mean(vae_losses[-10:]) < 0.8 * np.mean(vae_losses[:10])
    unet_losses = train.train_unet(tmp_path, components.SMOKE, cfg, steps=30)
    assert np.mean(unet_losses[-10:]) < np.mean(unet_losses[:3])
    cn_losses = train.train_controlnet(tmp_path, components.SMOKE, cfg, steps=3)
    assert len(cn_losses) == 3
    sd = train.export(tmp_path, tmp_path / "export")
    assert (sd / "model_index.json").exists() and (tmp_path / "export" / "controlnet-canny").exists()


def test_training_resumes_exactly_where_it_stopped(tmp_path):
    cfg = train.TrainConfig(vae_batch=4, checkpoint_every=5)
    straight = train.train_vae(tmp_path / "a", components.SMOKE, cfg, steps=8)
    train.train_vae(tmp_path / "b", components.SMOKE, cfg, steps=5)  # "interrupted" after its checkpoint at 5
    resumed = train.train_vae(tmp_path / "b", components.SMOKE, cfg, steps=8)
    assert len(resumed) == 8
    np.testing.assert_allclose(resumed, straight, rtol=1e-5)
