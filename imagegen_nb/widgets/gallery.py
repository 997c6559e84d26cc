"""The gallery: the pictures a session made, as thumbnails; the selected one's recipe as a table; and what can be
done with it: save it as a PNG with its recipe, show the code that makes it again, reuse its settings, or send it
on to a task that takes an input picture.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ipywidgets as widgets
from PIL import Image

from ..recipes import Recipe, next_free
from ..recipes import recipe as read_recipe
from ._common import PIXELATED_CLASS, PIXELATED_CSS, error_html, png_bytes

THUMB = 96  # thumbnail width (CSS pixels)
# the tasks a picture can be sent to, and the input pictures their code needs besides the recipe
SEND_TASKS = {"edit": "image", "inpaint": "image, mask", "control": "control_image"}


class Gallery(widgets.VBox):
    """The pictures made so far, one thumbnail each (click one to select it), and for the selected picture its
    recipe and the buttons Save PNG (`ig.save`: the PNG carries the recipe), Copy as code (`Recipe.code()`), Use
    settings and → Edit / → Inpaint / → Control.

    `gallery.add(picture)` adds a picture and selects it; `gallery.results` holds the pictures, `gallery.selected`
    the index of the selected one (None before the first). What Use settings and the → buttons do belongs to the
    owner: `on_use(picture)` and `on_send(task, picture)` (without them those buttons are hidden); `on_select(picture)`
    hears every selection. Notes (where a picture was saved) go to the `message` widget, by default the gallery's
    own; a button's error goes to `on_error(err)`, by default into `message` too, so no click fails silently.

    >>> import imagegen_nb as ig
    >>> from imagegen_nb.widgets.gallery import Gallery
    >>> gallery = Gallery()
    >>> gallery.add(ig.generate("a red circle", seed=3, num_inference_steps=4, progress=False))
    >>> gallery.selected, "seed" in gallery.recipe_view.value, gallery.save_path.value.startswith("imagegen")
    (0, True, True)
    >>> gallery.show_code().splitlines()[-1]
    "image = ig.generate('a red circle', num_inference_steps=4, ..., seed=3)"
    """

    def __init__(self, *, on_select: Callable[[Image.Image], Any] | None = None,
                 on_use: Callable[[Image.Image], Any] | None = None,
                 on_send: Callable[[str, Image.Image], Any] | None = None,
                 on_error: Callable[[BaseException], Any] | None = None, message: widgets.HTML | None = None):
        self.results: list[Image.Image] = []
        self.selected: int | None = None
        self._on_select, self._on_use, self._on_send = on_select, on_use, on_send
        self._on_error = on_error
        self.message = widgets.HTML() if message is None else message

        self.thumbnails = widgets.HBox(layout={"flex_flow": "row wrap"})
        self.recipe_view = widgets.HTML()
        self.save_path = widgets.Text(description="path", layout={"width": "300px"})
        self.save_button = widgets.Button(description="Save PNG", icon="save",
                                          tooltip="ig.save: PNG with the recipe in it")
        self.code_button = widgets.Button(description="Copy as code", icon="code", tooltip="Recipe.code()")
        self.use_button = widgets.Button(description="Use settings", tooltip="fill the controls from this recipe")
        self.to_edit_button = widgets.Button(description="→ Edit")
        self.to_inpaint_button = widgets.Button(description="→ Inpaint")
        self.to_control_button = widgets.Button(description="→ Control")
        self.to_style_button = widgets.Button(description="→ Style", tooltip="use as the style picture (style=)")
        self.code = widgets.Textarea(rows=3, layout={"width": "100%", "display": "none"})

        self.save_button.on_click(lambda _: self._guard(self.save_selected))
        self.code_button.on_click(lambda _: self._guard(self.show_code))
        self.use_button.on_click(lambda _: self._guard(self._use))
        self.to_edit_button.on_click(lambda _: self._guard(self._send, "edit"))
        self.to_inpaint_button.on_click(lambda _: self._guard(self._send, "inpaint"))
        self.to_control_button.on_click(lambda _: self._guard(self._send, "control"))
        self.to_style_button.on_click(lambda _: self._guard(self._send, "style"))
        send_row = widgets.HBox([self.to_edit_button, self.to_inpaint_button, self.to_control_button,
                                 self.to_style_button])
        if on_use is None:
            self.use_button.layout.display = "none"
        if on_send is None:
            send_row.layout.display = "none"
        self._selection_box = widgets.VBox([
            self.recipe_view, widgets.HBox([self.save_path, self.save_button, self.code_button, self.use_button]),
            send_row, self.code])
        title = widgets.HTML(f"{PIXELATED_CSS}<b>This session's pictures</b> (click one for its recipe)")
        own_message = [self.message] if message is None else []  # a message widget passed in shows where it is
        super().__init__([title, self.thumbnails, self._selection_box, *own_message])
        self._update_selection_buttons()

    def _guard(self, fn, *args) -> None:
        """Run a button's action; show its error instead of losing it in the kernel log."""
        try:
            fn(*args)
        except Exception as err:
            if self._on_error is None:
                self.message.value = error_html(err)
            else:
                self._on_error(err)

    def add(self, picture: Image.Image) -> None:
        """Add a picture (it carries its recipe) with a thumbnail, and select it."""
        index = len(self.results)
        self.results.append(picture)
        thumb = picture if max(picture.size) <= 2 * THUMB else picture.copy()
        if thumb is not picture:
            thumb.thumbnail((2 * THUMB, 2 * THUMB))
        view = widgets.Image(value=png_bytes(thumb), format="png", layout={"width": f"{THUMB}px"})
        view.add_class(PIXELATED_CLASS)
        recipe = read_recipe(picture)
        button = widgets.Button(description=f"#{index + 1} · seed {recipe['seed']}", tooltip=recipe["prompt"],
                                layout={"width": f"{THUMB}px"})
        button.on_click(lambda _, i=index: self.select(i))
        self.thumbnails.children += (widgets.VBox([view, button]),)
        self.select(index)

    def select(self, index: int) -> None:
        """Show the recipe of picture `index` of `results` (what clicking its thumbnail does)."""
        if not 0 <= index < len(self.results):
            raise ValueError(f"no picture #{index + 1}: the gallery has {len(self.results)}")
        self.selected = index
        picture = self.results[index]
        recipe = read_recipe(picture)
        rows = "".join(f"<tr><td style='padding-right:8px'><code>{html.escape(k)}</code></td>"
                       f"<td>{html.escape(repr(v))}</td></tr>"
                       for k, v in recipe.items() if v not in (None, {}, "") and k != "version")
        self.recipe_view.value = (f"<div style='line-height:1.4'><b>#{index + 1}</b>"
                                  f"<table style='font-size:90%'>{rows}</table></div>")
        # the first free name: a file from an earlier session (or another gallery) is never replaced
        self.save_path.value = str(next_free(Path("imagegen") / f"{recipe['task']}-seed{recipe['seed']}.png"))
        self.code.layout.display = "none"
        for item in self.thumbnails.children:  # VBox(thumbnail, button)
            item.children[1].button_style = ""
        self.thumbnails.children[index].children[1].button_style = "info"
        self._update_selection_buttons()
        if self._on_select is not None:
            self._on_select(picture)

    def _update_selection_buttons(self) -> None:
        for button in (self.save_button, self.code_button, self.use_button, self.to_edit_button,
                       self.to_inpaint_button, self.to_control_button, self.to_style_button):
            button.disabled = self.selected is None
        self._selection_box.layout.display = None if self.selected is not None else "none"

    def selected_picture(self) -> Image.Image:
        """The selected picture; an error that says so when none is."""
        if self.selected is None:
            raise ValueError("no picture selected: click one in the gallery first")
        return self.results[self.selected]

    def save_selected(self, path: str | None = None):
        """Save the selected picture as PNG with its recipe (`ig.save`); returns the path. An existing file is never
        replaced: saving to one is an error, shown like every button's."""
        from ..recipes import save

        written = save(self.selected_picture(), path or self.save_path.value)
        self.message.value = f"saved to <code>{html.escape(str(written))}</code>"
        self.save_path.value = str(next_free(written))
        return written

    def show_code(self) -> str:
        """Show (and return) the Python that makes the selected picture again."""
        recipe = Recipe.from_dict(read_recipe(self.selected_picture()))
        lines = ["import imagegen_nb as ig", ""]
        if recipe.task in SEND_TASKS:
            lines.append(f"# {SEND_TASKS[recipe.task]}: the input picture{'s' if recipe.task == 'inpaint' else ''} "
                         "it was made from")
        lines.append(f"image = {recipe.code()}" if recipe.task == "generate" else f"result = {recipe.code()}")
        self.code.value = "\n".join(lines)
        self.code.rows = len(lines) + 1
        self.code.layout.display = None
        return self.code.value

    def _use(self) -> None:
        self._on_use(self.selected_picture())

    def _send(self, task: str) -> None:
        self._on_send(task, self.selected_picture())
