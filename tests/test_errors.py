"""Bad input gets a clear error that says what was wrong and how to fix it."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import imagegen_nb as ig
from imagegen_nb.errors import ModelNotFoundError, UnsafeModelFileError, UnsupportedTaskError


@pytest.fixture(scope="module")
def base():
    return ig.generate("a red circle", seed=0)


def test_unknown_hub_id_without_network_says_no_download():
    with pytest.raises(ModelNotFoundError, match="no download is possible.*built-in model.*local diffusers folder"):
        ig.generate("a cat", model="someone/not-a-real-model-xyz")


def test_folder_without_model_index(tmp_path):
    with pytest.raises(ModelNotFoundError, match="has no model_index.json"):
        ig.generate("a cat", model=str(tmp_path))


def test_family_name_is_not_a_model():
    with pytest.raises(ModelNotFoundError, match="family name, not a model"):
        ig.generate("a cat", model="sdxl")


@pytest.mark.parametrize("w,h", [(60, 64), (64, 100)])
def test_size_not_multiple_of_factor(w, h):
    with pytest.raises(ValueError, match=r"multiples of 8 for tiny models but are \d+ and \d+; try"):
        ig.generate("a red circle", width=w, height=h)


def test_mask_size_mismatch_and_resize(base):
    small = np.ones((30, 20), bool)
    msg = "mask is 20x30 but image is 64x64; pass a mask of the same size or resize=True"
    with pytest.raises(ValueError, match=msg):
        ig.inpaint(base, small, "a blue square")
    assert ig.inpaint(base, small, "a blue square", resize=True, seed=0).size == (64, 64)


def test_empty_and_non_image_input(tmp_path):
    with pytest.raises(ValueError, match="image is an empty array"):
        ig.edit(np.zeros((0, 0, 3), np.uint8), "a red circle")
    with pytest.raises(TypeError, match="image must be a PIL image, a numpy array or a path, not int"):
        ig.edit(5, "a red circle")
    bad = tmp_path / "notes.png"
    bad.write_text("not a picture")
    with pytest.raises(ValueError, match="is not an image PIL can read"):
        ig.edit(bad, "a red circle")
    with pytest.raises(FileNotFoundError, match="no file at"):
        ig.edit(tmp_path / "missing.png", "a red circle")
    with pytest.raises(ValueError, match=r"float array must hold values in \[0, 1\]"):
        ig.edit(np.full((64, 64, 3), 3.0), "a red circle")


@pytest.mark.parametrize("mode", ["RGBA", "L", "P", "LA", "1"])
def test_other_image_modes_are_converted(mode):
    image = Image.new("RGB", (64, 64), (200, 30, 30)).convert(mode)
    assert ig.edit(image, "a red circle", seed=0, num_inference_steps=4).mode == "RGB"


@pytest.mark.parametrize("strength", [0, -0.1, 1.5])
def test_strength_outside_range(base, strength):
    with pytest.raises(ValueError, match=r"strength must be in \(0, 1\]"):
        ig.edit(base, "a blue square", strength=strength)


@pytest.mark.parametrize("steps,error,message", [
    (0, ValueError, "num_inference_steps must be at least 1, not 0"),
    (-3, ValueError, "num_inference_steps must be at least 1, not -3"),
    (2.5, TypeError, r"num_inference_steps must be a whole number \(an int\), not 2.5"),
])
def test_bad_step_count(steps, error, message):
    with pytest.raises(error, match=message):
        ig.generate("a red circle", num_inference_steps=steps)


def test_negative_guidance():
    with pytest.raises(ValueError, match="guidance_scale must be at least 0, not -1"):
        ig.generate("a red circle", guidance_scale=-1)


def test_unknown_control_kind_and_scheduler(base):
    with pytest.raises(ValueError, match="unknown control kind 'sketch'; choose one of canny, scribble, lineart, "
                                         "softedge, depth, pose, segmentation, none"):
        ig.control(base, "a red circle", kind="sketch")
    with pytest.raises(ValueError, match="unknown scheduler 'fast'; choose one of"):
        ig.generate("a red circle", scheduler="fast")


def test_depth_without_hub_is_a_clear_error(base):
    with pytest.raises(ModelNotFoundError, match="depth preprocessor needs .* from the Hugging Face Hub"):
        ig.preprocess(base, "depth")


def test_no_default_controlnet_for_kind(base):
    with pytest.raises(ValueError, match="tiny has no default ControlNet for kind='pose'"):
        ig.control(base, "a red circle", kind="pose", preprocess=False)


def test_pickle_checkpoints_are_refused(tmp_path):
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"\x80\x04not really")
    with pytest.raises(UnsafeModelFileError, match="pickle file .*allow_pickle=True"):
        ig.generate("a cat", model=str(ckpt))


def test_text_only_family_has_no_edit(tmp_path):
    from imagegen_nb.registry import FAMILIES

    with pytest.raises(UnsupportedTaskError, match="pixart-sigma models support generate, not edit"):
        FAMILIES["pixart-sigma"].check_task("edit")


def test_bad_seed_and_prompt():
    with pytest.raises(ValueError, match="seed must be at least 0, not -1"):
        ig.generate("a red circle", seed=-1)
    with pytest.raises(TypeError, match="prompt must be a string"):
        ig.generate(None)


def test_errors_leave_the_cache_usable(pixels):
    before = ig.generate("a blue square", seed=1)
    with pytest.raises(ValueError):
        ig.generate("a blue square", width=63, height=64)
    with pytest.raises(TypeError, match="width= without height="):
        ig.generate("a blue square", width=64)
    with pytest.raises(ValueError):
        ig.edit(before, "x", strength=2)
    assert (pixels(ig.generate("a blue square", seed=1)) == pixels(before)).all()


def test_out_of_memory_is_caught_and_cache_survives(monkeypatch, pixels):
    import torch

    from imagegen_nb import cache
    from imagegen_nb.errors import OutOfMemoryError

    before = ig.generate("a red circle", seed=2)
    _, pipe = cache.shared.pipeline(None, "generate")
    original = type(pipe).__call__

    def boom(self, *a, **k):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(type(pipe), "__call__", boom)
    with pytest.raises(OutOfMemoryError, match="ran out of memory making a 64x64 image.*offload"):
        ig.generate("a red circle", seed=2)
    monkeypatch.setattr(type(pipe), "__call__", original)
    assert (pixels(ig.generate("a red circle", seed=2)) == pixels(before)).all()


def test_flow_scheduler_on_a_noise_prediction_model():
    with pytest.raises(ValueError, match="scheduler 'flow_euler' does not fit tiny models.*choose one of ddim"):
        ig.generate("a red circle", scheduler="flow_euler")


def test_regenerate_asks_for_tensors_a_recipe_cannot_hold():
    import torch

    latents = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    image = ig.generate("a red circle", seed=0, latents=latents)
    assert "not recorded" in ig.recipe(image)["extra"]["latents"]
    with pytest.raises(ValueError, match="made with latents that a recipe cannot hold.*pass latents="):
        ig.regenerate(image)
    again = ig.regenerate(image, latents=latents)
    assert (np.asarray(again) == np.asarray(image)).all()
