"""Training checkpoints of the built-in U-Net model: one file per phase, tensors and plain types only.

A checkpoint holds every state a phase needs to continue exactly where it stopped (models, EMA copies, optimizer,
learning-rate schedule, the step and the losses so far). It is loaded with `torch.load(weights_only=True)`, so
reading one never runs code from it, and written to a temporary file that is then renamed, so an interrupted save
never leaves a broken one.

>>> import tempfile, torch
>>> from pathlib import Path
>>> from imagegen_nb.tiny.checkpoint import Checkpoint
>>> folder = tempfile.TemporaryDirectory()
>>> ckpt = Checkpoint(Path(folder.name) / "part.pt")
>>> ckpt.store({"model": torch.nn.Linear(2, 1)}, step=5, losses=[0.5, 0.25])
>>> ckpt.restore({"model": torch.nn.Linear(2, 1)})    # the step and the losses; the weights are loaded in place
(5, [0.5, 0.25])
>>> folder.cleanup()
"""

from __future__ import annotations

import dataclasses
import pickle
from collections import OrderedDict
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch


def _plain(value, where: str = "state"):
    """`value` as only tensors and plain types (dict, list, tuple, str, int, float, bool, None), which
    `torch.load(weights_only=True)` reads back without running any code: a dataclass becomes a dict, a numpy array
    a tensor and a numpy scalar a Python number. Anything else is a TypeError naming where it sits."""
    if isinstance(value, np.generic):  # first: np.float64 is also a float, but pickles as a numpy object
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return value
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(asdict(value), where)
    if isinstance(value, dict):  # a state_dict is an OrderedDict whose `_metadata` (module versions) is kept
        out = OrderedDict() if isinstance(value, OrderedDict) else {}
        for k, v in value.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"{where} has a key {k!r} of type {type(k).__name__}; use str or int keys")
            out[k] = _plain(v, f"{where}[{k!r}]")
        if isinstance(getattr(value, "_metadata", None), dict):
            out._metadata = value._metadata
        return out
    if isinstance(value, (list, tuple)):
        items = [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    raise TypeError(f"{where} is a {type(value).__name__}, which a checkpoint loaded with weights_only=True cannot "
                    "hold; store it as tensors or plain types")


class Checkpoint:
    """One file per phase holding every state needed to continue exactly where a run stopped: tensors and plain
    types only, loaded with `weights_only=True`, so reading a checkpoint never runs code from it."""

    def __init__(self, path: Path):
        self.path = path

    def load(self) -> dict | None:
        if not self.path.exists():
            return None
        try:
            return torch.load(self.path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:  # what torch raises for anything but tensors and plain types
            raise ValueError(f"{self.path} could not be read as tensors and plain types (it holds other objects, "
                             f"whose loading could run code, or it is damaged); delete it to start the phase again "
                             f"({str(err).splitlines()[0]})") from err

    def save(self, state: dict) -> None:
        tmp = self.path.with_suffix(".tmp")
        torch.save(_plain(state), tmp)
        tmp.replace(self.path)  # atomic: an interrupted save never leaves a broken checkpoint

    def restore(self, parts: dict) -> tuple[int, list[float]]:
        """Load the state of each named part (models, optimizer, lr schedule); the step and losses so far."""
        if (state := self.load()) is None:
            return 0, []
        for name, part in parts.items():
            part.load_state_dict(state[name])
        return state["step"], state["losses"]

    def store(self, parts: dict, step: int, losses: list[float]) -> None:
        self.save({**{name: part.state_dict() for name, part in parts.items()}, "step": step, "losses": losses})
