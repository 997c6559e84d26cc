"""The errors imagegen_nb raises for input it cannot use; each message says what was wrong and how to fix it."""

from __future__ import annotations


class ModelNotFoundError(ValueError):
    """The model cannot be found locally or downloaded."""


class UnsupportedTaskError(ValueError):
    """The model's family has no pipeline for the task asked for."""


class UnsafeModelFileError(ValueError):
    """A pickle-based weights file (.ckpt, .bin, .pt) was refused; pass allow_pickle=True to load it anyway."""


class OutOfMemoryError(RuntimeError):
    """The device ran out of memory; the cache stays usable."""
