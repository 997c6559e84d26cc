"""The command line writes PNGs with recipes and reports bad input without a traceback."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from PIL import Image, ImageDraw

import imagegen_nb as ig
from imagegen_nb.cli import main


def test_generate_edit_inpaint_control_regenerate(tmp_path, capsys):
    out = tmp_path / "out.png"
    assert main(["generate", "a red circle", "--seed", "3", "--steps", "6", "-o", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    r = ig.recipe(out)
    assert (r["prompt"], r["seed"], r["num_inference_steps"]) == ("a red circle", 3, 6)

    assert main(["edit", str(out), "a blue circle", "--strength", "0.5", "--seed", "1", "-o",
                 str(tmp_path / "e.png")]) == 0
    assert ig.recipe(tmp_path / "e.png")["strength"] == 0.5

    mask = np.zeros((64, 64), np.uint8)
    mask[:, 32:] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    assert main(["inpaint", str(out), str(tmp_path / "mask.png"), "a green square", "--seed", "2",
                 "--mask-blur", "0", "-o", str(tmp_path / "i.png")]) == 0
    a, b = np.asarray(Image.open(tmp_path / "i.png")), np.asarray(Image.open(out))
    assert (a[:, :32] == b[:, :32]).all()

    sketch = Image.new("RGB", (64, 64), "black")
    ImageDraw.Draw(sketch).ellipse([10, 10, 40, 40], fill="white")
    sketch.save(tmp_path / "sketch.png")
    assert main(["control", str(tmp_path / "sketch.png"), "a red circle", "--seed", "0", "-o",
                 str(tmp_path / "c.png")]) == 0

    capsys.readouterr()
    assert main(["regenerate", str(out), "-o", str(tmp_path / "again.png")]) == 0
    assert (np.asarray(Image.open(tmp_path / "again.png")) == b).all()


def test_batches_get_numbered_files(tmp_path, capsys):
    assert main(["generate", "a blue square", "-n", "2", "--seed", "5", "-o", str(tmp_path / "b.png")]) == 0
    paths = capsys.readouterr().out.split()
    assert [p.rsplit("/", 1)[1] for p in paths] == ["b-0.png", "b-1.png"]
    assert [ig.recipe(p)["seed"] for p in paths] == [5, 6]


def test_bad_input_is_one_line_on_stderr(tmp_path, capsys):
    assert main(["generate", "a red circle", "--width", "60", "--height", "64", "-o", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: width and height have to be multiples of 8") and "Traceback" not in err


def test_models_lists_the_registry(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("tiny") and "flux-schnell" in out


def test_module_entry_point(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "imagegen_nb", "models"], capture_output=True, text=True)
    assert proc.returncode == 0 and "sdxl" in proc.stdout
