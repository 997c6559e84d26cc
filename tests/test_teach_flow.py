"""The diffusion-and-flow lesson: its paths are the samplers' own, in the flow coordinates its text derives, and its
steps curve and figure are made from the same prompts and seeds for both built-in models."""

from __future__ import annotations

import io

import numpy as np
import pytest

import imagegen_nb as ig
from imagegen_nb.teach import flow

PROMPT = "two red circles"


@pytest.fixture(scope="module")
def traces():
    """Six steps of each model with the lesson's Euler samplers: at six steps DDIM's last step ends at t = 0."""
    return {"tiny": ig.trace(PROMPT, seed=0, num_inference_steps=6, scheduler="ddim", progress=False),
            "tiny-dit": ig.trace(PROMPT, model="tiny-dit", seed=0, num_inference_steps=6, scheduler="flow_euler",
                                 progress=False)}


@pytest.fixture(scope="module")
def paths(traces):
    return {name: flow.path_of(tr) for name, tr in traces.items()}


def test_straightness_is_in_0_1_and_the_step_lengths_sum_to_its_inverse(paths):
    for name, p in paths.items():
        assert 0 < p.straightness <= 1, name
        assert p.straightness < 0.995, f"{name}: six steps of a sampled path should bend"
        assert p.step_length.sum() == pytest.approx(1 / p.straightness, rel=1e-9)
        assert (p.step_length > 0).all() and len(p.s) == p.steps + 1 == 7
        assert len(p.turn) == len(p.x0_move) == 5 and (p.turn >= 0).all() and (p.turn <= 180).all()
        assert p.s[0] == pytest.approx(1.0) and (np.diff(p.s) < 0).all()


def test_one_step_is_a_straight_line():
    p = flow.paths("a red circle", steps=1, seed=0)
    for name, path in p.items():
        assert path.straightness == pytest.approx(1.0, abs=1e-9), name
        assert path.step_length.tolist() == pytest.approx([1.0]) and len(path.turn) == len(path.x0_move) == 0
        assert path.s.tolist() == [1.0, 0.0], name  # from pure noise straight to the first x0_pred


def test_the_points_are_the_traces_latents_and_the_end_is_the_pictures_latent(traces, paths):
    from imagegen_nb.previews import vae_decode

    for name, p in paths.items():
        tr = traces[name]
        latents = tr.latents.double().flatten(1).numpy()
        # every point but the last is a recorded x_t, scaled: x = scale * y
        np.testing.assert_allclose(p.points[:-1] * p.scale[:-1, None], latents, rtol=1e-5, atol=1e-5)
        # the end point, scaled back, decodes to the picture the sampler made (to a level of 255 per pixel)
        end = p.points[-1] * p.scale[-1]
        decoded = np.asarray(vae_decode(_latent(end, tr), tr.pipe), dtype=np.int16)
        assert np.abs(decoded - np.asarray(tr.image, dtype=np.int16)).max() <= 1, name
    # DDIM at six steps lands at t = 0 (alpha_bar_0 = 0.99915, s = 0.028), not at the last x0_pred: that one
    # decodes to a visibly different picture
    assert paths["tiny"].s[-1] == pytest.approx(0.028, abs=0.001) and paths["tiny-dit"].s[-1] == 0
    tr = traces["tiny"]
    naive = np.asarray(vae_decode(tr.x0[-1:].float(), tr.pipe), dtype=np.int16)
    assert np.abs(naive - np.asarray(tr.image, dtype=np.int16)).max() >= 4


def _latent(flat, trace):
    import torch

    return torch.from_numpy(np.asarray(flat, dtype=np.float32)).view(1, *trace.latents.shape[1:])


def test_ddim_and_the_flow_euler_are_one_euler_step_in_flow_coordinates(traces, paths):
    def euler_error(tr, p):
        y = p.points.astype(np.float64)
        x0, eps = tr.x0.double().flatten(1).numpy(), tr.noise.double().flatten(1).numpy()
        euler = y[:-1] + np.diff(p.s)[:, None] * (eps - x0)  # y_s' = y_s + (s' - s) (eps_pred - x0_pred)
        return np.linalg.norm(euler - y[1:], axis=1) / np.linalg.norm(y[1:], axis=1)

    for name in paths:
        assert euler_error(traces[name], paths[name]).max() < 0.005, name
    # the U-Net's own DPM-Solver++ is second order: not that step
    shipped = ig.trace(PROMPT, seed=0, num_inference_steps=6, progress=False)
    assert euler_error(shipped, flow.path_of(shipped)).max() > 0.02


def test_the_step_grids(paths):
    # the DiT steps evenly in s = sigma; the U-Net's evenly spaced timesteps leave their longest s step for last
    np.testing.assert_allclose(np.diff(paths["tiny-dit"].s), -1 / 6, atol=1e-6)
    gaps = -np.diff(paths["tiny"].s)
    assert gaps.argmax() == len(gaps) - 1 and gaps[0] < gaps[-2]


def test_the_x0_prediction_moves_most_in_the_first_steps(paths):
    for name, p in paths.items():
        assert p.x0_move[:2].sum() > 3 * p.x0_move[-2:].sum(), name
        assert p.total_x0_move == pytest.approx(p.x0_move.sum())


def test_path_of_refuses_a_sampler_whose_last_step_it_does_not_know():
    tr = ig.trace(PROMPT, seed=0, num_inference_steps=2, scheduler="unipc", progress=False)
    with pytest.raises(ValueError, match="UniPCMultistepScheduler"):
        flow.path_of(tr)


