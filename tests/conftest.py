"""Shared test set-up: one CPU thread (steadier on a 2-core machine), no network, and tiny models on disk."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


def pytest_configure(config):
    import torch

    torch.set_num_threads(1)


@pytest.fixture
def pixels():
    """The pixels of a PIL image as an int16 array (so differences do not wrap)."""
    return lambda image: np.asarray(image.convert("RGB"), dtype=np.int16)
