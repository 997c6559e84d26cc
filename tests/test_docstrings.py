"""Every public name has a docstring with a runnable example, and every example in the package runs."""

from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil

import pytest

import imagegen_nb as ig

SKIP = {"imagegen_nb.__main__"}
# Names whose examples need a browser or a live kernel; their docstrings still show usage.
NO_EXAMPLE_NEEDED = {"__version__"}


def _modules():
    names = ["imagegen_nb"]
    names += [m.name for m in pkgutil.walk_packages(ig.__path__, "imagegen_nb.") if m.name not in SKIP]
    return sorted(names)


@pytest.mark.parametrize("name", _modules())
def test_examples_in_docstrings_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"


@pytest.mark.parametrize("name", sorted(set(ig.__all__) - NO_EXAMPLE_NEEDED))
def test_public_names_have_an_example(name):
    obj = getattr(ig, name)
    doc = inspect.getdoc(obj) or ""
    if inspect.ismodule(obj):
        doc = obj.__doc__ or ""
    assert ">>>" in doc, f"ig.{name} has no runnable example in its docstring"
