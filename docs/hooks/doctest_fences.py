"""A griffe extension for the API reference: fence the doctest examples of docstrings as `pycon` code.

The package's docstrings hold runnable examples (`>>> ...` lines and their output), as `tests/test_docstrings.py`
checks. Markdown would read `>>>` as nested quotes and an output like `[7, 8]` as a link; fenced, they show as
Python console sessions. Examples inside a Google-style `Examples:` section are left to griffe, which parses those.
"""

from __future__ import annotations

from typing import Any

import griffe


def fence_doctests(text: str) -> str:
    """Wrap each run of `>>>` lines (with their continuation `...` and output lines, up to a blank line) that
    starts in the first column in a ```pycon fence."""
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    in_fence = False
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
        if not in_fence and (line.startswith(">>> ") or line == ">>>"):
            block = []
            while i < len(lines) and lines[i].strip():
                block.append(lines[i])
                i += 1
            if out and out[-1].strip():
                out.append("")
            out += ["```pycon", *block, "```"]
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


class DoctestFences(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None and ">>>" in obj.docstring.value:
            obj.docstring.value = fence_doctests(obj.docstring.value)
