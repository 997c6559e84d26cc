"""The GAN lesson: on the 8-Gaussian ring, with a fixed seed and a short training, the diffusion model covers the
modes and the GAN fewer; coverage counts what it says; a seed makes the same samples; wrong arguments are named."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from imagegen_nb.teach import gan

SMALL = dict(steps=800, seed=0, num_samples=1000, snapshots=4)


@pytest.fixture(scope="module")
def result():
    return gan.compare(progress=False, **SMALL)


def test_the_data_covers_all_its_modes():
    c = gan.coverage(gan.mixture("ring").sample(4000, seed=1), "ring")
    assert c.modes == 8 and c.covered == 8
    assert c.quality > 0.97  # 1 - exp(-4.5) = 98.9% of a 2-D Gaussian lies within 3 std
    assert c.counts.min() > 0.5 * 4000 / 8
    assert 1.2 < c.spread < 1.5  # sqrt(2) for a 2-D Gaussian, a little less inside 3 std


def test_a_mixture_of_ones_own_is_measured_on_its_modes():
    mix = gan.Mixture("pair", np.array([[-1.0, 0.0], [1.0, 0.0]]), 0.1)
    run = gan.train("diffusion", data=mix, steps=5, num_samples=50, num_inference_steps=2, progress=False)
    assert run.data == "pair" and gan.coverage(mix.sample(400, seed=0), mix).covered == 2


def test_coverage_counts_samples_within_three_std():
    mix = gan.mixture("ring")
    near, far = mix.centres[0] + [2.9 * mix.std, 0.0], mix.centres[0] + [3.1 * mix.std, 0.0]
    c = gan.coverage(np.array([near] * 30 + [far] * 10), "ring")
    assert c.counts.tolist() == [30] + [0] * 7 and c.quality == 0.75
    assert c.threshold == 0.25 * 40 / 8 and c.covered == 1


def test_diffusion_covers_the_ring_and_the_gan_fewer(result):
    m = gan.modes(result)
    assert m["diffusion"] >= 7
    assert m["gan"] < m["diffusion"]
    cov = result.coverage
    assert cov["gan"].evaluations_per_sample == 1 and cov["diffusion"].evaluations_per_sample == 32
    assert cov["data"].covered == 8
    # the GAN spreads its samples over the modes far less evenly than the diffusion model
    spread = {k: cov[k].counts.std() / cov[k].counts.mean() for k in ("gan", "diffusion")}
    assert spread["gan"] > 2 * spread["diffusion"], (cov["gan"].counts, cov["diffusion"].counts)
    steps, covered = result.diffusion.covered_along_training()
    assert steps[-1] == SMALL["steps"] and covered[-1] == m["diffusion"]


def test_losses_are_recorded_every_step(result):
    assert set(result.gan.losses) == {"discriminator", "generator"}
    assert all(len(v) == SMALL["steps"] and np.isfinite(v).all() for v in result.gan.losses.values())
    flow = result.diffusion.losses["flow matching"]
    assert flow[-100:].mean() < flow[:10].mean()


def test_figure_titles_carry_the_measured_counts(result, tmp_path):
    fig = gan.figure(result)
    assert isinstance(fig, Figure) and len(fig.axes) == 8
    m = result.modes()
    titles = [ax.get_title() for ax in fig.axes]
    assert any(t.startswith(f"GAN, step {SMALL['steps']}\n{m['gan']} of 8 modes") for t in titles)
    assert any(t.startswith(f"diffusion, step {SMALL['steps']}\n{m['diffusion']} of 8 modes") for t in titles)
    fig.savefig(tmp_path / "gan.png")


def test_a_seed_makes_the_same_samples_and_leaves_the_global_generator_alone():
    state = torch.get_rng_state()
    a = gan.train("gan", steps=30, num_samples=300, seed=3, progress=False)
    b = gan.train("gan", steps=30, num_samples=300, seed=3, progress=False)
    c = gan.train("gan", steps=30, num_samples=300, seed=4, progress=False)
    assert torch.equal(state, torch.get_rng_state())
    assert np.array_equal(a.samples, b.samples) and not np.array_equal(a.samples, c.samples)
    assert np.array_equal(a.coverage().counts, b.coverage().counts)
    d1 = gan.train("diffusion", steps=20, num_samples=300, num_inference_steps=4, seed=3, progress=False)
    d2 = gan.train("diffusion", steps=20, num_samples=300, num_inference_steps=4, seed=3, progress=False)
    assert np.array_equal(d1.coverage().counts, d2.coverage().counts)


def test_minimax_generator_loss_is_log_one_minus_d():
    run = gan.train("gan", steps=5, num_samples=50, generator_loss="minimax", progress=False)
    assert (run.losses["generator"] < 0).all()  # log(1 - D(G(z))) < 0
    assert run.settings["generator_loss"] == "minimax"


@pytest.mark.parametrize("call, name", [
    (lambda: gan.train("vae"), "kind"),
    (lambda: gan.train("gan", steps=0), "steps"),
    (lambda: gan.train("gan", data="spiral"), "data"),
    (lambda: gan.train("gan", batch_size=1), "batch_size"),
    (lambda: gan.train("diffusion", num_inference_steps=0), "num_inference_steps"),
    (lambda: gan.train("gan", generator_init_std=-1.0), "generator_init_std"),
    (lambda: gan.train("gan", generator_loss="wasserstein"), "generator_loss"),
    (lambda: gan.train("gan", learning_rate="fast"), "learning_rate"),
    (lambda: gan.compare(num_samplez=10), "num_samplez"),
    (lambda: gan.modes(result=3), "result"),
    (lambda: gan.figure(result="x"), "result"),
    (lambda: gan.coverage(np.zeros((4, 3))), "samples"),
])
def test_argument_errors_name_the_argument(call, name):
    with pytest.raises((TypeError, ValueError), match=name):
        call()
