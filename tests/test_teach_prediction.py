"""The prediction-target lesson: with one small network and the v-loss, x-prediction's samples stay on a 2-D spiral
buried in many dimensions while eps- and v-prediction's leave it; the numbers are deterministic for a seed, the
figure draws them, and the real models' rows are read from their configs."""

from __future__ import annotations

import io

import numpy as np
import pytest

from imagegen_nb.teach import prediction

DIMS = (2, 128)  # the data's own dimension, and twice the network's width


@pytest.fixture(scope="module")
def runs():
    return prediction.toy(dims=DIMS, steps=300, seed=0)


def test_x_prediction_stays_on_the_data_where_eps_and_v_fall_apart(runs):
    x, eps, v = (runs[k, 128] for k in ("x", "eps", "v"))
    assert x.distance < 0.15, x.distance
    assert x.distance < 0.3 * v.distance and x.distance < 0.01 * eps.distance, (x, v, eps)
    assert x.off_manifold < 0.1 * v.off_manifold and v.off_manifold < eps.off_manifold
    assert x.off_manifold < 1.0
    assert x.inside == 1.0 and eps.inside < 0.1  # eps's samples land far outside the data's square


def test_at_the_datas_own_dimension_every_target_lands_near_it(runs):
    for kind in prediction.TARGETS:
        run = runs[kind, 2]
        assert run.distance < 0.35, (kind, run.distance)  # the spiral's radius is about 1
        assert run.off_manifold < 1e-4  # at D = 2 the plane is all of space
    # eps and v get worse with D, x does not
    assert runs["eps", 2].distance < 0.02 * runs["eps", 128].distance
    assert runs["v", 2].distance < 0.5 * runs["v", 128].distance
    assert runs["x", 128].distance < 2 * runs["x", 2].distance


def test_runs_hold_their_target_dimension_and_samples(runs):
    assert list(runs) == [(k, D) for k in prediction.TARGETS for D in DIMS]
    for (kind, D), run in runs.items():
        assert (run.target, run.D) == (kind, D)
        assert run.samples.shape == (prediction.ToyConfig().samples, 2) and run.samples.dtype == np.float32
        assert np.isfinite([run.distance, run.off_manifold, run.coverage, run.loss, run.seconds]).all()
    # the distance is the samples' own: recomputed against another draw of the spiral, it comes out the same
    truth = prediction.spiral(5000, seed=12345)
    for key in (("x", 2), ("v", 128)):
        samples = runs[key].samples
        near = np.sqrt(((samples[:, None, :] - truth[None]) ** 2).sum(-1)).min(1).mean()
        assert near == pytest.approx(runs[key].distance, rel=0.05, abs=0.005), key


def test_the_same_seed_gives_the_same_numbers_and_another_seed_others():
    a = prediction.toy(dims=(8,), targets=("x", "v"), steps=30, seed=3)
    b = prediction.toy(dims=(8,), targets=("x", "v"), steps=30, seed=3)
    c = prediction.toy(dims=(8,), targets=("v", "x"), steps=30, seed=3)
    d = prediction.toy(dims=(8,), targets=("x", "v"), steps=30, seed=4)
    for key in a:
        np.testing.assert_array_equal(a[key].samples, b[key].samples)
        assert a[key].distance == b[key].distance and a[key].off_manifold == b[key].off_manifold
        # a target's run does not depend on which others train beside it
        np.testing.assert_allclose(a[key].samples, c[key].samples, rtol=1e-5, atol=1e-5)
        assert not np.allclose(a[key].samples, d[key].samples)


def test_toy_leaves_the_global_random_state_and_threads_alone():
    import torch

    threads = torch.get_num_threads()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    prediction.toy(dims=(4,), targets=("x",), steps=5)
    assert torch.equal(torch.rand(3), expected)
    assert torch.get_num_threads() == threads


@pytest.mark.parametrize("kwargs, name", [
    (dict(dims=(1, 8)), "dims"),
    (dict(dims=()), "dims"),
    (dict(dims=(2.5,)), "dims"),
    (dict(targets=("x", "noise")), "targets"),
    (dict(targets=()), "targets"),
    (dict(targets=("x", "x")), "targets"),
    (dict(steps=0), "steps"),
    (dict(num_inference_steps=0), "num_inference_steps"),
    (dict(config={"hidden": 8}), "config"),
])
def test_bad_arguments_name_the_argument(kwargs, name):
    with pytest.raises((ValueError, TypeError), match=name):
        prediction.toy(**{"dims": (2,), "steps": 1, **kwargs})


def test_unknown_target_lists_the_known_ones():
    with pytest.raises(ValueError, match="x, eps, v"):
        prediction.toy(dims=(2,), targets=("epsilon",), steps=1)


def test_figure_draws_one_panel_per_run_and_the_curves(runs):
    fig = prediction.figure(runs)
    titles = [ax.get_title() for ax in fig.axes]
    assert len(fig.axes) == 3 * len(DIMS) + 2
    assert titles[0].startswith("D = 2\ndistance ") and titles[1].startswith("D = 128")
    assert f"{runs['x', 128].distance:.2g}" in titles[1]
    assert "in view" in titles[3]  # eps at D = 128: most samples fall outside the panel
    assert [ax.get_ylabel() for ax in fig.axes[:3 * len(DIMS):len(DIMS)]] == \
        ["x-prediction", "eps-prediction", "v-prediction"]
    curve = fig.axes[-2]
    assert [line.get_label() for line in curve.get_lines()] == ["x-prediction", "eps-prediction", "v-prediction"]
    np.testing.assert_allclose(curve.get_lines()[0].get_ydata(), [runs["x", D].distance for D in DIMS])
    # the off-plane panel leaves out D = 2, where the residual is zero by construction
    assert list(fig.axes[-1].get_lines()[2].get_xdata()) == [128]
    fig.savefig(io.BytesIO(), format="png")
    assert len(prediction.figure(runs, curves=False).axes) == 3 * len(DIMS)


def test_figure_refuses_what_is_not_a_toy_result():
    with pytest.raises(TypeError, match="result"):
        prediction.figure({"x": 1})


def test_dimensions_read_the_shipped_configs():
    from imagegen_nb.teach._common import pipe_and_family

    rows = prediction.dimensions()
    tiny, dit, *paper = rows
    pipe, _ = pipe_and_family(None)
    assert pipe.scheduler.config.prediction_type == "v_prediction" and tiny.predicts == "v"
    assert tiny.token_dims == pipe.unet.config.in_channels
    assert tiny.tokens == pipe.unet.config.sample_size ** 2 and tiny.total_dims == tiny.token_dims * tiny.tokens
    dit_pipe, family = pipe_and_family("tiny-dit")
    patch = dit_pipe.transformer.config["all_patch_size"][0]
    assert family.flow and dit.predicts == "velocity"
    assert dit.token_dims == patch * patch * dit_pipe.transformer.config["in_channels"]
    assert dit.width == dit_pipe.transformer.config["dim"]
    assert dit.total_dims == tiny.total_dims  # the same latent, cut into patches
    assert [r.source for r in paper] == ["from the paper"] * 2 and [r.token_dims for r in paper] == [768, 3072]
    assert all(r.predicts == "x" for r in paper)
    text, html = str(rows), rows._repr_html_()
    assert "numbers per token" in text and "3,072" in text and "<table>" in html and "from the paper" in html
    assert prediction.dimensions("tiny-dit", paper=False)[0] == dit
