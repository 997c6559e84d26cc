"""LoRA adapters and textual-inversion embeddings: the `lora=` argument of the task functions, checked before any
work and applied for one call.

Each LoRA file is loaded once per cached model, through diffusers' own loader (`load_lora_weights` with peft), under
an adapter name made from its hash; a call switches on the ones it names at their weights (`set_adapters`) and
switches them all off again afterwards (`disable_lora`), so a call without `lora=` runs the base model exactly as a
fresh one would. The base weights are never reloaded, merged or changed. Evicting a model from the cache drops its
LoRAs with it.

A textual-inversion embedding (A1111's `emb_params` file, or diffusers' `{token: vector}` form) given in `lora=` is
loaded once per cached model with `load_textual_inversion` under its file's name, which is then a word of the
prompt (as in A1111: `lora="shiny.safetensors"` and the prompt "a shiny circle"). It adds a word and changes nothing
else, so prompts without that word make the pictures they made before. It has no weight: weigh the word in the
prompt instead, `(shiny:1.3)`.

>>> import imagegen_nb as ig
>>> try:
...     ig.generate("a red circle", lora="no-such-lora.safetensors")
... except FileNotFoundError as err:
...     print(str(err).split(" (")[0])
lora 'no-such-lora.safetensors': no such file or folder
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import arguments

SAFE_SUFFIX = ".safetensors"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")  # torch pickles: loading one can run code
DEFAULT_WEIGHT_NAME = "pytorch_lora_weights.safetensors"  # the file diffusers' save_lora_weights writes
MAX_LORAS = 16  # LoRAs one call may mix


@dataclass(frozen=True)
class Lora:
    """One LoRA of a call: as the user named it, the weights file it resolved to, its weight and its hash."""

    path: str  # as given (a recipe keeps it, so regenerate finds the file again)
    file: Path  # the weights file itself (inside the folder, for a folder)
    weight: float
    hash: str  # first 10 hex digits of the file's sha256, as A1111's "Lora hashes" and "Model hash"
    kind: str = "lora"  # or "embedding": a textual-inversion embedding, whose word is its name

    @property
    def name(self) -> str:
        """The LoRA's name as A1111 writes it in `<lora:name:weight>`: the file's (or folder's) stem."""
        path = Path(self.path)
        if path.name == DEFAULT_WEIGHT_NAME:  # a diffusers LoRA folder's file: the folder names it
            return path.parent.name or path.stem
        return path.stem if path.suffix in (SAFE_SUFFIX, *PICKLE_SUFFIXES) else path.name

    @property
    def adapter(self) -> str:
        """The adapter name it is loaded under: one per file content, whatever path names it."""
        return f"{self.kind}_{self.hash}"

    def record(self) -> dict[str, Any]:
        """The LoRA as a recipe holds it."""
        kind = {} if self.kind == "lora" else {"kind": self.kind}
        return {"name": self.name, "path": self.path, "weight": self.weight, "hash": self.hash, **kind}


def _file_of(given: str, *, allow_pickle: bool) -> Path:
    """The weights file `given` names: the file itself, or a folder's `pytorch_lora_weights.safetensors` (or its only
    .safetensors file). Pickles need `allow_pickle=True`, as models do."""
    path = Path(given).expanduser()
    hint = "a LoRA is a local .safetensors file, or a folder in diffusers' LoRA format that holds one"
    if not path.exists():
        raise FileNotFoundError(f"lora {given!r}: no such file or folder ({hint})")
    if path.is_dir():
        safe = sorted(path.glob(f"*{SAFE_SUFFIX}"))
        pickles = sorted(p for s in PICKLE_SUFFIXES for p in path.glob(f"*{s}"))
        if (path / DEFAULT_WEIGHT_NAME).is_file():
            return path / DEFAULT_WEIGHT_NAME
        if len(safe) == 1:
            return safe[0]
        if len(safe) > 1:
            raise ValueError(f"lora {given!r}: the folder holds {len(safe)} .safetensors files "
                             f"({', '.join(p.name for p in safe)}); name the one you mean")
        if len(pickles) == 1 and allow_pickle:
            return pickles[0]
        if pickles:
            raise ValueError(f"lora {given!r} holds only a pickle checkpoint ({pickles[0].name}), whose loading can "
                             "run code; pass allow_pickle=True if you trust it, or convert it to .safetensors")
        raise FileNotFoundError(f"lora {given!r}: the folder holds no LoRA weights file ({hint})")
    if path.suffix in PICKLE_SUFFIXES:
        if not allow_pickle:
            raise ValueError(f"lora {given!r} is a pickle checkpoint, whose loading can run code; pass "
                             "allow_pickle=True if you trust it, or convert it to .safetensors")
        return path
    if path.suffix != SAFE_SUFFIX:
        raise ValueError(f"lora {given!r} is not a LoRA weights file ({hint})")
    return path


def _check_header(given: str, file: Path) -> str:
    """Read the safetensors header (not the weights): a damaged file, or one that holds neither a LoRA nor an
    embedding, fails here, before any work. Returns "lora" or "embedding"."""
    from safetensors import safe_open

    try:
        with safe_open(str(file), framework="pt") as f:
            keys = list(f.keys())
    except Exception as err:  # safetensors raises its own SafetensorError (and OSError) for a damaged file
        raise ValueError(f"lora {given!r}: {file.name} could not be read as safetensors ({err}); is it damaged?") \
            from None
    if any("lora" in k.lower() for k in keys):
        return "lora"
    if keys == ["emb_params"] or (len(keys) == 1 and not keys[0].count(".")):  # A1111's, or {token: vector}
        return "embedding"
    raise ValueError(f"lora {given!r}: {file.name} holds no LoRA weights (no key names 'lora') and is not a "
                     f"textual-inversion embedding ({len(keys)} tensors such as {keys[:2]}); is it a model rather "
                     "than a LoRA?")


def check(lora, *, allow_pickle: bool = False) -> tuple[Lora, ...]:
    """The `lora` argument checked and resolved: None (no LoRA), a path (weight 1), or a dict of paths to weights
    (`{"a.safetensors": 0.8, "b": 0.4}`). Every file must exist and be safetensors unless `allow_pickle=True`.

    >>> check(None)
    ()
    """
    from .recipes import file_hash

    if lora is None:
        return ()
    if isinstance(lora, (str, os.PathLike)):
        items = [(lora, 1.0)]
    elif isinstance(lora, dict):
        items = list(lora.items())
    elif isinstance(lora, (list, tuple)) and all(isinstance(p, (str, os.PathLike)) for p in lora):
        items = [(p, 1.0) for p in lora]
    else:
        raise TypeError(f"lora must be None, a path, a list of paths or a dict of paths to weights "
                        f"({{'a.safetensors': 0.8, 'b': 0.4}}), not {type(lora).__name__}")
    if not items:
        raise ValueError("lora is empty; pass None for no LoRA")
    if len(items) > MAX_LORAS:
        raise ValueError(f"lora names {len(items)} LoRAs; at most {MAX_LORAS} can be mixed in one call")
    out: list[Lora] = []
    for given, weight in items:
        if not isinstance(given, (str, os.PathLike)) or not os.fspath(given):
            raise TypeError(f"lora paths must be non-empty strings or paths, not {type(given).__name__} {given!r}")
        given = os.fspath(given)
        weight = arguments.number(f"the weight of lora {given!r}", weight,
                                  hint=" (1 is the LoRA as trained, 0 turns it off)")
        file = _file_of(given, allow_pickle=allow_pickle)
        kind = _check_header(given, file) if file.suffix == SAFE_SUFFIX else "lora"
        if kind == "embedding" and weight != 1:
            raise ValueError(f"lora {given!r} is a textual-inversion embedding, which has no weight; give it 1 and "
                             f"weigh its word in the prompt instead: ({Lora(given, file, 1.0, '').name}:{weight:g})")
        digest = file_hash(file)
        if any(o.hash == digest for o in out):
            raise ValueError(f"lora {given!r} is the same weights as another one in this call "
                             f"({next(o.path for o in out if o.hash == digest)!r}); name it once")
        out.append(Lora(given, file, weight, digest, kind))
    return tuple(out)


def verify(records: list[dict[str, Any]]) -> dict[str, float]:
    """The `lora=` argument that reapplies a recipe's LoRAs, after checking each file is still there with the hash
    the recipe recorded (never a pickle: a picture cannot allow one)."""
    from .recipes import file_hash

    lora: dict[str, float] = {}
    for r in records:
        try:
            file = _file_of(r["path"], allow_pickle=False)
        except FileNotFoundError:
            raise FileNotFoundError(f"this picture was made with the LoRA {r['name']!r} from {r['path']!r}, which is "
                                    "not there any more; put it back, or pass lora= (None for none) to "
                                    "ig.regenerate") from None
        now = file_hash(file)
        if now != r["hash"]:
            raise ValueError(f"the LoRA {r['name']!r} at {r['path']!r} has changed since this picture was made (hash "
                             f"{now}, the recipe says {r['hash']}), so it would make another picture; restore that "
                             "file, or pass lora= to ig.regenerate to use what is there now")
        lora[r["path"]] = r["weight"]
    return lora


def _load(entry, lora: Lora) -> None:
    """Load one LoRA into a cached model's pipeline, once: its adapter stays until the model is evicted."""
    from .cache import param_bytes, quiet_diffusers

    base = entry.base
    if lora.adapter in entry.loras:
        return
    what = f"{entry.name if entry.name != 'tiny' else 'the built-in model'} ({entry.family.name})"
    if lora.kind == "embedding":
        _load_embedding(entry, lora, what)
        return
    if not hasattr(base, "load_lora_weights"):
        raise ValueError(f"lora {lora.path!r}: {what} is a {type(base).__name__}, which diffusers cannot load LoRAs "
                         "into; use a model of another family, or no lora")
    before = param_bytes(*_modules(base))
    try:
        with quiet_diffusers(), _silent():
            base.load_lora_weights(str(lora.file.parent), weight_name=lora.file.name, adapter_name=lora.adapter,
                                   use_safetensors=lora.file.suffix == SAFE_SUFFIX)
        loaded = any(lora.adapter in names for names in base.get_list_adapters().values())
        if not loaded:
            raise ValueError("none of its weights names a layer of this model")
    except (ValueError, RuntimeError, KeyError, TypeError) as err:
        _delete(base, lora.adapter)
        lines = [line.strip() for line in str(err).splitlines() if line.strip()] or [type(err).__name__]
        reason = next((line for line in lines if "size mismatch" in line), lines[0])
        if "version of PEFT" in reason:  # transformers' own LoRA loading (text encoders) asks for a newer peft
            raise ValueError(f"lora {lora.path!r}: loading it needs a newer peft ({reason})") from None
        raise ValueError(f"lora {lora.path!r} does not fit {what}: it was made for another architecture "
                         f"({reason[:300]})") from None
    entry.loras[lora.adapter] = lora.file
    entry.nbytes += max(0, param_bytes(*_modules(base)) - before)


def _load_embedding(entry, lora: Lora, what: str) -> None:
    """Add a textual-inversion embedding's word to a cached model's tokenizer and text encoder, once."""
    base = entry.base
    if not hasattr(base, "load_textual_inversion"):
        raise ValueError(f"lora {lora.path!r} is a textual-inversion embedding, which diffusers loads only into "
                         f"Stable Diffusion pipelines; {what} is a {type(base).__name__}")
    from transformers.utils import logging as tlog

    from .cache import param_bytes

    level = tlog.get_verbosity()
    tlog.set_verbosity_error()  # (how the new vocabulary rows start: they are overwritten at once)
    before = param_bytes(*_modules(base))
    try:
        with _silent():
            base.load_textual_inversion(str(lora.file), token=lora.name)
    except (ValueError, RuntimeError, KeyError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"lora {lora.path!r}: the embedding does not fit {what} ({reason[:300]})") from None
    finally:
        tlog.set_verbosity(level)
    entry.loras[lora.adapter] = lora.file
    entry.nbytes += max(0, param_bytes(*_modules(base)) - before)  # the word's new rows of the vocabulary


@contextmanager
def _silent() -> Iterator[None]:
    """diffusers logs a failed LoRA load as an error before raising it; the error raised here says it instead."""
    from diffusers.utils import logging as dlog

    level = dlog.get_verbosity()
    dlog.set_verbosity(dlog.CRITICAL)
    try:
        yield
    finally:
        dlog.set_verbosity(level)


def _modules(pipe) -> list:
    import torch

    return [c for c in pipe.components.values() if isinstance(c, torch.nn.Module)]


def _delete(base, adapter: str) -> None:
    """Remove a half-loaded adapter after a failed load, so the model is as it was."""
    import warnings

    try:
        with warnings.catch_warnings():  # peft says which adapter is active now; nothing the user must act on
            warnings.simplefilter("ignore", UserWarning)
            if any(adapter in names for names in base.get_list_adapters().values()):
                base.delete_adapters(adapter)
    except (ValueError, KeyError, AttributeError):
        pass


@contextmanager
def applied(pipe, entry, loras: tuple[Lora, ...]) -> Iterator[None]:
    """Run one call of `pipe`, a task pipeline of the cached model `entry` (sharing its base pipeline's modules),
    with `loras` at their weights: each loaded into the base the first time it is used, switched on for the call,
    and every LoRA switched off again afterwards. With no LoRA (or all at weight 0) the model runs as it is, bit for
    bit."""
    base = entry.base
    switch = pipe if hasattr(pipe, "set_adapters") else base
    if not any(lora.kind == "lora" for lora in loras):
        for lora in loras:  # embeddings: a word added to the vocabulary, nothing to switch
            _load(entry, lora)
        if any(name.startswith("lora_") for name in entry.loras):
            switch.disable_lora()  # (already off between calls: this only makes sure)
        yield
        return
    if getattr(entry, "added", False) and hasattr(base, "get_list_adapters"):
        own = {n for names in base.get_list_adapters().values() for n in names} - set(entry.loras)
        if own:
            raise ValueError(f"{entry.name!r} was put in the cache with adapters of its own "
                             f"({', '.join(sorted(own))}), which lora= would switch off; set them with "
                             "pipe.set_adapters yourself, or add the pipeline without them")
    for lora in loras:
        _load(entry, lora)
    active = [lora for lora in loras if lora.weight != 0 and lora.kind == "lora"]
    try:
        if active:
            switch.enable_lora()
            switch.set_adapters([lora.adapter for lora in active], adapter_weights=[lora.weight for lora in active])
        yield
    finally:
        switch.disable_lora()
