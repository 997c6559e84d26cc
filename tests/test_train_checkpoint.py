"""Training checkpoints hold only tensors and plain types and load with `weights_only=True`; a run continued from one
goes on exactly as if it had not stopped."""

from __future__ import annotations

import dataclasses
from collections import OrderedDict

import numpy as np
import pytest
import torch

from imagegen_nb.tiny import components, train


def test_a_checkpoint_round_trips_models_optimizer_schedule_and_config(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, train.lr_lambda(2, 10))
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    sched.step()
    rng = torch.get_rng_state()
    ckpt = train.Checkpoint(tmp_path / "part.pt")
    ckpt.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
               "config": train.TrainConfig(), "rng": rng, "seen": np.int64(7), "mean": np.zeros(2),
               "step": 1, "losses": [0.5], "last": np.float64(0.25)})
    state = torch.load(tmp_path / "part.pt", weights_only=True)
    assert state.keys() == ckpt.load().keys()
    assert state["config"] == dataclasses.asdict(train.TrainConfig())  # a dataclass is stored as its dict
    assert state["seen"] == 7 and type(state["seen"]) is int
    assert type(state["last"]) is float  # np.float64 is a float subclass, but would pickle as a numpy object
    assert torch.equal(state["mean"], torch.zeros(2, dtype=torch.float64)) and torch.equal(state["rng"], rng)
    assert isinstance(state["model"], OrderedDict) and hasattr(state["model"], "_metadata")
    again = torch.nn.Linear(3, 2)
    again_opt = torch.optim.AdamW(again.parameters(), lr=1e-3)
    again_sched = torch.optim.lr_scheduler.LambdaLR(again_opt, train.lr_lambda(2, 10))
    assert train.Checkpoint(tmp_path / "part.pt").restore({"model": again, "opt": again_opt,
                                                           "sched": again_sched}) == (1, [0.5])
    assert torch.equal(again.weight, model.weight)
    assert again_opt.state_dict()["state"][0]["exp_avg"].equal(opt.state_dict()["state"][0]["exp_avg"])
    assert again_sched.last_epoch == sched.last_epoch and again_opt.param_groups[0]["lr"] == opt.param_groups[0]["lr"]


def test_a_checkpoint_holding_other_objects_is_refused(tmp_path):
    with pytest.raises(TypeError, match=r"state\['fn'\] is a function, which a checkpoint loaded with "
                                        "weights_only=True cannot hold"):
        train.Checkpoint(tmp_path / "bad.pt").save({"fn": lambda: 0})
    assert not (tmp_path / "bad.pt").exists()
    torch.save({"step": 1, "losses": [], "path": tmp_path}, tmp_path / "old.pt")  # a Path is pickled as code
    with pytest.raises(ValueError, match="could not be read as tensors and plain types .* delete it"):
        train.Checkpoint(tmp_path / "old.pt").load()


def test_a_stopped_run_continues_exactly(tmp_path):
    cfg = train.TrainConfig(vae_batch=2, checkpoint_every=1)
    whole = train.train_vae(tmp_path / "whole", components.SMOKE, cfg, steps=4)
    train.train_vae(tmp_path / "parts", components.SMOKE, cfg, steps=2)
    continued = train.train_vae(tmp_path / "parts", components.SMOKE, cfg, steps=4)
    assert continued == whole
