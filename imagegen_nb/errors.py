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


class RecipeError(ValueError):
    """A picture's recipe is damaged or sets something a recipe may not set.

    >>> import imagegen_nb as ig
    >>> ig.Recipe.from_dict([])
    Traceback (most recent call last):
    imagegen_nb.errors.RecipeError: this picture's recipe is damaged: it should be a JSON object, not list
    """
