"""Device, dtype and memory policy: the choices made, and the errors for devices and settings that are not there."""

from __future__ import annotations

import pytest
import torch

import imagegen_nb as ig
from imagegen_nb import cache, devices

GB = 2**30


@pytest.fixture(autouse=True)
def automatic_device_afterwards():
    yield
    ig.set_device(None)


@pytest.mark.parametrize("capability,expected", [((7, 5), "float16"), ((8, 0), "bfloat16"), ((9, 0), "bfloat16")])
def test_cuda_dtype_follows_compute_capability(monkeypatch, capability, expected):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert devices.best_dtype("cuda") == expected
    assert devices.best_dtype("cpu") == "float32"


def test_set_device_overrides_and_validates():
    p = ig.set_device("cpu", dtype="bf16", memory="offload")
    assert (p.device, p.dtype, p.memory) == ("cpu", "bfloat16", "offload")
    assert devices.current() == p
    assert ig.set_device("CPU", dtype=torch.float32).dtype == "float32"
    with pytest.raises(ValueError, match="dtype must be float16, bfloat16 or float32"):
        ig.set_device("cpu", dtype="int8")
    with pytest.raises(ValueError, match="memory must be one of auto, gpu, offload, sequential, not 'swap'"):
        ig.set_device("cpu", memory="swap")
    ig.set_device(None)
    assert devices.current().device == devices.best_device()


@pytest.mark.parametrize("kwargs,error,message", [
    ({"device": 0}, TypeError, "device must be a string .* not int 0"),
    ({"device": "gpu"}, ValueError, "device must be 'cpu', 'cuda', 'cuda:N' or 'mps', not 'gpu'; available here: "),
    ({"device": "cpu:1"}, ValueError, "not 'cpu:1'"),
    ({"device": "cuda:x"}, ValueError, "not 'cuda:x'"),
    ({"device": "cpu", "dtype": 16}, TypeError, "dtype must be a string .* not int 16"),
    ({"device": "cpu", "memory": None}, TypeError, "memory must be one of auto, gpu, offload, sequential, not "
                                                   "NoneType"),
])
def test_bad_arguments_name_the_argument_value_and_choices(kwargs, error, message):
    before = devices.current()
    with pytest.raises(error, match=message):
        ig.set_device(**kwargs)
    assert devices.current() == before  # nothing changed


def test_a_device_this_machine_lacks_is_a_clear_error_naming_what_is_there(monkeypatch):
    if torch.cuda.is_available():  # pragma: no cover - the GPU case is tested by faking a CPU-only machine
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert devices.available_devices() == ["cpu"]
    monkeypatch.setattr(torch.version, "cuda", None)
    with pytest.raises(RuntimeError, match=r"built without CUDA\. Available here: 'cpu'\. Install a CUDA build"):
        ig.set_device("cuda")
    monkeypatch.setattr(torch.version, "cuda", "12.8")  # a CUDA build on a machine without a visible GPU
    monkeypatch.setattr(torch.backends.cuda, "is_built", lambda: True)
    with pytest.raises(RuntimeError, match="has CUDA support but sees no GPU .* Available here: 'cpu'"):
        ig.set_device("cuda:0")
    with pytest.raises(RuntimeError, match="device 'mps' is not available: .* Available here: 'cpu'"):
        ig.set_device("mps")
    assert devices.current().device == "cpu"


