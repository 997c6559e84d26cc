"""MkDocs hook: put the built-in model's card (`imagegen_nb/tiny/weights/sd/README.md`, written by
`python -m imagegen_nb.tiny.evaluate --write-card`) into the page that holds the `<!-- model-card -->` marker, its
headings one level down. Until the card exists the page says how to make it, so the build never depends on it."""

from __future__ import annotations

import re
from pathlib import Path

MARKER = "<!-- model-card -->"
CARD = Path(__file__).resolve().parents[2] / "imagegen_nb" / "tiny" / "weights" / "sd" / "README.md"

MISSING = """!!! note "No model card yet"
    The weights in this checkout have not been evaluated yet, so `imagegen_nb/tiny/weights/sd/README.md` does not
    exist. It is written by `python -m imagegen_nb.tiny.evaluate --write-card`; rebuild the site afterwards.
"""


def card_markdown(path: Path = CARD) -> str:
    if not path.exists():
        return MISSING
    text = path.read_text(encoding="utf-8")
    # One level down, so the card's title sits under the page's; code blocks are left alone.
    out, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        out.append("#" + line if not fenced and re.match(r"#{1,5} ", line) else line)
    return "\n".join(out)


def on_page_markdown(markdown: str, **kwargs) -> str:
    return markdown.replace(MARKER, card_markdown()) if MARKER in markdown else markdown
