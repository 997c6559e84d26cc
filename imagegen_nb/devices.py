"""Device, dtype and memory policy: the best device there is (CUDA, MPS, CPU) and a dtype it really supports.

>>> import imagegen_nb as ig
>>> ig.devices.current().device in ("cuda", "mps", "cpu")
True
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass

log = logging.getLogger(__name__)

MEMORY_POLICIES = ("auto", "gpu", "offload", "sequential")


@dataclass(frozen=True)
class Placement:
    """Where models run: a torch device name, a dtype name, and the memory policy.

    `memory` is "auto" (`choose_memory`: whole on the GPU when the model fits its free memory, model CPU offload
    when only its largest component does, sequential CPU offload when not even that does), "gpu" (always whole on
    the GPU), "offload" (model CPU offload) or "sequential" (sequential CPU offload, slowest and smallest).
    `compile` is the `torch.compile` backend the denoiser is compiled with as it loads ("inductor"), or None.
    """

    device: str
    dtype: str
    memory: str = "auto"
    compile: str | None = None

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


def available_devices() -> list[str]:
    """The devices this machine and this torch build can run on, best first ("cuda:0", ..., "mps", "cpu").

    >>> available_devices()[-1]
    'cpu'
    """
    import torch

    found = [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        found.append("mps")
    return found + ["cpu"]


def check_device(device) -> str:
    """The device name for `device` ("cpu", "mps", "cuda" or "cuda:N", or a `torch.device`) if this machine has it;
    a `TypeError` for another type, a `ValueError` for an unknown name, a `RuntimeError` saying what is available
    and what to change when the device is not there."""
    import torch

    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise TypeError(f"device must be a string such as 'cuda', 'cuda:1', 'mps' or 'cpu' (or None for the best "
                        f"there is), not {type(device).__name__} {device!r}")
    name = device.strip().lower()
    kind, _, index = name.partition(":")
    here = ", ".join(repr(d) for d in available_devices())
    if kind not in ("cpu", "cuda", "mps") or (index and (kind != "cuda" or not index.isdigit())):
        raise ValueError(f"device must be 'cpu', 'cuda', 'cuda:N' or 'mps', not {device!r}; available here: {here}")
    if kind == "cuda":
        if torch.version.cuda is None or not torch.backends.cuda.is_built():
            raise RuntimeError(
                f"device {device!r} is not available: this torch ({torch.__version__}) was built without CUDA. "
                f"Available here: {here}. Install a CUDA build of torch (https://pytorch.org/get-started/locally/), "
                "or use set_device('cpu') or set_device(None) for the best device there is.")
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise RuntimeError(
                f"device {device!r} is not available: torch has CUDA support but sees no GPU (check the driver, "
                f"CUDA_VISIBLE_DEVICES, or pick a GPU runtime). Available here: {here}; set_device(None) picks the "
                "best of them.")
        if index and int(index) >= count:
            raise ValueError(f"device {device!r} does not exist: this machine has {count} CUDA "
                             f"device{'s' if count > 1 else ''} (cuda:0 to cuda:{count - 1}); available here: {here}")
    if kind == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            why = ("this torch was built without MPS" if mps is None or not mps.is_built()
                   else "MPS needs an Apple-silicon Mac with macOS 12.3 or later")
            raise RuntimeError(f"device 'mps' is not available: {why}. Available here: {here}; "
                               "set_device(None) picks the best of them.")
    return name


def check_dtype(dtype) -> str:
    """The dtype name ("float16", "bfloat16" or "float32") for a name, an alias ("fp16", "bf16", "fp32", "half") or
    a `torch.dtype`; a `TypeError` for another type, a `ValueError` for another dtype.

    >>> check_dtype("bf16")
    'bfloat16'
    """
    if not isinstance(dtype, str) and type(dtype).__name__ != "dtype":
        raise TypeError(f"dtype must be a string such as 'float16', 'bfloat16' or 'float32' (or a torch.dtype), "
                        f"not {type(dtype).__name__} {dtype!r}")
    return _dtype_name(dtype)


def check_memory(memory) -> str:
    """`memory` if it is one of the memory policies; a `TypeError` or `ValueError` naming them if not."""
    if not isinstance(memory, str):
        raise TypeError(f"memory must be one of {', '.join(MEMORY_POLICIES)}, not {type(memory).__name__} {memory!r}")
    if memory not in MEMORY_POLICIES:
        raise ValueError(f"memory must be one of {', '.join(MEMORY_POLICIES)}, not {memory!r}")
    return memory


def set_device(device: str | None = None, dtype: str | None = None, memory: str = "auto",
               compile: bool | str = False) -> Placement:
    """Choose where models load from now on (`None` restores automatic choice). Loaded models are not moved:
    call `ig.cache.clear()` to reload them.

    `compile=True` is the fast path: each model loaded from then on has its denoiser (UNet or transformer) put
    through `torch.compile` (the "inductor" backend; a string names another backend of
    `torch._dynamo.list_backends()`). The first call of each new shape compiles, which takes minutes on a CPU, and
    later calls reuse the kernels; a LoRA or a ControlNet changes the graph and compiles again.
    `python benchmarks/compile.py` measures whether it pays on your machine: on a busy 2-core CPU with one thread
    the built-in model made a picture in 0.74x to 0.89x the eager time (two runs), after a first picture of 2.5
    minutes (12 s when inductor found its kernels in its on-disk cache), the pixels within 1 of 255.

    Every argument is checked before anything changes: a device this machine does not have is a `RuntimeError`
    that lists the devices it has.

    >>> import imagegen_nb as ig
    >>> ig.set_device("cpu").dtype
    'float32'
    >>> _ = ig.set_device(None)
    """
    global _override
    device = None if device is None else check_device(device)
    dtype = None if dtype is None else check_dtype(dtype)
    memory = check_memory(memory)
    backend = check_compile(compile)
    if device is None and dtype is None and memory == "auto" and backend is None:
        _override = None
        return current()
    device = device or best_device()
    _override = Placement(device, dtype or best_dtype(device), memory, backend)
    return _override


def check_compile(compile) -> str | None:
    """The `torch.compile` backend `compile` asks for: None for False, "inductor" for True, or a backend name.

    >>> check_compile(True), check_compile(False)
    ('inductor', None)
    """
    if compile is None or compile is False:
        return None
    if compile is True:
        return "inductor"
    if not isinstance(compile, str):
        raise TypeError(f"compile must be True, False or a torch.compile backend name such as 'inductor', not "
                        f"{type(compile).__name__} {compile!r}")
    import torch

    from .arguments import choice

    if compile in torch._dynamo.list_backends(exclude_tags=()):  # debugging backends included
        return compile
    return choice("compile", compile, tuple(torch._dynamo.list_backends()), what="compile= backend")


def compile_denoiser(pipe, backend: str) -> None:
    """Compile the pipeline's denoiser in place (`nn.Module.compile`): its weights, and the pipelines that share
    them through `from_pipe`, stay the same objects."""
    for name in ("unet", "transformer"):
        module = getattr(pipe, name, None)
        if module is not None:
            module.compile(backend=backend)
            log.info("%s compiled with torch.compile(backend=%r): its first call of each shape compiles", name,
                     backend)


def _dtype_name(dtype) -> str:
    name = str(dtype).removeprefix("torch.")
    aliases = {"fp16": "float16", "half": "float16", "bf16": "bfloat16", "fp32": "float32", "float": "float32"}
    name = aliases.get(name, name)
    if name not in ("float16", "bfloat16", "float32"):
        raise ValueError(f"dtype must be float16, bfloat16 or float32 (or fp16, bf16, fp32), not {dtype!r}")
    return name


def free_gpu_bytes(device: str) -> int | None:
    if not device.startswith("cuda"):
        return None
    import torch

    free, _ = torch.cuda.mem_get_info(device)
    return free


HEADROOM = 1.3  # weights times this must fit the free memory: room for activations beside them


def choose_memory(model_bytes: int, largest_part_bytes: int, free_bytes: int | None) -> str:
    """What the "auto" memory policy does with a model of `model_bytes` of weights whose largest component (text
    encoder, denoiser, VAE) has `largest_part_bytes`, given `free_bytes` of free GPU memory (None: not a GPU whose
    free memory can be read, such as MPS).

    "gpu" when the whole model fits with room for activations; else "offload" (model CPU offload: one component
    on the GPU at a time) when its largest component fits so; else "sequential" (layer by layer), as FLUX.1 on a
    16 GB T4 needs, whose 12-billion-parameter transformer alone is 24 GB in fp16.

    >>> GB = 2**30
    >>> [choose_memory(7 * GB, 5 * GB, 15 * GB), choose_memory(20 * GB, 10 * GB, 15 * GB),
    ...  choose_memory(33 * GB, 24 * GB, 15 * GB)]
    ['gpu', 'offload', 'sequential']
    """
    if free_bytes is None or model_bytes * HEADROOM <= free_bytes:
        return "gpu"
    if largest_part_bytes * HEADROOM <= free_bytes:
        return "offload"
    return "sequential"


def memory_budget(device: str, held_bytes: int) -> int:
    """How many bytes of weights the cache may hold on `device`: 90% of the GPU's free memory plus what the cache
    already holds there (`held_bytes`), or half the machine's RAM on a CPU or a GPU whose free memory cannot be
    read."""
    import os

    free = free_gpu_bytes(device)
    if free is not None:
        return int(0.9 * (free + held_bytes))
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * 0.5)
    except (ValueError, OSError, AttributeError):
        return 1 << 62


def place(pipe, placement: Placement, model_bytes: int, largest_part_bytes: int) -> bool:
    """Move a pipeline to its device, or turn on CPU offload where the memory policy says so (see `choose_memory`
    for "auto"); True if offloaded. On the CPU nothing moves.

    >>> place(object(), Placement("cpu", "float32"), 0, 0)
    False
    """
    if placement.compile is not None:
        compile_denoiser(pipe, placement.compile)
    if placement.device == "cpu":
        return False
    policy = placement.memory
    if policy == "auto":
        policy = choose_memory(model_bytes, largest_part_bytes, free_gpu_bytes(placement.device))
        if policy != "gpu":
            log.info("%.1f GB of weights do not fit the free memory of %s whole: %s CPU offload",
                     model_bytes / 2**30, placement.device, "model" if policy == "offload" else "sequential")
    if policy == "offload":
        pipe.enable_model_cpu_offload(device=placement.device)
        return True
    if policy == "sequential":
        pipe.enable_sequential_cpu_offload(device=placement.device)
        return True
    pipe.to(placement.device)
    return False


# -- CPU threads ------------------------------------------------------------------------------------------------
# A small model gains nothing from a second thread (the built-in model: 0.83 s a picture on one thread, 0.88 s on
# two, idle 2-core machine), and loses badly when another process holds a core: torch's threads wait for each
# other at every operation, and one picture took 30-40 s on two threads against about 1 s on one
# (benchmarks/threads.py measures both cases on the machine at hand). Large models do gain from more threads.
SMALL_MODEL_BYTES = 256 * 2**20  # weights below this run CPU calls on one thread
_threads: int | None = None  # the user's choice (set_threads), for every CPU call


def set_threads(n: int | None) -> None:
    """The number of CPU threads pipeline calls use from now on (`None` restores the automatic choice: one
    thread for small models such as the built-in ones, torch's own count for larger ones). Only the calls
    change it, for their duration; torch's setting outside them is left as it was.

    >>> import imagegen_nb as ig
    >>> ig.devices.set_threads(2); ig.devices.cpu_threads(model_bytes=10**6)
    2
    >>> ig.devices.set_threads(None); ig.devices.cpu_threads(model_bytes=10**6)
    1
    """
    global _threads
    if n is not None:
        import os

        from .arguments import integer

        n = integer("n", n, low=1, high=max(1, os.cpu_count() or 1) * 4)
    _threads = n


def cpu_threads(model_bytes: int) -> int | None:
    """Threads for a CPU pipeline call of a model with `model_bytes` of weights: the user's choice
    (`set_threads`), else one for a small model, else None (torch's own count)."""
    if _threads is not None:
        return _threads
    return 1 if model_bytes < SMALL_MODEL_BYTES else None


@contextmanager
def threads_for(placement: Placement, model_bytes: int):
    """Run the body with the CPU thread count `cpu_threads` chooses when the model is on the CPU, then restore
    torch's count."""
    import torch

    n = cpu_threads(model_bytes) if placement.device == "cpu" else None
    before = torch.get_num_threads()
    if n is None or n == before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
