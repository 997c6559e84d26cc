"""Each tiny family saves, loads back through DiffusionPipeline.from_pretrained and runs every task it claims."""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

from PIL import Image  # noqa: E402

from imagegen_nb import full_size, testing  # noqa: E402

STEPS = 2


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One thread: steadier timings on a small shared CPU, and no thread-count dependent results."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def model_root(tmp_path_factory):
    return tmp_path_factory.mktemp("tiny-models")


@pytest.fixture(scope="module", params=testing.FAMILIES)
def family_pipe(request, model_root):
    family = request.param
    folder = testing.make_tiny_model(family, model_root / family)
    pipe = diffusers.DiffusionPipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    return family, pipe


def _run(pipe, family, seed=0, **inputs):
    """Two steps at the family's sample size; height/width only where the task pipeline takes them."""
    height, width = testing.SAMPLE_SIZE[family]
    kwargs = dict(prompt="a photo of a red cat, naïve café ☕", num_inference_steps=STEPS, output_type="np",
                  generator=torch.Generator().manual_seed(seed), **testing.CALL_KWARGS[family], **inputs)
    if "height" in inspect.signature(pipe.__call__).parameters:  # SD/SDXL img2img take the image's size
        kwargs.update(height=height, width=width)
    pipe.set_progress_bar_config(disable=True)
    return pipe(**kwargs).images


def _picture(family, seed=0):
    height, width = testing.SAMPLE_SIZE[family]
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def _mask(family):
    height, width = testing.SAMPLE_SIZE[family]
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[height // 4: 3 * height // 4, width // 4: 3 * width // 4] = 255
    return Image.fromarray(mask)


def _controlnet(family, model_root):
    folder = testing.make_tiny_controlnet(family, model_root / f"controlnet-{family}")
    class_name = json.loads((folder / "config.json").read_text())["_class_name"]
    assert class_name == testing.CONTROLNET_CLASS[family]
    return getattr(diffusers, class_name).from_pretrained(folder)


def _assert_shares_components(derived, base):
    for name, component in base.components.items():
        assert derived.components[name] is component, name


def test_tables_cover_every_family():
    assert set(testing.SAMPLE_SIZE) == set(testing.CALL_KWARGS) == set(testing.TASKS) == set(testing.FAMILIES)
    assert set(testing.CONTROL_IMAGE_ARG) == set(testing.CONTROLNET_CLASS) == set(testing.CONTROLNET_FAMILIES)
    for family, tasks in testing.TASKS.items():
        assert tasks[0] == "generate"
        assert ("control" in tasks) == (family in testing.CONTROLNET_FAMILIES)


def test_generate_is_seeded(family_pipe):
    family, pipe = family_pipe
    height, width = testing.SAMPLE_SIZE[family]
    first = _run(pipe, family, seed=0)
    assert first.shape == (1, height, width, 3)
    assert np.isfinite(first).all()
    np.testing.assert_array_equal(_run(pipe, family, seed=0), first)
    assert not np.array_equal(_run(pipe, family, seed=1), first)


def test_derived_tasks_share_components_and_run(family_pipe, model_root):
    family, pipe = family_pipe
    height, width = testing.SAMPLE_SIZE[family]
    for task in testing.TASKS[family]:
        if task == "generate":
            continue
        if task == "edit":
            derived = diffusers.AutoPipelineForImage2Image.from_pipe(pipe)
            inputs = dict(image=_picture(family), strength=0.9)
        elif task == "inpaint":
            derived = diffusers.AutoPipelineForInpainting.from_pipe(pipe)
            inputs = dict(image=_picture(family), mask_image=_mask(family), strength=0.9)
        else:
            controlnet = _controlnet(family, model_root)
            derived = diffusers.AutoPipelineForText2Image.from_pipe(pipe, controlnet=controlnet)
            assert derived.controlnet is controlnet
            inputs = {testing.CONTROL_IMAGE_ARG[family]: _picture(family)}
        _assert_shares_components(derived, pipe)
        images = _run(derived, family, **inputs)
        assert images.shape == (1, height, width, 3), task
        assert np.isfinite(images).all(), task
        if task == "control":  # the tiny ControlNet is not zero-initialised: its image must matter
            other = {testing.CONTROL_IMAGE_ARG[family]: _picture(family, seed=1)}
            assert not np.array_equal(_run(derived, family, **other), images)
            back = diffusers.AutoPipelineForText2Image.from_pipe(derived, controlnet=None)
            assert type(back) is type(pipe)
            _assert_shares_components(back, pipe)
    if "edit" not in testing.TASKS[family]:  # PixArt, Sana: diffusers has no image-to-image form for them
        with pytest.raises(ValueError, match="AutoPipeline can't find a pipeline linked to"):
            diffusers.AutoPipelineForImage2Image.from_pipe(pipe)


def test_same_seed_writes_same_weights(tmp_path):
    first = testing.make_tiny_model("sd15", tmp_path / "a", seed=0)
    again = testing.make_tiny_model("sd15", tmp_path / "b", seed=0)
    other = testing.make_tiny_model("sd15", tmp_path / "c", seed=1)
    weights = sorted(p.relative_to(first) for p in first.rglob("*.safetensors"))
    assert weights
    for name in weights:
        assert (first / name).read_bytes() == (again / name).read_bytes(), name
    assert any((first / name).read_bytes() != (other / name).read_bytes() for name in weights)
    # a second call on an existing folder returns at once and writes nothing
    stamp = (first / "model_index.json").stat().st_mtime_ns
    assert testing.make_tiny_model("sd15", first, seed=5) == first
    assert (first / "model_index.json").stat().st_mtime_ns == stamp


def test_unknown_family_is_refused(tmp_path):
    with pytest.raises(ValueError, match="`family` must be one of"):
        testing.make_tiny_model("sd2", tmp_path)
    with pytest.raises(ValueError, match="`family` must be one of"):
        testing.make_tiny_controlnet("sana", tmp_path)


@pytest.mark.parametrize(("kind", "parameters"), [("sd15", 859_520_964), ("sdxl", 2_567_463_684)])
def test_full_size_unet_has_the_real_architecture(kind, parameters):
    with torch.device("meta"):  # shapes only: no 3-10 GB of random weights
        unet = full_size.denoiser(kind)
    assert sum(p.numel() for p in unet.parameters()) == parameters


def test_builds_into_an_existing_empty_folder(tmp_path):
    folder = tmp_path / "sana"
    folder.mkdir()
    assert testing.make_tiny_model("sana", folder) == folder
    assert (folder / "model_index.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sana"]  # no partial folder left behind