def test_a_gpu_index_past_the_last_gpu_is_refused(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(torch.backends.cuda, "is_built", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert devices.check_device("cuda:1") == "cuda:1"
    with pytest.raises(ValueError, match=r"'cuda:2' does not exist: this machine has 2 CUDA devices \(cuda:0 to "
                                         r"cuda:1\); available here: 'cuda:0', 'cuda:1'"):
        devices.check_device("cuda:2")


@pytest.mark.parametrize("model,largest,free,expected", [
    (7 * GB, 5 * GB, 15 * GB, "gpu"),           # SDXL in fp16 on a T4: fits whole
    (20 * GB, 12 * GB, 15 * GB, "sequential"),  # 12 GB x 1.3 of activations room does not fit 15 GB either
    (20 * GB, 10 * GB, 15 * GB, "offload"),     # too big whole, but its largest part fits: model offload
    (33 * GB, 24 * GB, 15 * GB, "sequential"),  # FLUX.1 on a T4: its transformer alone is 24 GB in fp16
    (33 * GB, 24 * GB, 80 * GB, "gpu"),         # FLUX.1 on an 80 GB GPU
    (33 * GB, 24 * GB, None, "gpu"),            # no free-memory reading (MPS): whole on the device
])
def test_auto_memory_policy_decision(model, largest, free, expected):
    assert devices.choose_memory(model, largest, free) == expected


def test_auto_memory_policy_decision_edges():
    # exactly at the headroom it still fits; one byte of free memory less and it does not
    assert devices.choose_memory(10, 5, 13) == "gpu"
    assert devices.choose_memory(10, 5, 12) == "offload"
    assert devices.choose_memory(10, 10, 12) == "sequential"


class _Part(torch.nn.Module):
    def __init__(self, n: int):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(n, dtype=torch.float16), requires_grad=False)


class _FakePipe:
    """What `_place` uses of a pipeline: its components and the three ways of putting it on a GPU."""

    def __init__(self, *sizes: int):
        self.components = {f"part{i}": _Part(n) for i, n in enumerate(sizes)}
        self.calls = []

    def enable_model_cpu_offload(self, device=None):
        self.calls.append(("offload", device))

    def enable_sequential_cpu_offload(self, device=None):
        self.calls.append(("sequential", device))

    def to(self, device):
        self.calls.append(("to", device))


@pytest.mark.parametrize("free,expected", [(100, "to"), (60, "offload"), (30, "sequential")])
def test_auto_memory_policy_places_by_the_decision(monkeypatch, free, expected):
    """Parts of 20, 10 and 40 bytes (fp16 elements): 70 bytes whole x 1.3 = 91; the largest, 40 x 1.3 = 52."""
    monkeypatch.setattr(devices, "free_gpu_bytes", lambda device: free)
    pipe = _FakePipe(10, 5, 20)
    assert cache._largest_part_bytes(pipe) == 40
    offloaded = cache._place(pipe, devices.Placement("cuda", "float16", "auto"), cache.param_bytes(
        *pipe.components.values()))
    assert pipe.calls == [(expected, "cuda")] and offloaded == (expected != "to")


@pytest.mark.parametrize("memory,expected", [("gpu", "to"), ("offload", "offload"), ("sequential", "sequential")])
def test_explicit_memory_policies_are_obeyed(monkeypatch, memory, expected):
    monkeypatch.setattr(devices, "free_gpu_bytes", lambda device: 1)
    pipe = _FakePipe(10)
    cache._place(pipe, devices.Placement("cuda:1", "float16", memory), 20)
    assert pipe.calls == [(expected, "cuda:1")]
    cpu = _FakePipe(10)
    assert cache._place(cpu, devices.Placement("cpu", "float32", memory), 20) is False and cpu.calls == []


def test_cpu_calls_of_a_small_model_run_on_one_thread_and_restore_torchs_count():
    import torch

    seen = []
    before = torch.get_num_threads()
    ig.generate("a red circle", seed=0, num_inference_steps=2, progress=False,
                run=ig.Run(on_step=lambda run, step: seen.append(torch.get_num_threads())))
    assert seen == [1, 1] and torch.get_num_threads() == before
    try:
        ig.set_threads(2)
        seen.clear()
        ig.generate("a red circle", seed=0, num_inference_steps=2, progress=False,
                    run=ig.Run(on_step=lambda run, step: seen.append(torch.get_num_threads())))
        assert seen == [2, 2] and torch.get_num_threads() == before
    finally:
        ig.set_threads(None)
    assert devices.cpu_threads(devices.SMALL_MODEL_BYTES) is None  # a large model keeps torch's own count
    assert devices.cpu_threads(10**6) == 1
    with pytest.raises(ValueError, match="n must be at least 1"):
        ig.set_threads(0)


def test_compile_puts_the_denoiser_through_torch_compile_with_the_same_pixels():
    import numpy as np

    def picture():
        return np.asarray(ig.generate("a red circle", seed=0, num_inference_steps=3, progress=False))

    torch.set_num_threads(1)
    cache.clear()
    plain = picture()
    assert getattr(cache.shared.entry(None).base.unet, "_compiled_call_impl", None) is None
    # the "eager" backend runs the graph torch.compile captures without generating kernels: the wiring, quickly
    assert ig.set_device("cpu", compile="eager").compile == "eager"
    cache.clear()
    try:
        compiled = picture()
        unet = cache.shared.entry(None).base.unet
        assert unet._compiled_call_impl is not None
        assert cache.shared.pipeline(None, "edit")[1].unet is unet  # the task pipelines share the compiled UNet
        assert cache.shared.entry(None, dtype="float32").placement.compile == "eager"
        assert np.array_equal(plain, compiled)
    finally:
        ig.set_device(None)
        cache.clear()
    assert ig.set_device("cpu", compile=True).compile == "inductor"
    assert ig.set_device(None).compile is None


def test_compile_mistakes_are_named():
    with pytest.raises(ValueError, match="compile= backend 'inductr'; did you mean 'inductor'"):
        ig.set_device("cpu", compile="inductr")
    with pytest.raises(TypeError, match="compile must be True, False or a torch.compile backend"):
        ig.set_device("cpu", compile=1)
    assert devices.current().compile is None  # nothing changed
