"""The shared pipeline cache: load once, share weights across tasks, evict least recently used, pick devices."""

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
    assert tiny["bytes"] == sum(p.numel() * p.element_size() for m in (entry.base.unet, entry.base.vae,
                                                                        entry.base.text_encoder)
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
    pixart = str(testing.make_tiny_model("pixart_sigma", tmp_path / "pixart"))
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


@pytest.mark.parametrize("capability,expected", [((7, 5), "float16"), ((8, 0), "bfloat16"), ((9, 0), "bfloat16")])
def test_cuda_dtype_follows_compute_capability(monkeypatch, capability, expected):
    import torch

    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert devices.best_dtype("cuda") == expected
    assert devices.best_dtype("cpu") == "float32"


def test_set_device_overrides_and_validates():
    try:
        p = ig.set_device("cpu", dtype="bf16", memory="offload")
        assert (p.device, p.dtype, p.memory) == ("cpu", "bfloat16", "offload")
        assert devices.current() == p
        with pytest.raises(ValueError, match="dtype must be float16, bfloat16 or float32"):
            ig.set_device("cpu", dtype="int8")
        with pytest.raises(ValueError, match="memory must be one of auto, gpu, offload, sequential"):
            ig.set_device("cpu", memory="swap")
    finally:
        ig.set_device(None)
    assert devices.current().device == devices.best_device()


class _FakePipe:
    def __init__(self):
        self.calls = []

    def enable_model_cpu_offload(self, device=None):
        self.calls.append(("offload", device))

    def enable_sequential_cpu_offload(self, device=None):
        self.calls.append(("sequential", device))

    def to(self, device):
        self.calls.append(("to", device))


@pytest.mark.parametrize("free,nbytes,expected", [(15 * 2**30, 7 * 2**30, "to"), (15 * 2**30, 13 * 2**30, "offload")])
def test_auto_memory_policy_offloads_models_that_do_not_fit(monkeypatch, free, nbytes, expected):
    monkeypatch.setattr(devices, "free_gpu_bytes", lambda device: free)
    pipe = _FakePipe()
    offloaded = cache._place(pipe, devices.Placement("cuda", "float16", "auto"), nbytes)
    assert pipe.calls == [(expected, "cuda")] and offloaded == (expected == "offload")


def test_dtype_argument_reloads_in_that_precision():
    import torch

    a = np.asarray(ig.generate("a green square", seed=5))
    b = ig.generate("a green square", seed=5, dtype="bfloat16")
    assert cache.shared.entry(None).base.unet.dtype == torch.bfloat16
    assert len(ig.cache.info()["models"]) >= 1 and ig.recipe(b)["seed"] == 5
    c = np.asarray(ig.generate("a green square", seed=5, dtype="float32"))
    assert cache.shared.entry(None).base.unet.dtype == torch.float32
    assert (a == c).all()
