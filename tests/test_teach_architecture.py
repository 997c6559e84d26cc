"""The architecture lesson: parameters per part add up to each model's total, the FLOPs are the denoiser call's own
(the guidance batch included, the DiT's growing with its tokens, attention counted on the CPU too), the published
architectures built without weights match their makers' totals, and the word maps come from the attention lesson."""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")

from imagegen_nb import full_size  # noqa: E402
from imagegen_nb.teach import architecture  # noqa: E402
from imagegen_nb.teach._common import pipe_and_family  # noqa: E402


def _numel(module) -> int:
    return sum(p.numel() for p in module.parameters())


def _denoiser(pipe):
    return pipe.unet if getattr(pipe, "unet", None) is not None else pipe.transformer


@pytest.fixture(scope="module")
def built_in():
    return {name: architecture.summary(model, repeats=1) for name, model in (("tiny", None), ("tiny-dit", "tiny-dit"))}


@pytest.fixture(scope="module")
def maps():
    return architecture.word_maps("a red circle", num_inference_steps=2)


@pytest.mark.parametrize(("name", "model"), [("tiny", None), ("tiny-dit", "tiny-dit")])
def test_parts_add_up_to_each_component(built_in, name, model):
    s = built_in[name]
    pipe, _ = pipe_and_family(model)
    assert s.denoiser_parameters == _numel(_denoiser(pipe))
    assert s.text_encoder_parameters == _numel(pipe.text_encoder)
    assert s.vae == _numel(pipe.vae)
    assert s.total_parameters == _numel(pipe.text_encoder) + _numel(_denoiser(pipe)) + _numel(pipe.vae)
    known = architecture._PARTS[s.denoiser][1]
    assert set(s.denoiser_parts) <= set(known), "a parameter fell outside the named parts"
    assert all(n > 0 for n in s.denoiser_parts.values())


