"""Outpainting and the hires fix (imagegen_nb.workflows) on the built-in model."""

from __future__ import annotations

import numpy as np
import pytest

import imagegen_nb as ig


@pytest.fixture(scope="module")
def base():
    return ig.generate("a red circle on a white background", seed=0, num_inference_steps=4, progress=False)


def test_outpaint_extends_the_picture_and_keeps_every_original_pixel(base, pixels):
    wide = ig.outpaint(base, "a red circle and a blue square on a white background", left=16, right=16, top=8,
                       mask_blur=0, seed=0, num_inference_steps=4, progress=False)
    assert wide.size == (96, 72)
    assert (pixels(wide)[8:, 16:80] == pixels(base)).all()
    r = ig.recipe(wide)
    assert r["task"] == "inpaint" and r["mask_blur"] == 0
    assert (pixels(ig.regenerate(wide)) == pixels(wide)).all()
    # the margins were painted, not left as the padding: the edge fill alone repeats the border's pixels
    padded = np.pad(pixels(base), ((8, 0), (16, 16), (0, 0)), mode="edge")
    assert not (pixels(wide)[:, 80:] == padded[:, 80:]).all()


def test_outpaint_arguments_are_checked(base):
    with pytest.raises(ValueError, match="needs a margin"):
        ig.outpaint(base, "x")
    with pytest.raises(ValueError, match="multiples of 8"):
        ig.outpaint(base, "x", right=12)
    with pytest.raises(ValueError, match="unknown fill 'blur'; choose one of edge, mirror, gray"):
        ig.outpaint(base, "x", right=8, fill="blur")
    with pytest.raises(ValueError, match="left must be at least 0"):
        ig.outpaint(base, "x", left=-8)


def test_hires_fix_makes_a_larger_picture_by_upscale_and_edit(pixels):
    big = ig.hires_fix("a red circle and a blue square", seed=3, num_inference_steps=4, progress=False)
    assert big.size == (128, 128)
    r = ig.recipe(big)
    assert r["task"] == "edit" and r["strength"] == 0.3 and r["seed"] == 3
    assert (pixels(ig.regenerate(big)) == pixels(big)).all()
    small = ig.generate("a red circle and a blue square", seed=3, num_inference_steps=4, progress=False)
    assert not (pixels(big)[::2, ::2] == pixels(small)).all()  # refined, not only enlarged
    with pytest.raises(ValueError, match=r"scale must be in \[1, 8\], not 0.5"):
        ig.hires_fix("a red circle", scale=0.5)
    with pytest.raises(ValueError, match="one picture"):
        ig.hires_fix(["a", "b"])
