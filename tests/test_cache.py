"""The shared pipeline cache: load once, share weights across tasks, evict least recently used, keep each call's
dtype to that call, and check its arguments (devices and the memory policy are tests/test_devices.py)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import imagegen_nb as ig
from imagegen_nb import cache, devices, testing


def test_warm_cache_loads_nothing_and_tasks_share_module_objects():
    ig.generate("a red circle", seed=0)
    loads = cache.shared.loads
    image = ig.generate("a red circle", seed=0)
    ig.edit(image, "a blue circle", seed=0)
    ig.inpaint(image, np.ones((64, 64), bool), "a blue circle", seed=0)
    assert cache.shared.loads == loads
    entry = cache.shared.entry(None)
    for task in ("edit", "inpaint"):
        _, pipe = cache.shared.pipeline(None, task)
        for name in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
            assert getattr(pipe, name) is getattr(entry.base, name)
        assert pipe.unet.conv_in.weight.data_ptr() == entry.base.unet.conv_in.weight.data_ptr()
    info = ig.cache.info()
    tiny = next(m for m in info["models"] if m["model"] == "tiny")
    assert {"generate", "edit", "inpaint"} <= set(tiny["pipelines"])
    controlnets = cache.shared.controlnets(None)  # loaded by earlier control calls
    styles = [part for loaded in entry.ip_adapters.values()  # IP-Adapters loaded by earlier style= calls
              for part in (loaded.image_encoder, loaded.projection,
                           *(p for p in loaded.processors.values() if hasattr(p, "parameters")))]
    assert tiny["bytes"] == sum(p.numel() * p.element_size() for m in (entry.base.unet, entry.base.vae,
                                                                        entry.base.text_encoder, *controlnets,
                                                                        *styles)
                                for p in m.parameters())


def test_evict_and_clear_then_reload_gives_same_pixels():
    a = np.asarray(ig.generate("a blue square", seed=9))
    assert ig.cache.evict(None) and "tiny" not in [m["model"] for m in ig.cache.info()["models"]]
    assert not ig.cache.evict(None)
    b = np.asarray(ig.generate("a blue square", seed=9))
    ig.cache.clear()
    assert ig.cache.info()["models"] == []
    c = np.asarray(ig.generate("a blue square", seed=9))
    assert (a == b).all() and (a == c).all()


def test_least_recently_used_model_is_evicted_over_budget(tmp_path):
    sd = str(testing.make_tiny_model("sd15", tmp_path / "sd15"))
    pixart = str(testing.make_tiny_model("pixart-sigma", tmp_path / "pixart"))
    small = cache.PipelineCache()
    small.entry(None)
    first = small.entry(None).nbytes
    small.entry(sd)
    small.entry(None)  # touch the built-in model: sd15 is now least recently used
    small.budget_bytes = first + small.entry(sd).nbytes + 1  # room for two of the three
    small.entry(None)
    small.entry(pixart)
    names = [m["model"] for m in small.info()["models"]]
    assert sd not in names and pixart in names and "tiny" in names


def test_runs_are_serialized_by_the_lock():
    order = []

    def listener(run, step):
        order.append((threading.current_thread().name, step.index))

    threads = [threading.Thread(target=ig.generate, args=("a red circle",), name=f"t{k}",
                                kwargs=dict(seed=k, num_inference_steps=5, run=ig.Run(on_step=listener)))
               for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    names = [n for n, _ in order]
    # each thread's five steps come together: one run never interleaves with another
    assert names in (["t0"] * 5 + ["t1"] * 5, ["t1"] * 5 + ["t0"] * 5)


def test_dtype_argument_reloads_in_that_precision():
    import torch

    a = np.asarray(ig.generate("a green square", seed=5))
    b = ig.generate("a green square", seed=5, dtype="bfloat16")
    _, pipe = cache.shared.pipeline(None, "generate", dtype="bfloat16")
    assert pipe.unet.dtype == torch.bfloat16 and cache.dtype_of(pipe) == "bfloat16"
    assert len(ig.cache.info()["models"]) >= 1 and ig.recipe(b)["seed"] == 5
    c = np.asarray(ig.generate("a green square", seed=5, dtype="float32"))
    assert cache.shared.entry(None).base.unet.dtype == torch.float32
    assert (a == c).all()


def test_a_per_call_dtype_does_not_change_later_default_calls():
    import torch

    default = devices.current().dtype
    ig.cache.clear()
    fresh = np.asarray(ig.generate("a green square", seed=5))
    ig.generate("a green square", seed=5, dtype="bfloat16")
    assert cache.dtype_of(cache.shared.entry(None, dtype="bfloat16").base) == "bfloat16"
    again = np.asarray(ig.generate("a green square", seed=5))  # no dtype: the default again
    entry, pipe = cache.shared.pipeline(None, "generate")
    assert cache.dtype_of(pipe) == default and entry.base.unet.dtype == getattr(torch, default)
    assert all(m["dtype"] == default for m in ig.cache.info()["models"])
    assert (again == fresh).all()
    loads = cache.shared.loads
    ig.generate("a green square", seed=5, dtype=default)  # the default dtype named: the loaded model serves it
    ig.generate("a green square", seed=5)
    assert cache.shared.loads == loads


def test_the_controlnet_cache_keeps_each_dtype_apart(pixels):
    from PIL import Image, ImageDraw

    sketch = Image.new("RGB", (64, 64), "black")
    ImageDraw.Draw(sketch).ellipse([16, 16, 48, 48], fill="white")
    ig.cache.clear()
    first = ig.control(sketch, "a red circle", seed=0)
    half = ig.control(sketch, "a red circle", seed=0, dtype="bfloat16")  # was a dtype-mismatch RuntimeError
    again = ig.control(sketch, "a red circle", seed=0)
    assert half.size == (64, 64) and (pixels(first) == pixels(again)).all()
    entry, pipe = cache.shared.pipeline(None, "control", controlnet="builtin:canny")
    assert pipe.controlnet.dtype == entry.base.unet.dtype
    assert ig.cache.info()["controlnets"] == ["tiny:builtin:canny"]  # the bfloat16 one went with its model


def test_evict_unloads_the_controlnets_only_that_model_used():
    from PIL import Image

    ig.cache.clear()
    ig.control(Image.new("RGB", (64, 64), "white"), "a red circle", seed=0, preprocess=False, kind="canny")
    assert ig.cache.info()["controlnets"] == ["tiny:builtin:canny"]
    assert ig.cache.evict(None)
    assert ig.cache.info() | {"device": None} == {"device": None, "dtype": devices.current().dtype,
                                                   "memory": devices.current().memory, "models": [],
                                                   "controlnets": [], "bytes": 0}
    assert cache.shared._controlnets == {}


def test_builtin_controlnet_ids_resolve_in_the_registry():
    from imagegen_nb import registry, tiny

    assert registry.resolve_controlnet("builtin:canny") == str(tiny.controlnet_path("canny"))
    assert registry.resolve_controlnet("lllyasviel/control_v11p_sd15_canny") == "lllyasviel/control_v11p_sd15_canny"
    from imagegen_nb.errors import ModelNotFoundError

    with pytest.raises(ModelNotFoundError, match="no 'depth' ControlNet; it ships builtin:canny"):
        registry.resolve_controlnet("builtin:depth")


def test_a_pipeline_added_by_hand_keeps_its_dtype_and_cannot_be_reloaded_in_another():
    import torch
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(ig.tiny.model_path(), dtype=torch.bfloat16)
    try:
        entry = ig.cache.add("my-shapes", pipe, family="tiny")
        assert entry.placement.dtype == cache.dtype_of(pipe) == "bfloat16"
        assert ig.generate("a red circle", model="my-shapes", seed=0, num_inference_steps=2).size == (64, 64)
        with pytest.raises(ValueError, match="put in the cache with ig.cache.add at bfloat16, so it cannot be loaded "
                                             "again at dtype='float32'"):
            ig.generate("a red circle", model="my-shapes", seed=0, dtype="float32")
        assert "my-shapes" in cache.shared  # still there, untouched
    finally:
        ig.cache.evict("my-shapes")


class _Unknown:
    """Looks like a pipeline to the cache's first check, but is of no family it knows."""

    components: dict = {}

    def set_progress_bar_config(self, **kwargs):
        pass