def test_the_two_read_the_text_differently(built_in):
    unet, dit = built_in["tiny"], built_in["tiny-dit"]
    assert unet.kind == "U-Net" and unet.cross_attention_layers > 0 and unet.joint_attention_layers == 0
    assert dit.kind.startswith("DiT") and dit.joint_attention_layers > 0 and dit.cross_attention_layers == 0
    # the U-Net's cross-attention keys are the text; the DiT's main blocks see text and image in one sequence
    assert any(k == unet.text_tokens and q >= unet.image_tokens for name, q, k in unet.attention if "attn2" in name)
    main = [q for name, q, _ in dit.attention if name.startswith("layers.")]
    assert main and all(q > dit.image_tokens + dit.text_tokens - 1 for q in main)
    assert dit.patch_size == 2 and dit.image_tokens == (dit.latent_shape[1] // 2) * (dit.latent_shape[2] // 2)
    assert unet.patch_size == 1 and unet.image_tokens == unet.latent_shape[1] * unet.latent_shape[2]


def test_flops_count_the_guidance_batch(built_in):
    with_cfg = built_in["tiny"]
    assert with_cfg.batch == 2 and with_cfg.flops_per_step > 0 and with_cfg.seconds_per_step > 0
    without = architecture.summary(None, guidance_scale=1.0, repeats=0)
    assert without.batch == 1 and without.seconds_per_step is None
    assert without.flops_per_step == pytest.approx(with_cfg.flops_per_step / 2, rel=0.01)


def test_the_dit_costs_more_with_more_tokens(built_in):
    small = built_in["tiny-dit"]
    large = architecture.summary("tiny-dit", height=128, width=128, repeats=0)
    assert large.image_tokens == 4 * small.image_tokens
    assert large.text_tokens == small.text_tokens
    # the blocks' linear layers grow with the joint sequence, attention with its square: more than the sequence
    ratio = large.flops_per_step / small.flops_per_step
    assert ratio > large.sequence_length / small.sequence_length
    assert ratio < (large.sequence_length / small.sequence_length) ** 2


def test_attention_is_counted_on_the_cpu_as_on_the_meta_device(built_in):
    q = torch.randn(2, 4, 64, 32)
    assert architecture.flops(torch.nn.functional.scaled_dot_product_attention, q, q, q) == 2 * 2 * (2 * 4 * 64 * 64
                                                                                                     * 32)
    # the tiny DiT counted on the CPU (fused attention kernel) and as shapes on the meta device (matrix products)
    pipe, _ = pipe_and_family("tiny-dit")
    meta = copy.deepcopy(pipe.transformer).to("meta")
    with torch.device("meta"):
        x = [torch.zeros(4, 1, 16, 16)]
        caps = [torch.zeros(8, pipe.transformer.config.cap_feat_dim)]
        on_meta = architecture.flops(meta, x, torch.full((1,), 0.5), caps)
    on_cpu = architecture.flops(pipe.transformer, [torch.zeros(4, 1, 16, 16)], torch.full((1,), 0.5),
                                [torch.zeros(8, pipe.transformer.config.cap_feat_dim)])
    assert on_cpu == on_meta > 0


def test_full_size_builds_match_the_published_totals():
    hubs = architecture.hub(count_flops=False)
    assert list(hubs) == list(full_size.FAMILIES)
    for name, h in hubs.items():
        assert set(h.denoiser_parts) <= set(architecture._PARTS[h.denoiser][1]), name
        for part, published in full_size.PUBLISHED[name].items():
            if part == "denoiser":
                counted = h.denoiser_parameters
            elif part == "vae":
                counted = h.vae
            elif part == "text encoders":
                counted = h.text_encoder_parameters
            else:
                counted = sum(n for k, n in h.text_encoders.items() if k.startswith(part + " "))
            assert counted == pytest.approx(published, rel=0.04), (name, part, counted)
    assert hubs["sd3"].kind.startswith("MMDiT") and hubs["zimage-turbo"].kind == "DiT (single stream)"
    # MMDiT: each stream has its own weights, about as many for the text as for the image
    sd3 = hubs["sd3"].denoiser_parts
    assert 0.8 < sd3["MMDiT blocks: text weights"] / sd3["MMDiT blocks: image weights"] < 1.0


def test_hub_flops_on_the_meta_device():
    small = architecture.hub(["sd15"], height=256, width=256)["sd15"]
    full = architecture.hub(["sd15"])["sd15"]
    assert small.batch == full.batch == 2 and small.device == "meta"
    assert 0 < small.flops_per_step < full.flops_per_step
    assert full.latent_shape == (4, 64, 64) and full.sequence_length == 64 * 64
    with torch.device("meta"):
        inputs = full_size.denoiser_inputs("zimage-turbo", height=512, width=512, batch=2)
    assert len(inputs["x"]) == 2 and tuple(inputs["x"][0].shape) == (16, 1, 64, 64)


def test_word_maps_come_from_the_attention_lesson(maps):
    assert list(maps) == ["tiny", "tiny-dit"]
    assert maps["tiny"].attention == "cross" and maps["tiny-dit"].attention == "joint"
    for m in maps.values():
        assert [w for w, _ in m.words] == ["a", "red", "circle"]
        assert m.word_maps.shape == (3, 16, 16)
        assert float(m.word_maps.sum(0).max()) <= 1.0 + 1e-4  # shares of each pixel's attention to the text


def test_figures(built_in, maps):
    fig = architecture.figure("a red circle", summaries=built_in, maps=maps)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles.count("'red'") == 2 and titles.count("'circle'") == 2
    assert any("MFLOPs" in t.get_text() for ax in fig.axes for t in ax.texts)
    fig = architecture.hub_figure(architecture.hub(["sd15", "flux-dev"], count_flops=False))
    assert len(fig.axes) == 1 and fig.axes[0].get_xlabel() == "parameters (billions)"


def test_argument_errors(built_in):
    with pytest.raises(ValueError, match="`repeats`"):
        architecture.summary(None, repeats=-1)
    with pytest.raises(ValueError, match="`prompt`"):
        architecture.summary(None, prompt=" ")
    with pytest.raises(ValueError, match="`families` must name families of"):
        architecture.hub(["sd2"])
    with pytest.raises(TypeError, match="`denoiser` must be a torch.nn.Module"):
        architecture.parameter_parts("unet")
    with pytest.raises(TypeError, match="`fn` must be callable"):
        architecture.flops(3)
    with pytest.raises(ValueError, match="`words` must name one to five words"):
        architecture.figure("a red circle", summaries=built_in, maps={"tiny": None}, words=[])
    with pytest.raises(ValueError, match="`family` must be one of"):
        full_size.denoiser("sd2")
    with pytest.raises(ValueError, match="`height` must be a positive multiple of 16"):
        full_size.denoiser_inputs("flux-dev", height=1000)
    with pytest.raises(ValueError, match="`batch`"):
        full_size.denoiser_inputs("sd15", batch=0)
