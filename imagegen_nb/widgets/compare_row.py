"""The Studio's comparison row: one argument and a list of its values, for `ig.compare` on the Studio's settings
(every other control holds for every cell).

>>> from imagegen_nb.widgets.compare_row import CompareRow
>>> row = CompareRow()
>>> row.axis.value, row.values.value = "guidance_scale", "2, 4.5, 8"
>>> row.axis_values("generate")
('guidance_scale', [2.0, 4.5, 8.0])
"""

from __future__ import annotations

import ipywidgets as widgets

from .. import arguments, schedulers

# The arguments a comparison row can vary, with the tasks that take each (None: every task)
AXES: dict[str, tuple[str, ...] | None] = {
    "seed": None, "guidance_scale": None, "num_inference_steps": None, "scheduler": None,
    "strength": ("edit", "inpaint"), "controlnet_conditioning_scale": ("control",), "style_scale": None}
_WHOLE = ("seed", "num_inference_steps")
MAX_VALUES = 16  # cells a row makes at most: more belongs in ig.compare itself


class CompareRow(widgets.HBox):
    """An axis dropdown, a box of comma-separated values and the Compare button (the Studio wires it)."""

    def __init__(self):
        self.axis = widgets.Dropdown(description="compare", options=list(AXES), value="seed",
                                     layout={"width": "240px"})
        self.values = widgets.Text(placeholder="values, e.g. 0, 1, 2, 3", layout={"width": "200px"})
        self.button = widgets.Button(description="Compare", icon="th", tooltip="ig.compare: one picture per value")
        super().__init__([self.axis, self.values, self.button])

    def axis_values(self, task: str) -> tuple[str, list]:
        """The chosen argument and its values, each checked as the task functions check it."""
        name = self.axis.value
        tasks = AXES[name]
        if tasks is not None and task not in tasks:
            raise ValueError(f"{name} is an argument of {' and '.join(tasks)}, not {task}: compare another argument, "
                             "or switch the task")
        texts = [t.strip() for t in self.values.value.split(",") if t.strip()]
        if len(texts) < 2:
            raise ValueError(f"give two or more values of {name} to compare, separated by commas")
        if len(texts) > MAX_VALUES:
            raise ValueError(f"{len(texts)} values of {name}: the Studio compares at most {MAX_VALUES}; call "
                             "ig.compare(...) for more")
        if name == "scheduler":
            for text in texts:
                arguments.choice("scheduler", text, tuple(schedulers.SCHEDULERS), what="scheduler")
            return name, texts
        values = []
        for text in texts:
            try:
                number = float(text)
            except ValueError:
                raise ValueError(f"{name}: {text!r} is not a number") from None
            if name in _WHOLE and not number.is_integer():
                raise ValueError(f"{name} takes whole numbers, not {text!r}")
            values.append(int(number) if name in _WHOLE else number)
        return name, values
