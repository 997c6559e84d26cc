"""End to end in a real browser: JupyterLab and Jupyter Notebook 7 in a temporary folder, opened in headless
Chromium by Playwright.

The notebook shows the studio and a mask canvas; the test clicks Generate and waits for the picture, drags across
the canvas, reads the mask back from the kernel and steps the trace player; a second notebook paints with the
MaskPainter; a third is served as a Voila app and generates. Screenshots go to test-artifacts/. What it needs is
installed by scripts/browser_test_deps.sh where missing; the test skips only if chromium cannot be installed.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from browser import lab as jl

pytestmark = pytest.mark.browser

ARTIFACTS = jl.REPO / "test-artifacts"

SETUP = """\
import torch
torch.set_num_threads(1)
import imagegen_nb as ig
studio = ig.Studio(prompt="a red circle to the left of a blue square", seed=0, num_inference_steps=8)
studio"""
CANVAS = """\
from PIL import Image
canvas = ig.MaskCanvas(Image.new("RGB", (64, 64), "white"), brush_size=8)
canvas"""
READBACK = """\
import numpy as np
m = np.asarray(canvas.mask) > 0
ys, xs = np.nonzero(m)
print("RESULTS", len(studio.results), "ERROR", studio.error)
print("MASK", int(m.sum()), *([int(xs.min()), int(xs.max()), int(ys.min()), int(ys.max())] if m.any() else []))"""
PLAYER = """\
player = ig.TracePlayer(ig.trace("a red circle", seed=0, num_inference_steps=4))
player.slider.value = 2
player"""


@pytest.fixture(scope="module")
def deps():
    lacking = jl.missing()
    if lacking:
        try:
            jl.install_deps()
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as err:
            if "chromium" in jl.missing():
                pytest.skip(f"chromium is not installed and could not be installed ({err}); "
                            "run scripts/browser_test_deps.sh")
            raise
        still = jl.missing()
        if "chromium" in still:
            pytest.skip("chromium could not be installed by scripts/browser_test_deps.sh")
        assert not still, f"scripts/browser_test_deps.sh did not install {', '.join(still)}"


APPS = ["lab", "notebook"]  # JupyterLab and Jupyter Notebook 7


@pytest.fixture(params=APPS)
def lab(deps, tmp_path, request):
    root = tmp_path / "root"
    root.mkdir()
    jl.write_notebook(root / "studio.ipynb", [SETUP, CANVAS, READBACK, PLAYER])
    server = jl.start(root, tmp_path, app=request.param)
    yield server
    server.stop()


def open_notebook(page, server, notebook: str) -> None:
    """Open `notebook` and wait until its kernel is idle: cells run before it is connected are dropped."""
    page.goto(server.page(notebook))
    page.locator(".jp-Notebook .jp-Cell .cm-content").first.wait_for(timeout=60_000)
    if server.app == "lab":
        page.locator(".jp-StatusBar-Widget", has_text="Idle").first.wait_for(timeout=60_000)
    server.wait_for_idle_kernel()
    page.wait_for_timeout(1000)  # the frontend's own session connects after the kernel reports idle


def run_cell(page, index: int) -> None:
    """Click into cell `index` and run it with Shift+Enter (as a user would)."""
    cell = page.locator(".jp-Notebook .jp-Cell").nth(index)
    cell.locator(".cm-content").click()
    page.keyboard.press("Shift+Enter")


def shot(page, name: str, locator=None, app: str = "lab") -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"browser-{app}-{name}.png"
    (locator or page).screenshot(path=str(path))
    return path


def test_studio_mask_canvas_and_trace_player(lab):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=jl.CHROMIUM, headless=True, args=jl.CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1400})
            open_notebook(page, lab, "studio.ipynb")

            # 1. the studio renders
            run_cell(page, 0)
            generate = page.locator("button.widget-button", has_text="Generate")
            generate.wait_for(timeout=40_000)
            studio = page.locator(".jp-Notebook .jp-Cell").nth(0).locator(".jp-OutputArea")
            shot(page, "1-studio", studio, app=lab.app)
            assert page.locator("textarea").filter(has_text="").count() >= 2  # prompt and negative prompt

            # 2. Generate: a picture appears (64x64 pixels shown enlarged) and lands in the gallery
            generate.click()
            page.locator("button.widget-button", has_text="#1 · seed 0").wait_for(timeout=120_000)
            page.wait_for_function(
                "() => [...document.querySelectorAll('img.ig-pixelated')].some("
                "i => i.naturalWidth === 64 && i.getBoundingClientRect().width >= 255)", timeout=10_000)
            # the button comes back after the run's last message (the gallery is filled first)
            expect(generate).to_be_enabled(timeout=30_000)
            shot(page, "2-generated", studio, app=lab.app)

            # 2b. send it to Inpaint: a mask canvas opens in the studio, over the picture
            page.locator("button.widget-button", has_text="→ Inpaint").click()
            studio.locator("canvas").first.wait_for(timeout=30_000)
            shot(page, "2b-inpaint", studio, app=lab.app)

            # 3. drag across the mask canvas (64x64 shown 6x: canvas pixels 60..240 are picture pixels 10..40)
            run_cell(page, 1)
            canvas_cell = page.locator(".jp-Notebook .jp-Cell").nth(1)
            canvas = canvas_cell.locator("canvas").first
            canvas.wait_for(timeout=30_000)
            canvas.scroll_into_view_if_needed()
            box = canvas.bounding_box()
            assert box and abs(box["width"] - 384) < 2, box
            x0, y0 = box["x"], box["y"]
            page.mouse.move(x0 + 60, y0 + 60)
            page.mouse.down()
            for i in range(1, 11):
                page.mouse.move(x0 + 60 + 18 * i, y0 + 60)
            page.mouse.up()
            page.wait_for_timeout(500)
            shot(page, "3-mask", canvas_cell.locator(".jp-OutputArea"), app=lab.app)

            # 4. the kernel's mask is white where the drag went, and nowhere else
            run_cell(page, 2)
            output = page.locator(".jp-Notebook .jp-Cell").nth(2).locator(".jp-OutputArea-output")
            output.filter(has_text="MASK").wait_for(timeout=30_000)
            text = output.inner_text()
            shot(page, "4-readback", app=lab.app)

            # 5. the trace player shows x_t, x0 and the noise of a step, with its noise level
            run_cell(page, 3)
            player = page.locator(".jp-Notebook .jp-Cell").nth(3).locator(".jp-OutputArea")
            player.filter(has_text="step 2 / 3").wait_for(timeout=60_000)
            page.wait_for_function(
                "() => [...document.querySelectorAll('img.ig-pixelated')].filter("
                "i => i.naturalWidth === 64 && i.getBoundingClientRect().width >= 190).length >= 4", timeout=10_000)
            player_text = player.inner_text()
            shot(page, "5-trace-player", player, app=lab.app)
        except Exception:
            shot(page, "failure", app=lab.app)  # what the browser showed when it went wrong
            print(lab.log.read_text()[-5000:])
            raise
        finally:
            browser.close()

    assert "t = " in player_text and "ᾱ" in player_text, player_text
    assert "RESULTS 1 ERROR None" in text, text
    found = re.search(r"MASK (\d+) (\d+) (\d+) (\d+) (\d+)", text)
    assert found, f"no mask read back: {text}"
    count, xmin, xmax, ymin, ymax = map(int, found.groups())
    assert 6 <= xmin <= 11 and 39 <= xmax <= 44, text  # from x = 10 to 40 with a brush of 8 pixels
    assert 5 <= ymin <= 7 and 13 <= ymax <= 14, text
    assert count <= 39 * 9, text


PAINTER = """\
import imagegen_nb as ig
from PIL import Image
painter = ig.MaskPainter(Image.new("RGB", (64, 64), "white"), brush_size=8)
painter"""
PAINTER_READBACK = """\
import numpy as np
m = painter.mask_array
ys, xs = np.nonzero(m)
print("PAINTED", int(m.sum()), *([int(xs.min()), int(xs.max()), int(ys.min()), int(ys.max())] if m.any() else []))"""


@pytest.mark.parametrize("app", APPS)
def test_mask_painter_paints_without_a_canvas_extension(deps, tmp_path, app):
    """The anywidget fallback: its own code draws the canvas, the stroke comes back to the kernel as the mask."""
    from playwright.sync_api import sync_playwright

    root = tmp_path / "root"
    root.mkdir()
    jl.write_notebook(root / "painter.ipynb", [PAINTER, PAINTER_READBACK])
    server = jl.start(root, tmp_path, app=app)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=jl.CHROMIUM, headless=True, args=jl.CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1200, "height": 1000})
            try:
                open_notebook(page, server, "painter.ipynb")
                run_cell(page, 0)
                canvas = page.locator(".ig-mask-painter canvas").first
                canvas.wait_for(timeout=60_000)
                canvas.scroll_into_view_if_needed()
                box = canvas.bounding_box()
                assert box and abs(box["width"] - 256) < 2, box  # 64 px shown 4x
                x0, y0 = box["x"], box["y"]
                page.mouse.move(x0 + 40, y0 + 40)  # picture pixel (10, 10)
                page.mouse.down()
                for i in range(1, 11):
                    page.mouse.move(x0 + 40 + 12 * i, y0 + 40)  # to (40, 10)
                page.mouse.up()
                page.wait_for_timeout(500)
                cell = page.locator(".jp-Notebook .jp-Cell").nth(0).locator(".jp-OutputArea")
                shot(page, "6-mask-painter", cell, app=app)
                run_cell(page, 1)
                output = page.locator(".jp-Notebook .jp-Cell").nth(1).locator(".jp-OutputArea-output")
                output.filter(has_text="PAINTED").wait_for(timeout=30_000)
                text = output.inner_text()
            except Exception:
                shot(page, "painter-failure", app=app)
                print(server.log.read_text()[-5000:])
                raise
            finally:
                browser.close()
    finally:
        server.stop()

    found = re.search(r"PAINTED (\d+) (\d+) (\d+) (\d+) (\d+)", text)
    assert found, f"no mask read back: {text}"
    count, xmin, xmax, ymin, ymax = map(int, found.groups())
    assert 5 <= xmin <= 7 and 43 <= xmax <= 45, text  # from x = 10 to 40 with a round brush of 8 pixels
    assert 5 <= ymin <= 7 and 13 <= ymax <= 15, text
    assert count <= 39 * 9, text


VOILA_STUDIO = """\
import torch
torch.set_num_threads(1)
import imagegen_nb as ig
import time
studio = ig.Studio(prompt="a red circle", seed=0, num_inference_steps=40)
studio.listeners.append(lambda run, step: time.sleep(0.1))  # a run long enough to press Stop in
studio"""


def test_studio_as_a_voila_app(deps, tmp_path):
    """A Studio notebook served by Voila (the server extension of the test's JupyterLab): the app shows only the
    widgets; Stop pressed during a run ends it (the panel answers while the run goes on in its thread); Generate
    then runs to the end and the picture lands in the gallery."""
    from playwright.sync_api import expect, sync_playwright

    root = tmp_path / "root"
    root.mkdir()
    jl.write_notebook(root / "app.ipynb", [VOILA_STUDIO])
    server = jl.start(root, tmp_path)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=jl.CHROMIUM, headless=True, args=jl.CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1200})
            try:
                page.goto(f"{server.url}/voila/render/app.ipynb?token={server.token}")
                generate = page.locator("button.widget-button", has_text="Generate")
                generate.wait_for(timeout=120_000)  # Voila runs the notebook before it shows the app
                assert page.locator(".cm-content").count() == 0  # no code cells in an app
                generate.click()
                stop = page.locator("button.widget-button", has_text="Stop")
                expect(stop).to_be_enabled(timeout=30_000)
                page.wait_for_timeout(1000)
                stop.click()
                page.get_by_text(re.compile(r"stopped after step \d+ of 40")).wait_for(timeout=30_000)
                expect(generate).to_be_enabled(timeout=30_000)
                shot(page, "7-stopped", app="voila")
                assert page.locator("button.widget-button", has_text="#1 · seed 0").count() == 0  # not kept
                generate.click()
                page.locator("button.widget-button", has_text="#1 · seed 0").wait_for(timeout=120_000)
                page.wait_for_function(
                    "() => [...document.querySelectorAll('img.ig-pixelated')].some(i => i.naturalWidth === 64)",
                    timeout=10_000)
                expect(generate).to_be_enabled(timeout=30_000)
                shot(page, "8-generated", app="voila")
            except Exception:
                shot(page, "failure", app="voila")
                print(server.log.read_text()[-5000:])
                raise
            finally:
                browser.close()
    finally:
        server.stop()
