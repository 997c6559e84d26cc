"""ig.generate_many: the pictures of two CPU processes (gloo) are those of one, in prompt order, each written with
its recipe; existing files are kept; a failing process loses no finished picture; inside a launch every process
gets all the pictures; bad arguments fail before any work."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import imagegen_nb as ig
from imagegen_nb import many

PROMPTS = ["a red circle", "a blue square", "two green triangles", "a yellow circle"]
FAST = {"num_inference_steps": 2}


@pytest.fixture(scope="module")
def reference():
    """Each picture made alone by ig.generate with seed 5 + i."""
    return [ig.generate(p, seed=5 + i, progress=False, **FAST) for i, p in enumerate(PROMPTS)]


@pytest.fixture(scope="module")
def one_process(tmp_path_factory, reference):
    out = tmp_path_factory.mktemp("one")
    return out, ig.generate_many(PROMPTS, seed=5, num_processes=1, out_dir=out, progress=False, **FAST)


def _same(a, b) -> bool:
    return np.array_equal(np.asarray(a), np.asarray(b)) and ig.recipe(a) == ig.recipe(b)


def _record_pids(monkeypatch, folder, fail_at=None):
    """Make each process note which pictures it made (a fork keeps the patch), and fail at one if asked."""
    folder.mkdir()
    made = many._make_one

    def make_one(job, i):
        if i == fail_at:
            raise ValueError(f"no picture {i} today")
        made(job, i)
        (folder / str(i)).write_text(str(os.getpid()))

    monkeypatch.setattr(many, "_make_one", make_one)
    return lambda: {int(p.name): int(p.read_text()) for p in folder.iterdir()}


def test_one_process_is_each_picture_made_alone_in_prompt_order(one_process, reference):
    out, images = one_process
    assert len(images) == len(PROMPTS)
    assert all(_same(a, b) for a, b in zip(images, reference))
    assert [ig.recipe(im)["prompt"] for im in images] == PROMPTS
    assert [ig.recipe(im)["seed"] for im in images] == [5, 6, 7, 8]
    # each file carries its recipe, and the pictures are read back from the files
    assert sorted(p.name for p in out.iterdir()) == many.file_names(PROMPTS)
    for image, name in zip(images, many.file_names(PROMPTS)):
        assert image.filename == str(out / name)
        assert ig.recipe(out / name) == ig.recipe(image)


def test_two_processes_make_the_pictures_of_one(tmp_path, monkeypatch, one_process):
    made_by = _record_pids(monkeypatch, tmp_path / "pids")
    out = tmp_path / "two"
    images = ig.generate_many(PROMPTS, seed=5, num_processes=2, out_dir=out, progress=False, **FAST)
    assert all(_same(a, b) for a, b in zip(images, one_process[1]))  # pixels and recipes
    assert [ig.recipe(im)["prompt"] for im in images] == PROMPTS
    assert sorted(p.name for p in out.iterdir()) == many.file_names(PROMPTS)
    pids = made_by()
    # two other processes, each its contiguous share (split_between_processes)
    assert pids[0] == pids[1] != pids[2] == pids[3] and os.getpid() not in pids.values()


def test_existing_files_are_not_overwritten(tmp_path, one_process):
    out = tmp_path / "out"
    out.mkdir()
    first = out / many.file_names(PROMPTS)[0]
    first.write_bytes(b"keep me")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        ig.generate_many(PROMPTS, num_processes=1, out_dir=out, progress=False, **FAST)
    assert first.read_bytes() == b"keep me" and sorted(out.iterdir()) == [first]  # nothing made
    images = ig.generate_many(PROMPTS[:1], seed=5, num_processes=1, out_dir=out, overwrite=True, progress=False,
                              **FAST)
    assert _same(images[0], one_process[1][0]) and ig.recipe(first)["seed"] == 5


def test_a_failing_process_loses_no_finished_picture(tmp_path, monkeypatch):
    prompts = PROMPTS + ["a red square", "a blue circle"]  # shares 0-2 and 3-5
    made_by = _record_pids(monkeypatch, tmp_path / "pids", fail_at=4)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match=r"process 1 of 2 failed at picture 4 \('a red square'\): ValueError: "
                                           r"no picture 4 today.*4 of the 6 pictures.*missing: 4, 5"):
        ig.generate_many(prompts, seed=5, num_processes=2, out_dir=out, progress=False, **FAST)
    names = many.file_names(prompts)
    assert sorted(p.name for p in out.iterdir()) == names[:4]  # process 0 finished its share, process 1 picture 3
    assert sorted(made_by()) == [0, 1, 2, 3]
    assert [ig.recipe(out / n)["seed"] for n in names[:4]] == [5, 6, 7, 8]


def _inside_a_launch(out_dir, results):
    """A user's function under a launcher: generate_many makes this process's share and returns all pictures."""
    images = ig.generate_many(PROMPTS, seed=5, out_dir=out_dir, progress=False, **FAST)
    rank = os.environ["RANK"]
    with open(os.path.join(results, f"{rank}.json"), "w") as f:
        json.dump([{"recipe": ig.recipe(im), "pixels": np.asarray(im).tolist()} for im in images], f)


def test_inside_a_launch_each_process_makes_its_share_and_gets_all(tmp_path, monkeypatch, one_process):
    from accelerate import notebook_launcher

    made_by = _record_pids(monkeypatch, tmp_path / "pids")
    results = tmp_path / "results"
    results.mkdir()
    notebook_launcher(_inside_a_launch, args=(str(tmp_path / "out"), str(results)), num_processes=2,
                      use_port=str(many._free_port()))
    expected = [{"recipe": ig.recipe(im), "pixels": np.asarray(im).tolist()} for im in one_process[1]]
    for rank in ("0", "1"):
        assert json.loads((results / f"{rank}.json").read_text()) == expected
    pids = made_by()
    assert pids[0] == pids[1] != pids[2] == pids[3]


@pytest.mark.parametrize("kwargs, error, match", [
    ({"guidnce_scale": 2.0}, TypeError, "did you mean 'guidance_scale'"),
    ({"steps": 4}, TypeError, "did you mean 'num_inference_steps'"),
    ({"num_images": 2}, TypeError, "one picture per prompt"),
    ({"batch_size": 2}, TypeError, "made alone"),
    ({"run": None}, TypeError, "across processes"),
    ({"generator": None}, TypeError, "seed="),
    ({"guidance_scale": -1.0}, ValueError, "guidance_scale must be at least 0"),
    ({"seed": None}, TypeError, "seed must be a whole number"),
    ({"seed": "3"}, TypeError, "pass a number without quotes"),
    ({"num_processes": 0}, ValueError, "num_processes must be at least 1"),
    ({"num_processes": 5}, ValueError, "more than the 4 prompts"),
    ({"num_processes": 1.5}, TypeError, "num_processes must be a whole number"),
    ({"overwrite": "yes"}, TypeError, "overwrite must be True or False"),
    ({"width": 64}, TypeError, "without height"),
])
def test_bad_arguments_fail_before_any_work(tmp_path, kwargs, error, match):
    out = tmp_path / "out"
    with pytest.raises(error, match=match):
        ig.generate_many(PROMPTS, out_dir=out, **{"num_processes": 1, **kwargs})
    assert not out.exists()


@pytest.mark.parametrize("prompts, match", [("a red circle", "not one string"), ([], "non-empty list"),
                                            (["a red circle", 3], r"prompts\[1\] must be a string")])
def test_bad_prompts(tmp_path, prompts, match):
    with pytest.raises(TypeError, match=match):
        ig.generate_many(prompts, out_dir=tmp_path / "out", num_processes=1)


def test_out_dir_must_be_a_folder(tmp_path):
    with pytest.raises(TypeError, match="out_dir must be a folder path"):
        ig.generate_many(PROMPTS, out_dir=3, num_processes=1)
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError, match="is a file"):
        ig.generate_many(PROMPTS, out_dir=tmp_path / "file", num_processes=1)


@pytest.mark.parametrize("how", ["initialised", "fork guard"])
def test_cuda_in_use_before_the_launch_is_refused(tmp_path, monkeypatch, how):
    import torch

    monkeypatch.setattr(many, "_use_cuda", lambda: True)
    monkeypatch.setattr(many, "_device_count", lambda: 2)
    if how == "initialised":
        monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    else:  # what a process forked after torch.cuda.is_available() would find (the probe's fork sees the patch)
        monkeypatch.setattr(torch.cuda, "_is_in_bad_fork", lambda: True)
    launched = []
    monkeypatch.setattr(many, "_work", lambda job: launched.append(job))
    with pytest.raises(RuntimeError, match="Restart the kernel and call ig.generate_many before any of those"):
        ig.generate_many(PROMPTS, num_processes=2, out_dir=tmp_path / "out", progress=False, **FAST)
    with pytest.raises(ValueError, match=r"more than the CUDA GPUs \(2\)"):
        ig.generate_many(PROMPTS, num_processes=3, out_dir=tmp_path / "out", progress=False, **FAST)
    assert launched == [] and not (tmp_path / "out").exists()


def test_a_fork_here_can_use_cuda_when_nothing_touched_it():
    assert many._forks_cannot_use_cuda() is False


def test_a_launch_fixes_the_number_of_processes(tmp_path, monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="one of 2 launched already"):
        ig.generate_many(PROMPTS, num_processes=4, out_dir=tmp_path / "out", **FAST)


def test_the_progress_bar_counts_the_files_of_each_share(tmp_path):
    job = many._Job(prompts=["p"] * 5, seeds=list(range(5)), paths=[str(tmp_path / f"{i}.png") for i in range(5)],
                    model=None, overwrite=False)
    bar = many._Progress(job, 2, False)  # shares 0-2 and 3-4
    for i in (0, 3, 4):
        (tmp_path / f"{i}.png").write_bytes(b"")
    assert bar.count() == 3
    (tmp_path / "2.png").write_bytes(b"")  # not counted before 1: each share is written in order
    assert bar.count() == 0
    (tmp_path / "1.png").write_bytes(b"")
    assert bar.count() == 2 and bar.next == [3, 5]


def test_file_names_keep_prompt_order():
    names = many.file_names([f"prompt {i}" for i in range(12000)])
    assert names[:2] == ["00000-prompt-0.png", "00001-prompt-1.png"] and names == sorted(names)
    assert many.file_names(["!!!"]) == ["0000.png"]
