"""Device, dtype and memory policy: the best device there is (CUDA, MPS, CPU) and a dtype it really supports.

>>> import imagegen_nb as ig
>>> ig.devices.current().device in ("cuda", "mps", "cpu")
True
"""

from __future__ import annotations

from dataclasses import dataclass

MEMORY_POLICIES = ("auto", "gpu", "offload", "sequential")


@dataclass(frozen=True)
class Placement:
    """Where models run: a torch device name, a dtype name, and the memory policy.

    `memory` is "auto" (CPU offload when a model would not fit in free GPU memory, as on a Colab T4 with SDXL),
    "gpu" (always whole on the GPU), "offload" (model CPU offload) or "sequential" (sequential CPU offload,
    slowest and smallest).
    """

    device: str
    dtype: str
    memory: str = "auto"

    @property
    def torch_dtype(self):
        import torch

        return getattr(torch, self.dtype)


_override: Placement | None = None


def best_device() -> str:
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def best_dtype(device: str) -> str:
    """fp16 on CUDA, bf16 where the GPU computes in it natively (compute capability 8.0+), fp32 on CPU.

    `torch.cuda.is_bf16_supported()` says True on a T4 (7.5), where bf16 is emulated and slow: hence the
    capability check.
    """
    if device.startswith("cuda"):
        import torch

        major, _ = torch.cuda.get_device_capability(device)
        return "bfloat16" if major >= 8 else "float16"
    if device == "mps":
        return "float16"
    return "float32"


def current() -> Placement:
    """The placement new models load with: the override from `set_device`, or the best there is."""
    if _override is not None:
        return _override
    device = best_device()
    return Placement(device, best_dtype(device))


def set_device(device: str | None = None, dtype: str | None = None, memory: str = "auto") -> Placement:
    """Choose where models load from now on (`None` restores automatic choice). Loaded models are not moved:
    call `ig.cache.clear()` to reload them.

    >>> import imagegen_nb as ig
    >>> ig.set_device("cpu").dtype
    'float32'
    >>> _ = ig.set_device(None)
    """
    global _override
    if memory not in MEMORY_POLICIES:
        raise ValueError(f"memory must be one of {', '.join(MEMORY_POLICIES)}, not {memory!r}")
    if device is None and dtype is None and memory == "auto":
        _override = None
        return current()
    device = device or best_device()
    dtype = _dtype_name(dtype) if dtype is not None else best_dtype(device)
    _override = Placement(device, dtype, memory)
    return _override


def _dtype_name(dtype) -> str:
    name = str(dtype).removeprefix("torch.")
    aliases = {"fp16": "float16", "half": "float16", "bf16": "bfloat16", "fp32": "float32", "float": "float32"}
    name = aliases.get(name, name)
    if name not in ("float16", "bfloat16", "float32"):
        raise ValueError(f"dtype must be float16, bfloat16 or float32, not {dtype!r}")
    return name


def free_gpu_bytes(device: str) -> int | None:
    if not device.startswith("cuda"):
        return None
    import torch

    free, _ = torch.cuda.mem_get_info(device)
    return free