def test_paths_are_deterministic_for_a_seed():
    a = flow.paths(PROMPT, steps=3, seed=1)
    b = flow.paths(PROMPT, steps=3, seed=1)
    c = flow.paths(PROMPT, steps=3, seed=2)
    for name in a:
        np.testing.assert_array_equal(a[name].points, b[name].points)
        assert a[name].straightness == b[name].straightness and a[name].seed == 1 and a[name].model == name
        assert not np.allclose(a[name].points[0], c[name].points[0]), name
    assert a["tiny"].scheduler == "ddim" and a["tiny-dit"].scheduler == "flow_euler"
    assert a["tiny"].prompt == PROMPT and a["tiny"].kind == "vp" and a["tiny-dit"].kind == "flow"


@pytest.fixture(scope="module")
def curve():
    return flow.steps_curve(steps=(2, 1), per_category=1, categories=("colors", "single_object"), progress=False)


def test_steps_curve_shape_and_ranges(curve):
    assert curve.steps == (1, 2) and curve.models == ("tiny", "tiny-dit")
    assert curve.categories == ("colors", "single object") and curve.pictures == 1
    for m in curve.models:
        assert set(curve.scores[m]) == {"colors", "single object", "overall"}
        for c in curve.categories:
            score = curve.scores[m][c]
            assert score.shape == (2,) and set(score.tolist()) <= {0.0, 1.0}  # one picture: pass or fail
        overall = curve.scores[m]["overall"]
        np.testing.assert_allclose(overall, (curve.scores[m]["colors"] + curve.scores[m]["single object"]) / 2)
        se = curve.standard_error(m)
        assert se.shape == (2,) and (0 <= se).all() and (se <= 0.5).all()
        assert curve.seconds[m] > 0 and curve.cfg_scale[m] == 4.0  # both at ordinary guidance w = 4
    assert curve.guidance == {"tiny": 4.0, "tiny-dit": 3.0}  # the DiT's Z-Image g is w - 1
    assert curve.schedulers == {"tiny": "ddim", "tiny-dit": "flow_euler"}
    assert [seed for _, seed in curve.prompts["colors"]] == [0]


def test_steps_curve_sees_the_unet_improve_with_steps():
    c = flow.steps_curve(models=None, steps=(1, 16), per_category=1, categories=("single object", "position"),
                         progress=False)
    overall = c.scores["tiny"]["overall"]
    assert overall[1] > overall[0], overall  # one DDIM step is the blurred mean x0_pred: no shapes to grade


def test_standard_error_of_overall_combines_the_categories():
    c = flow.StepsCurve(steps=(1,), models=("tiny",), categories=("colors", "counting"), pictures=4,
                        scores={"tiny": {"colors": np.array([1.0]), "counting": np.array([0.5]),
                                         "overall": np.array([0.75])}},
                        guidance={"tiny": 4.0}, cfg_scale={"tiny": 4.0}, schedulers={"tiny": "ddim"},
                        seconds={"tiny": 0.0})
    assert c.standard_error("tiny", "colors")[0] == 0.0
    assert c.standard_error("tiny", "counting")[0] == pytest.approx(0.25)
    # the two categories' variances, not a binomial of the pooled 0.75 over 8 pictures (which says 0.153)
    assert c.standard_error("tiny")[0] == pytest.approx(np.sqrt((1.0 * 0.0 + 0.5 * 0.5) / 4) / 2)


def test_figure_draws_both_and_says_what_the_dit_is(curve, paths):
    fig = flow.figure(curve, paths)
    assert len(fig.axes) == 3 + len(curve.categories)
    score = fig.axes[0]
    assert score.get_xscale() == "log" and score.get_ylabel() == "checker score (fraction correct)"
    labels = [t.get_text() for t in score.get_legend().get_texts()]
    assert any(label.startswith("U-Net") for label in labels) and any(label.startswith("DiT") for label in labels)
    assert any("training steps" in label for label in labels)
    assert "no few-step" in " ".join(t.get_text() for t in fig.texts)
    turn_labels = " ".join(t.get_text() for t in fig.axes[2].get_legend().get_texts())
    assert f"straightness {paths['tiny'].straightness:.3f}" in turn_labels
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    assert buffer.tell() > 10_000


@pytest.mark.parametrize(("call", "argument"), [
    (lambda: flow.paths(PROMPT, models="sd15"), "models"),
    (lambda: flow.paths(PROMPT, models=()), "models"),
    (lambda: flow.paths(PROMPT, models=(None, "tiny")), "models"),
    (lambda: flow.paths(PROMPT, steps=0), "steps"),
    (lambda: flow.paths(PROMPT, steps=(4, 8)), "steps"),
    (lambda: flow.paths(PROMPT, steps=True), "steps"),
    (lambda: flow.paths(PROMPT, sampler="heun"), "sampler"),
    (lambda: flow.paths(PROMPT, seed="0"), "seed"),
    (lambda: flow.paths(["a", "b"]), "prompt"),
    (lambda: flow.steps_curve(models=("tiny-dit", 3)), "models"),
    (lambda: flow.steps_curve(steps=(1, 1)), "steps"),
    (lambda: flow.steps_curve(steps=(1, 2.5)), "steps"),
    (lambda: flow.steps_curve(steps=(0, 4)), "steps"),
    (lambda: flow.steps_curve(per_category=0), "per_category"),
    (lambda: flow.steps_curve(categories=("shapes",)), "categories"),
    (lambda: flow.steps_curve(sampler="ddim"), "sampler"),
    (lambda: flow.steps_curve(guidance_scale="high"), "guidance_scale"),
])
def test_wrong_arguments_name_the_argument(call, argument):
    with pytest.raises(ValueError, match=argument):
        call()
