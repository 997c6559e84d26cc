"""The shared pipeline cache: each model loads once; its text-to-image, image-to-image, inpainting and ControlNet
pipelines are derived from it with `AutoPipelineFor*.from_pipe`, so they hold the very same weights.

>>> import imagegen_nb as ig
>>> _ = ig.generate("a red circle", seed=0)
>>> "tiny" in [m["model"] for m in ig.cache.info()["models"]]
True
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from . import devices, registry
from .errors import ModelNotFoundError

log = logging.getLogger(__name__)

@dataclass
class Entry:
    """One loaded model: its base pipeline and the task pipelines derived from it."""

    name: str  # what the user called it ("tiny", a Hub id or a folder)
    location: str
    family: registry.Family
    base: Any
    placement: devices.Placement
    offloaded: bool = False
    pipelines: dict[tuple[str, str | None], Any] = field(default_factory=dict)  # (task, controlnet) -> pipeline
    nbytes: int = 0
    per_call: bool = False  # loaded for one call's dtype=: the next call without that dtype reloads the default
    added: bool = False  # put in with `add`: the user's own pipeline, which the cache cannot load again
    controlnets: set[tuple[str, str, str, str]] = field(default_factory=set)  # keys of the ControlNets it uses
    # LoRAs loaded into its modules (adapter name -> weights file; see adapters.py): they live in the base's modules,
    # so evicting the model drops them with it
    loras: dict[str, Path] = field(default_factory=dict)
    # IP-Adapters loaded for style= (as named -> style.Loaded): installed in the UNet for a call only
    ip_adapters: dict[str, Any] = field(default_factory=dict)


def dtype_of(pipe) -> str:
    """The dtype a pipeline runs at, as a name ("float32", "float16", "bfloat16"): its denoiser's (the UNet or
    transformer, whose arithmetic every step goes through), else the pipeline's. A recipe records it, since the
    same seed gives other pixels at another dtype.

    >>> import imagegen_nb as ig
    >>> entry, pipe = ig.cache.shared.pipeline(None, "generate")
    >>> dtype_of(pipe) == ig.devices.current().dtype
    True
    """
    denoiser = getattr(pipe, "unet", None)
    if denoiser is None:
        denoiser = getattr(pipe, "transformer", None)
    dtype = denoiser.dtype if denoiser is not None else pipe.dtype
    return str(dtype).removeprefix("torch.")


def _model_name(model, argument: str = "model") -> str:
    """The cache's name for `model` (None: the built-in one); a TypeError for anything but None, a string or a
    path."""
    if model is None:
        return registry.BUILTIN
    if isinstance(model, os.PathLike):
        return os.fspath(model)
    if not isinstance(model, str) or not model:
        raise TypeError(f"{argument} must be None (the built-in model), a Hub id or a local path, not "
                        f"{type(model).__name__} {model!r}")
    return model


def _check_task(task) -> str:
    if not isinstance(task, str) or task not in registry.TASKS:
        raise ValueError(f"task must be one of {', '.join(registry.TASKS)}, not {task!r}")
    return task


def param_bytes(*modules) -> int:
    seen, total = set(), 0
    for m in modules:
        for p in m.parameters() if hasattr(m, "parameters") else []:
            if p.data_ptr() not in seen:
                seen.add(p.data_ptr())
                total += p.numel() * p.element_size()
    return total


def _pipe_modules(pipe) -> list:
    import torch

    return [c for c in pipe.components.values() if isinstance(c, torch.nn.Module)]


@contextmanager
def quiet_diffusers():
    """Loading logs warnings meant for pipeline authors (e.g. that a T5 encoder is not CLIP); keep notebooks clean."""
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    levels = dlog.get_verbosity(), tlog.get_verbosity()
    bars = dlog.is_progress_bar_enabled(), tlog.is_progress_bar_enabled()
    dlog.set_verbosity_error()
    tlog.set_verbosity_error()
    dlog.disable_progress_bar()
    tlog.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", UserWarning)
            yield
    finally:
        dlog.set_verbosity(levels[0])
        tlog.set_verbosity(levels[1])
        if bars[0]:
            dlog.enable_progress_bar()
        if bars[1]:
            tlog.enable_progress_bar()


class PipelineCache:
    """Loaded models, least recently used first; the lock serializes runs (widgets call from a thread)."""

    def __init__(self, budget_bytes: int | None = None):
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        # (family, ControlNet id, dtype, device) -> ControlNet; a ControlNet of one precision never serves another
        self._controlnets: dict[tuple[str, str, str, str], Any] = {}
        if budget_bytes is not None and (isinstance(budget_bytes, bool) or not isinstance(budget_bytes, int)
                                         or budget_bytes <= 0):
            raise ValueError(f"budget_bytes must be None (90% of free GPU memory, or half the RAM on CPU) or a "
                             f"positive number of bytes, not {budget_bytes!r}")
        self.lock = threading.RLock()
        self.budget_bytes = budget_bytes  # None: 90% of free GPU memory, or half the RAM on CPU
        self.loads = 0  # how many models were loaded from disk (benchmarks check a warm cache loads nothing)

    # -- public ----------------------------------------------------------------------------------------------
    def info(self) -> dict:
        """Models and task pipelines loaded, device, dtype and bytes of parameters."""
        with self.lock:
            placement = devices.current()
            return {
                "device": placement.device, "dtype": placement.dtype, "memory": placement.memory,
                "models": [{"model": e.name, "family": e.family.name, "device": e.placement.device,
                            "dtype": e.placement.dtype, "offloaded": e.offloaded, "bytes": e.nbytes,
                            "pipelines": [t if cn is None else f"{t}+{cn}" for t, cn in e.pipelines],
                            "loras": [str(f) for f in e.loras.values()]}
                           for e in self._entries.values()],
                "controlnets": [f"{fam}:{cid}" for fam, cid, _, _ in self._controlnets],
                "bytes": sum(e.nbytes for e in self._entries.values()),
            }

    def clear(self) -> None:
        """Unload every model (frees their memory)."""
        with self.lock:
            self._entries.clear()
            self._controlnets.clear()
            free_memory()

    def evict(self, model: str | None) -> bool:
        """Unload one model (None: the built-in one) and the ControlNets no other loaded model uses; True if it
        was loaded."""
        name = _model_name(model)
        with self.lock:
            found = self._drop(name)
            if found:
                free_memory()
            return found

    def _drop(self, name: str) -> bool:
        """Forget one model and the ControlNets only it used (the memory is freed by the caller)."""
        entry = self._entries.pop(name, None)
        if entry is None:
            return False
        used = set().union(*(e.controlnets for e in self._entries.values()))
        for key in entry.controlnets - used:
            self._controlnets.pop(key, None)
        return True

    def add(self, name: str, pipe, *, family: str | None = None) -> Entry:
        """Put a pipeline you built yourself (e.g. with a LoRA loaded) in the cache under `name`, so the task
        functions use it with `model=name`. Its family is guessed from its class unless given. It keeps the dtype
        it has (see `dtype_of`): a call that asks for another dtype is an error, as the cache cannot load it again."""
        if not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty string, not {type(name).__name__} {name!r}")
        if name == registry.BUILTIN:
            raise ValueError(f"name {name!r} is the built-in model's; choose another name")
        if not (hasattr(pipe, "components") and hasattr(pipe, "set_progress_bar_config")):
            raise TypeError(f"pipe must be a diffusers pipeline (a DiffusionPipeline), not {type(pipe).__name__}")
        if family is None:
            family = registry.family_of_class(type(pipe).__name__)
            if family is None:
                raise ValueError(f"cannot tell the family of a {type(pipe).__name__}; pass family= one of "
                                 f"{', '.join(registry.FAMILIES)}")
        elif not isinstance(family, str) or family not in registry.FAMILIES:
            raise ValueError(f"family must be one of {', '.join(registry.FAMILIES)}, not {family!r}")
        fam = registry.FAMILIES[family]
        current = devices.current()
        placement = replace(current, dtype=dtype_of(pipe))
        with self.lock:
            self._drop(name)
            entry = self._new_entry(name, name, fam, pipe, placement, added=True)
            self._entries[name] = entry
            registry.register(name, fam)
            return entry

    def family_of(self, pipe) -> str | None:
        """The registry family of a pipeline this cache holds (a model's or one of its task pipelines), else None."""
        with self.lock:
            for entry in self._entries.values():
                if any(p is pipe for p in entry.pipelines.values()):
                    return entry.family.name
        return None

    def controlnets(self, model) -> list:
        """The ControlNet models loaded for `model` (None: the built-in model)."""
        entry = self._entries.get(registry.BUILTIN if model is None else str(model))
        keys = [] if entry is None else entry.controlnets
        return [self._controlnets[key] for key in keys if key in self._controlnets]

    def __contains__(self, model) -> bool:
        return _model_name(model) in self._entries

    # -- used by the task functions --------------------------------------------------------------------------
    def entry(self, model, *, dtype=None, allow_pickle: bool = False) -> Entry:
        """The loaded model `model` (None: the built-in one), loading it if needed.

        `dtype=None` is the default dtype (`devices.current()`); another dtype reloads the model in it for this
        call (one copy per model, not two), and the next call without that dtype loads the default again, so a
        per-call dtype never changes later calls.
        """
        name = _model_name(model)
        wanted = None if dtype is None else devices.check_dtype(dtype)
        if not isinstance(allow_pickle, bool):
            raise TypeError(f"allow_pickle must be True or False, not {allow_pickle!r}")
        with self.lock:
            entry = self._entries.get(name)
            if entry is not None:
                if entry.added:
                    if wanted is not None and wanted != entry.placement.dtype:
                        raise ValueError(
                            f"{name!r} was put in the cache with ig.cache.add at {entry.placement.dtype}, so it "
                            f"cannot be loaded again at dtype={wanted!r}; call without dtype=, or add a copy "
                            f"converted to {wanted} under another name")
                    self._entries.move_to_end(name)
                    return entry
                target = wanted or devices.current().dtype
                if entry.placement.dtype == target or (wanted is None and not entry.per_call):
                    entry.per_call = entry.per_call and wanted is not None
                    self._entries.move_to_end(name)
                    return entry
                self._drop(name)  # another precision: reload rather than keep two copies
                free_memory()
            entry = self._load(name, dtype=wanted, allow_pickle=allow_pickle)
            entry.per_call = wanted is not None and wanted != devices.current().dtype
            self._entries[name] = entry
            return entry

    def pipeline(self, model, task: str, *, controlnet: str | None = None, dtype=None, allow_pickle=False):
        """The pipeline of `model` for `task` ("generate", "edit", "inpaint", "control"), derived once and kept.
        `controlnet` (a Hub id, a folder or a "builtin:" id) is needed for "control" and refused for the others."""
        _check_task(task)
        if task == "control":
            if isinstance(controlnet, os.PathLike):
                controlnet = os.fspath(controlnet)
            if not isinstance(controlnet, str) or not controlnet:
                raise TypeError(f"controlnet must be a Hub id, a local folder or a 'builtin:' id for task='control', "
                                f"not {type(controlnet).__name__} {controlnet!r}")
        elif controlnet is not None:
            raise ValueError(f"controlnet= is only for task='control', not task={task!r} (got {controlnet!r})")
        entry = self.entry(model, dtype=dtype, allow_pickle=allow_pickle)
        entry.family.check_task(task)
        key = (task, controlnet)
        with self.lock:
            if key not in entry.pipelines:
                entry.pipelines[key] = self._derive(entry, task, controlnet)
            return entry, entry.pipelines[key]

    # -- loading ---------------------------------------------------------------------------------------------
    def _load(self, name: str, *, dtype, allow_pickle: bool) -> Entry:
        location, family = registry.resolve(None if name == registry.BUILTIN else name, allow_pickle=allow_pickle)
        placement = devices.current()
        if dtype is not None:
            placement = replace(placement, dtype=devices.check_dtype(dtype))
        kwargs: dict[str, Any] = {"dtype": placement.torch_dtype}
        if not allow_pickle:
            kwargs["use_safetensors"] = True
        try:
            with quiet_diffusers():
                from diffusers import DiffusionPipeline

                if Path(location).is_file():
                    cls = getattr(__import__("diffusers"), family.pipeline)
                    pipe = cls.from_single_file(location, **kwargs)
                else:
                    pipe = DiffusionPipeline.from_pretrained(location, **kwargs)
        except (OSError, ValueError) as err:
            if Path(location).exists():
                raise ModelNotFoundError(f"could not load {name!r} from {location}: {err}") from err
            raise ModelNotFoundError(registry.no_download_message(name, err)) from None
        self.loads += 1
        entry = self._new_entry(name, location, family, pipe, placement)
        log.info("loaded %s (%s, %.1f MB) on %s", name, family.name, entry.nbytes / 1e6, placement.device)
        return entry

    def _new_entry(self, name: str, location: str, family: registry.Family, pipe, placement: devices.Placement,
                   *, added: bool = False) -> Entry:
        """Make room for a pipeline, place it by the memory policy and wrap it as an entry (not yet kept)."""
        nbytes = param_bytes(*_pipe_modules(pipe))
        self._make_room(nbytes, placement)
        offloaded = _place(pipe, placement, nbytes)
        pipe.set_progress_bar_config(disable=True)
        entry = Entry(name, location, family, pipe, placement, offloaded, nbytes=nbytes, added=added)
        entry.pipelines[("generate", None)] = pipe
        return entry

    def _make_room(self, nbytes: int, placement: devices.Placement) -> None:
        """Evict least recently used models until `nbytes` more fit the budget."""
        budget = self.budget_bytes
        if budget is None:
            held = sum(e.nbytes for e in self._entries.values() if not e.offloaded)
            budget = devices.memory_budget(placement.device, held)
        while self._entries and sum(e.nbytes for e in self._entries.values()) + nbytes > budget:
            name = next(iter(self._entries))
            self._drop(name)
            log.info("evicted %s to make room", name)
            free_memory()

    def _derive(self, entry: Entry, task: str, controlnet: str | None):
        """A task pipeline sharing the base's modules. The Auto form keeps their dtype; a class-specific
        `from_pipe` would default to float32 and cast the shared fp16 weights in place (diffusers#12754)."""
        base = entry.base
        with quiet_diffusers():
            # imported here: importing them makes transformers log about optional image processors
            from diffusers import AutoPipelineForImage2Image, AutoPipelineForInpainting, AutoPipelineForText2Image

            if task == "generate":
                return base
            if task == "edit":
                pipe = AutoPipelineForImage2Image.from_pipe(base)
            elif task == "inpaint":
                pipe = AutoPipelineForInpainting.from_pipe(base)
            elif task == "control":
                cn = self.controlnet(entry, controlnet)
                pipe = AutoPipelineForText2Image.from_pipe(base, controlnet=cn)
            else:
                raise ValueError(f"unknown task {task!r}; choose one of {', '.join(registry.TASKS)}")
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def controlnet(self, entry: Entry, controlnet: str):
        """A ControlNet model, loaded once per (family, id, dtype, device) and placed like its base model."""
        device = "offloaded" if entry.offloaded else entry.placement.device
        key = (entry.family.name, controlnet, entry.placement.dtype, device)
        entry.controlnets.add(key)
        if key in self._controlnets:
            return self._controlnets[key]
        location = registry.resolve_controlnet(controlnet)
        cls = getattr(__import__("diffusers"), entry.family.controlnet_class)
        try:
            with quiet_diffusers():
                cn = cls.from_pretrained(location, dtype=entry.placement.torch_dtype, use_safetensors=True)
        except (OSError, ValueError) as err:
            if Path(location).exists():
                raise ModelNotFoundError(f"could not load ControlNet {controlnet!r}: {err}") from err
            raise ModelNotFoundError(registry.no_download_message(controlnet, err)) from None
        if not entry.offloaded:
            cn.to(entry.placement.device)
        entry.nbytes += param_bytes(cn)
        self._controlnets[key] = cn
        return cn


def _largest_part_bytes(pipe) -> int:
    """The parameter bytes of the pipeline's largest component: what model CPU offload holds on the GPU at once."""
    return max((param_bytes(m) for m in _pipe_modules(pipe)), default=0) if hasattr(pipe, "components") else 0


def _place(pipe, placement: devices.Placement, nbytes: int) -> bool:
    return devices.place(pipe, placement, nbytes, _largest_part_bytes(pipe))


def free_memory() -> None:
    import gc

    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass


shared = PipelineCache()  # the one cache every task function, widget and lesson uses


def info() -> dict:
    """What the shared cache holds: models, their task pipelines, device, dtype, bytes of parameters."""
    return shared.info()


def clear() -> None:
    """Unload every model from the shared cache."""
    shared.clear()


def add(name: str, pipe, *, family: str | None = None) -> Entry:
    """Put your own pipeline in the shared cache under `name` (see `PipelineCache.add`).

    >>> import imagegen_nb as ig
    >>> from diffusers import StableDiffusionPipeline
    >>> pipe = StableDiffusionPipeline.from_pretrained(ig.tiny.model_path())
    >>> _ = ig.cache.add("my-shapes", pipe, family="tiny")
    >>> ig.generate("a red circle", model="my-shapes", seed=0).size
    (64, 64)
    """
    return shared.add(name, pipe, family=family)


def evict(model: str | None = None) -> bool:
    """Unload one model (None: the built-in one) from the shared cache, with the ControlNets no other loaded model
    uses; True if it was loaded."""
    return shared.evict(model)
