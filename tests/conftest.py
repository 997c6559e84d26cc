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
def one_thread():
    """One torch thread for the test (steadier beside other work on a small CPU), and the count it found given
    back afterwards, whatever the test set."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def pixels():
    """The pixels of a PIL image as an int16 array (so differences do not wrap)."""
    return lambda image: np.asarray(image.convert("RGB"), dtype=np.int16)


@pytest.fixture
def implied_noise():
    """The noise eps a VP trace's recorded model outputs stand for, (steps, C, H, W) float64, worked out here from
    `trace.model_output` (or the outputs given, e.g. `trace.model_output_cond`) by the textbook relations, to check
    the library's `trace.noise` against: eps itself, or for v = sqrt(ab) eps - sqrt(1 - ab) x0,
    eps = sqrt(ab) v + sqrt(1 - ab) x_t."""

    def noise(trace, output=None):
        output = (trace.model_output if output is None else output).double()
        if trace.prediction_type == "epsilon":
            return output
        assert trace.prediction_type == "v_prediction" and trace.schedule_kind == "vp"
        ab = trace.alpha_bar.view(-1, 1, 1, 1)
        return ab.sqrt() * output + (1 - ab).sqrt() * trace.latents.double()

    return noise
