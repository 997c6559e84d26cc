"""Every family in the registry, built tiny from config with random weights, through the library's own functions:
each task runs end to end, is deterministic per seed, keeps its recipe, and shares the base model's weights."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

import imagegen_nb as ig
from imagegen_nb import cache, testing
from imagegen_nb.registry import family_of


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("families")
    out = {}
    for fam in testing.FAMILIES:
        out[fam] = {"model": str(testing.make_tiny_model(fam, root / fam))}
        if fam in testing.CONTROLNET_FAMILIES:
            out[fam]["controlnet"] = str(testing.make_tiny_controlnet(fam, root / f"{fam}-controlnet"))
    yield out
    for fam in out.values():
        cache.evict(fam["model"])


def _args(fam):
    h, w = testing.SAMPLE_SIZE[fam]
    return dict(num_inference_steps=2, guidance_scale=2.0, width=w, height=h, progress=False,
                **testing.CALL_KWARGS[fam])


def _picture(w, h):
    im = Image.new("RGB", (w, h), "white")
    ImageDraw.Draw(im).rectangle([w // 4, h // 4, 3 * w // 4, 3 * h // 4], fill=(200, 40, 40))
    return im


def _modules(pipe):
    import torch

    return {k: v for k, v in pipe.components.items() if isinstance(v, torch.nn.Module)}


@pytest.mark.parametrize("fam", testing.FAMILIES)
def test_family_is_recognised_from_its_folder(folders, fam):
    assert family_of(folders[fam]["model"]).name == fam
    assert set(testing.TASKS[fam]) == set(ig.registry.FAMILIES[fam].tasks)


@pytest.mark.parametrize("fam", testing.FAMILIES)
def test_generate_is_deterministic_and_keeps_its_recipe(folders, fam):
    model = folders[fam]["model"]
    a = ig.generate("a red house", model=model, seed=3, **_args(fam))
    b = ig.generate("a red house", model=model, seed=3, **_args(fam))
    c = ig.generate("a red house", model=model, seed=4, **_args(fam))
    h, w = testing.SAMPLE_SIZE[fam]
    assert a.size == (w, h)
    assert (np.asarray(a) == np.asarray(b)).all() and (np.asarray(a) != np.asarray(c)).any()
    r = ig.recipe(a)
    assert (r["model"], r["family"], r["seed"], r["num_inference_steps"]) == (model, fam, 3, 2)
    assert (np.asarray(ig.regenerate(a)) == np.asarray(a)).all()


@pytest.mark.parametrize("fam", [f for f in testing.FAMILIES if "edit" in testing.TASKS[f]])
def test_edit_and_inpaint_share_the_base_weights(folders, fam):
    model = folders[fam]["model"]
    h, w = testing.SAMPLE_SIZE[fam]
    src = _picture(w, h)
    kw = {k: v for k, v in _args(fam).items() if k not in ("width", "height")}
    base_entry = cache.shared.entry(model)
    bytes_before = base_entry.nbytes
    edited = ig.edit(src, "a blue house", model=model, strength=0.5, seed=1, **kw)
    assert edited.size == (w, h)
    mask = np.zeros((h, w), bool)
    mask[:, w // 2:] = True
    filled = ig.inpaint(src, mask, "a blue house", model=model, seed=1, mask_blur=0, **kw)
    assert (np.asarray(filled)[~mask] == np.asarray(src)[~mask]).all()
    base = base_entry.base
    for task in ("edit", "inpaint"):
        _, pipe = cache.shared.pipeline(model, task)
        assert pipe is not base
        for name, module in _modules(base).items():
            assert _modules(pipe)[name] is module, f"{task} pipeline has its own {name}"
    assert cache.shared.entry(model).nbytes == bytes_before
    assert (np.asarray(ig.regenerate(edited)) == np.asarray(edited)).all()


@pytest.mark.parametrize("fam", testing.CONTROLNET_FAMILIES)
def test_control_attaches_a_cached_controlnet_to_the_shared_model(folders, fam):
    model, cn = folders[fam]["model"], folders[fam]["controlnet"]
    h, w = testing.SAMPLE_SIZE[fam]
    out = ig.control(_picture(w, h), "a red house", model=model, controlnet=cn, seed=2, **_args(fam))
    assert out.size == (w, h) and ig.recipe(out)["controlnet"] == cn
    entry, pipe = cache.shared.pipeline(model, "control", controlnet=cn)
    for name, module in _modules(entry.base).items():
        if name != "controlnet":
            assert _modules(pipe)[name] is module
    assert (np.asarray(ig.regenerate(out)) == np.asarray(out)).all()


@pytest.mark.parametrize("fam", ["pixart-sigma", "sana"])
def test_text_only_families_say_what_they_lack(folders, fam):
    from imagegen_nb.errors import UnsupportedTaskError

    with pytest.raises(UnsupportedTaskError, match="support generate, not edit"):
        ig.edit(_picture(32, 32), "a house", model=folders[fam]["model"])


@pytest.mark.parametrize("tensors, family", [
    ({"model.diffusion_model.output_blocks.11.0.skip_connection.weight": (1,)}, "sd15"),
    ({"conditioner.embedders.1.model.transformer.resblocks.9.mlp.c_proj.bias": (1,)}, "sdxl"),
    ({"model.diffusion_model.joint_blocks.0.context_block.adaLN_modulation.1.bias": (9216,),
      "model.diffusion_model.pos_embed": (1, 36864, 1)}, "sd3"),
    ({"double_blocks.0.img_attn.norm.key_norm.scale": (1,), "guidance_in.in_layer.bias": (1,),
      "img_in.weight": (1, 64)}, "flux-dev"),
    ({"double_blocks.0.img_attn.norm.key_norm.scale": (1,), "img_in.weight": (1, 64)}, "flux-schnell"),
])
def test_a_single_file_checkpoint_is_known_by_its_keys(tmp_path, tensors, family):
    import torch
    from safetensors.torch import save_file

    from imagegen_nb import registry

    file = tmp_path / "model.safetensors"
    save_file({k: torch.zeros(shape) for k, shape in tensors.items()}, file)
    assert registry.resolve(file) == (str(file), registry.FAMILIES[family])


@pytest.mark.parametrize("tensors, found", [
    ({"model.diffusion_model.input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight": (320, 1024)}, "'v2'"),
    ({"lora_unet_down_blocks_0.alpha": (1,)}, "no layout diffusers knows"),  # a LoRA is not a model
    ({}, "no tensors"),
])
def test_a_single_file_of_another_layout_is_refused_with_what_was_found(tmp_path, tensors, found):
    import torch
    from safetensors.torch import save_file

    from imagegen_nb import registry
    from imagegen_nb.errors import ModelNotFoundError

    file = tmp_path / "model.safetensors"
    save_file({k: torch.zeros(shape) for k, shape in tensors.items()}, file)
    with pytest.raises(ModelNotFoundError, match=found):
        registry.resolve(file)
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelNotFoundError, match="could not be read as a safetensors file"):
        registry.resolve(tmp_path / "bad.safetensors")
