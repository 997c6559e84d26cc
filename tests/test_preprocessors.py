"""Control maps of every kind: the OpenCV kinds on a drawn shape, depth through a tiny random DPT built from config
(offline), pose up to its detector, and the errors of each."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from PIL import Image, ImageDraw

import imagegen_nb as ig
from imagegen_nb import preprocessors
from imagegen_nb.errors import ModelNotFoundError

pytest.importorskip("cv2")


@pytest.fixture
def square():
    """A red square (pixels 20..44) on white, 64 x 48."""
    im = Image.new("RGB", (64, 48), "white")
    ImageDraw.Draw(im).rectangle([20, 12, 44, 36], fill="red")
    return im


def white(image) -> np.ndarray:
    return np.asarray(image)[:, :, 0] > 127


@pytest.mark.parametrize("kind", ["canny", "scribble", "lineart", "softedge"])
def test_opencv_kinds_trace_the_outline(square, kind):
    out = ig.preprocess(square, kind)
    arr = np.asarray(out)
    assert out.size == square.size and out.mode == "RGB"
    assert (arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all()  # grey
    lit = arr[..., 0] > 40
    assert lit[12:37, 19:22].any() and lit[12:37, 43:46].any()  # the left and right sides of the square
    assert not lit[:6, :8].any() and not lit[22:27, 30:35].any()  # the white corner and the square's inside
    assert (np.asarray(ig.preprocess(square, kind)) == arr).all()  # deterministic


def test_scribble_strokes_are_thicker_than_canny_edges(square):
    edges, strokes = white(ig.preprocess(square, "canny")), white(ig.preprocess(square, "scribble"))
    assert strokes.sum() > 2 * edges.sum()
    thick = white(preprocessors.scribble(square, thickness=7))
    assert thick.sum() > strokes.sum()
    with pytest.raises(ValueError, match="thickness must be a whole number of pixels >= 1, not 0"):
        preprocessors.scribble(square, thickness=0)


def test_lineart_draws_dark_strokes_and_only_the_flanks_of_light_ones():
    im = Image.new("RGB", (64, 64), (200, 200, 200))
    draw = ImageDraw.Draw(im)
    draw.line([(16, 8), (16, 56)], fill="black", width=2)  # a dark stroke: a line
    draw.line([(48, 8), (48, 56)], fill="white", width=2)  # a light stroke: its darker sides are the lines
    arr = np.asarray(preprocessors.lineart(im))[..., 0]
    row, grey = arr[32], np.asarray(im)[32, :, 0]
    dark, light = np.flatnonzero(grey == 0), np.flatnonzero(grey == 255)
    assert row[dark].min() >= 100
    assert row[light].max() == 0 and row[light.min() - 1] > 60 and row[light.max() + 1] > 60
    assert row[28:36].max() == 0  # flat grey between them
    with pytest.raises(ValueError, match="sigma must be a positive number of pixels, not -1"):
        preprocessors.lineart(im, sigma=-1)


def test_softedge_is_soft_and_spans_the_range(square):
    arr = np.asarray(ig.preprocess(square, "softedge"))[..., 0]
    assert arr.max() == 255 and arr.min() == 0
    assert len(np.unique(arr)) > 20  # graded, not a binary edge map
    flat = np.asarray(preprocessors.softedge(Image.new("RGB", (32, 32), "blue")))
    assert flat.max() == 0  # no edges: all black, not noise stretched to 255


@pytest.fixture(scope="module")
def tiny_dpt(tmp_path_factory):
    """A random DPT depth model and its processor saved as a folder (115 k parameters, built from config)."""
    import torch
    from transformers import DPTConfig, DPTForDepthEstimation, DPTImageProcessor

    torch.manual_seed(0)
    config = DPTConfig(hidden_size=32, num_hidden_layers=4, backbone_out_indices=[0, 1, 2, 3], num_attention_heads=4,
                       intermediate_size=37, image_size=32, patch_size=8, neck_hidden_sizes=[16, 16, 32, 32],
                       fusion_hidden_size=16, head_hidden_size=8)
    folder = tmp_path_factory.mktemp("tiny-dpt")
    DPTForDepthEstimation(config).eval().save_pretrained(folder)
    DPTImageProcessor(size={"height": 32, "width": 32}, keep_aspect_ratio=False).save_pretrained(folder)
    yield str(folder)
    preprocessors.clear()


def test_depth_map_from_a_local_estimator_is_loaded_once(square, tiny_dpt):
    before = preprocessors.loads
    out = ig.preprocess(square, "depth", estimator=tiny_dpt)
    arr = np.asarray(out)
    assert out.size == square.size and out.mode == "RGB"
    assert arr.min() == 0 and arr.max() == 255  # min-max scaled
    assert (arr[..., 0] == arr[..., 2]).all()
    again = ig.preprocess(square, "depth", estimator=tiny_dpt)
    assert (np.asarray(again) == arr).all()
    assert preprocessors.loads == before + 1  # the second call reused the loaded estimator


def test_control_with_depth_uses_the_estimator_set_for_every_call(square, tiny_dpt):
    preprocessors.set_estimator("depth", tiny_dpt)
    try:
        assert preprocessors.estimator("depth") == tiny_dpt
        pic = ig.control(square, "a red circle", kind="depth", controlnet="builtin:canny", seed=0,
                         num_inference_steps=2)
    finally:
        preprocessors.set_estimator("depth")
    assert preprocessors.estimator("depth") == preprocessors.DEFAULT_ESTIMATORS["depth"]
    assert pic.size == (64, 48)
    recipe = ig.recipe(pic)
    assert recipe["kind"] == "depth" and recipe["preprocess"] is True
    from_edges = ig.control(square, "a red circle", kind="canny", controlnet="builtin:canny", seed=0,
                            num_inference_steps=2)
    assert np.abs(np.asarray(pic, np.int16) - np.asarray(from_edges, np.int16)).max() > 0  # the map steered it


def test_estimator_errors(square, tmp_path):
    with pytest.raises(ValueError, match="unknown estimator kind 'canny'; choose one of depth, pose"):
        preprocessors.set_estimator("canny", "x")
    with pytest.raises(TypeError, match="the depth estimator must be a Hub id or a local folder .* not int 3"):
        preprocessors.set_estimator("depth", 3)
    with pytest.raises(ValueError, match="estimator= is only for kind='depth' or 'pose', not kind='canny'"):
        ig.preprocess(square, "canny", estimator="x")
    with pytest.raises(ModelNotFoundError, match=f"depth preprocessor needs the folder {tmp_path}"):
        ig.preprocess(square, "depth", estimator=str(tmp_path))  # an empty folder is no model


def test_pose_without_controlnet_aux_names_the_extra(square, monkeypatch):
    monkeypatch.setitem(sys.modules, "controlnet_aux", None)  # import fails as where it is not installed
    with pytest.raises(ImportError, match=r"pose preprocessor needs controlnet-aux.*imagegen-nb\[pose\]"):
        ig.preprocess(square, "pose")


def test_pose_folder_without_weights_is_a_clear_error(square, tmp_path, monkeypatch):
    import types

    fake = types.ModuleType("controlnet_aux")
    fake.OpenposeDetector = object
    fake_open_pose = types.ModuleType("controlnet_aux.open_pose")
    fake_open_pose.Body = object
    monkeypatch.setitem(sys.modules, "controlnet_aux", fake)
    monkeypatch.setitem(sys.modules, "controlnet_aux.open_pose", fake_open_pose)
    with pytest.raises(ModelNotFoundError, match=f"needs body_pose_model.pth from the folder {tmp_path}"):
        ig.preprocess(square, "pose", estimator=tmp_path)


def test_pose_map_is_drawn_by_the_detector_at_the_pictures_size(square, tmp_path, monkeypatch):
    """The plumbing around OpenPose: weights found in the folder, loaded once, the detector's map resized."""
    import types

    (tmp_path / preprocessors.POSE_WEIGHTS).write_bytes(b"")
    made = []

    class Body:
        def __init__(self, weights):
            made.append(weights)

        def to(self, device):
            return self

    class OpenposeDetector:
        def __init__(self, body):
            self.body = body

        def __call__(self, image):  # a skeleton stand-in: one white bar, at the detector's own 32 x 32 size
            out = Image.new("RGB", (32, 32), "black")
            ImageDraw.Draw(out).rectangle([0, 0, 15, 31], fill="white")
            return out

    fake = types.ModuleType("controlnet_aux")
    fake.OpenposeDetector = OpenposeDetector
    fake_open_pose = types.ModuleType("controlnet_aux.open_pose")
    fake_open_pose.Body = Body
    monkeypatch.setitem(sys.modules, "controlnet_aux", fake)
    monkeypatch.setitem(sys.modules, "controlnet_aux.open_pose", fake_open_pose)
    try:
        out = ig.preprocess(square, "pose", estimator=tmp_path)
        ig.preprocess(square, "pose", estimator=tmp_path)
    finally:
        preprocessors.clear()
    assert made == [str(tmp_path / preprocessors.POSE_WEIGHTS)]  # loaded once for two calls
    arr = np.asarray(out)[..., 0]
    assert out.size == square.size
    assert arr[:, :28].min() == 255 and arr[:, 36:].max() == 0  # the left half white, scaled to 64 wide