@pytest.mark.parametrize("call,error,message", [
    (lambda: ig.cache.evict(3), TypeError, "model must be None .* not int 3"),
    (lambda: ig.cache.add(None, object()), TypeError, "name must be a non-empty string, not NoneType"),
    (lambda: ig.cache.add("tiny", object()), ValueError, "'tiny' is the built-in model's"),
    (lambda: ig.cache.add("mine", object()), TypeError, "pipe must be a diffusers pipeline .* not object"),
    (lambda: ig.cache.add("mine", _Unknown()), ValueError, "cannot tell the family of a _Unknown; pass family="),
    (lambda: ig.cache.add("mine", _Unknown(), family="sd2"), ValueError,
     "family must be one of tiny, .*sd15, .* not 'sd2'"),
    (lambda: cache.shared.pipeline(None, "upscale"), ValueError,
     "task must be one of generate, edit, inpaint, control, not 'upscale'"),
    (lambda: cache.shared.pipeline(None, "control"), TypeError, "controlnet must be a Hub id, .* not NoneType"),
    (lambda: cache.shared.pipeline(None, "edit", controlnet="builtin:canny"), ValueError,
     "controlnet= is only for task='control', not task='edit'"),
    (lambda: cache.shared.entry(None, dtype="int8"), ValueError, "dtype must be float16, bfloat16 or float32"),
    (lambda: cache.shared.entry(None, dtype=16), TypeError, "dtype must be a string .* not int 16"),
    (lambda: cache.shared.entry(None, allow_pickle="yes"), TypeError, "allow_pickle must be True or False"),
    (lambda: cache.PipelineCache(budget_bytes=-1), ValueError, "budget_bytes must be None .* not -1"),
])
def test_public_functions_check_their_arguments_first(call, error, message):
    ig.cache.clear()
    loads = cache.shared.loads
    with pytest.raises(error, match=message):
        call()
    assert cache.shared.loads == loads and ig.cache.info()["models"] == []  # refused before loading anything
