"""Many prompts on many processes: `generate_many` splits a list of prompts between processes (one per GPU) with
Hugging Face Accelerate, each process writes each picture with its recipe as it finishes, and the caller gets the
pictures back in prompt order, read from those files.

Picture `i` gets seed `seed + i` whichever process makes it, and each is made alone (one picture per pipeline
call), so the pictures are the same on one process or eight.

>>> import imagegen_nb as ig, tempfile
>>> images = ig.generate_many(["a red circle", "a blue square"], seed=3, num_processes=1,
...                           out_dir=tempfile.mkdtemp(), num_inference_steps=4)
>>> [(ig.recipe(im)["prompt"], ig.recipe(im)["seed"]) for im in images]
[('a red circle', 3), ('a blue square', 4)]
"""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import os
import re
import shutil
import socket
import tempfile
import threading
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import arguments, devices, recipes, registry, tasks
from .display import ImageList, enlarge_when_small

__all__ = ["generate_many"]

# generate()'s arguments that generate_many sets itself or cannot pass on, with what to do instead.
NOT_PASSED = {
    "prompt": "give the prompts as the first argument, a list",
    "num_images": "it makes one picture per prompt; repeat a prompt in the list for several pictures of it",
    "batch_size": "each picture is made alone, so that it is the same on any number of processes",
    "run": "an ig.Run cannot listen across processes; generate_many shows one progress bar for the whole job",
}
POLL_SECONDS = 0.25  # how often the progress bar looks for finished files


def generate_many(prompts, *, out_dir, seed: int = 0, num_processes: int | None = None, model=None,
                  overwrite: bool = False, progress: bool | None = None, **generate_kwargs) -> ImageList:
    """Make one picture per prompt, split between `num_processes` processes, and return them in prompt order.

    Picture `i` gets seed `seed + i` wherever it runs, and is made alone by `ig.generate(prompts[i],
    seed=seed + i, model=model, **generate_kwargs)`, so the result does not depend on the number of processes
    (on the CPU, bit for bit). Each process writes each of its pictures as soon as it is made, as a PNG with its
    recipe, to `out_dir/NNNN-<prompt>.png` (`NNNN` the prompt's place in the list); the pictures returned are
    read back from those files, in prompt order, and carry their recipes (`ig.recipe(image)`, `image.filename`).

    Existing files are never replaced: if a picture's file is already there, the call refuses with a
    `FileExistsError` before any work (pass another `out_dir`, or `overwrite=True` to replace them).

    `num_processes` (default: one per CUDA GPU, or 1 without CUDA) processes are started with Accelerate's
    `notebook_launcher`, which forks this process; each takes its contiguous share of the prompts
    (`PartialState.split_between_processes`). With CUDA, process `k` runs on `cuda:k` (`ig.set_device`; pass
    `dtype=` for another precision), and nothing may have used CUDA in this process before the launch: no picture
    made on the GPU, no `torch.cuda.is_available()` or `ig.set_device` (they set up CUDA's driver here, and a
    forked process cannot use CUDA then). The call looks first and refuses with a `RuntimeError` that says so.
    Without CUDA the processes run on the CPU, talk over gloo, and share this process's CPU threads. With one
    process nothing is launched: the pictures are made here. Called inside a script already started by
    `accelerate launch` (or in a function started by `notebook_launcher`), it starts nothing: this process makes
    its share on `cuda:<local process index>` (keeping the dtype and memory policy of an `ig.set_device` there),
    and every process gets all the pictures (their files must be on a disk all of them see).

    A process that fails stops at that picture; the other processes finish their shares, every finished picture
    stays in `out_dir`, and the call then raises a `RuntimeError` naming the process, the picture and the error.
    (A process killed outright, for memory say, stops the others too; what they finished stays.)

    `progress=None` shows one bar for the whole job (counting pictures written) after a second; True shows it at
    once, False hides it. Other keyword arguments go to `ig.generate` and are checked before anything starts
    (a wrong name is a `TypeError` with the nearest right one); `num_images`, `batch_size` and `run` are refused.

    >>> import imagegen_nb as ig, tempfile, os
    >>> out = tempfile.mkdtemp()
    >>> images = ig.generate_many(["a red circle", "a green triangle"], seed=10, num_processes=1, out_dir=out,
    ...                           num_inference_steps=4)
    >>> sorted(os.listdir(out)), ig.recipe(images[1])["seed"]
    (['0000-a-red-circle.png', '0001-a-green-triangle.png'], 11)
    """
    # 1. Check every argument before any work: nothing starts that would fail on a bad value.
    prompts = _check_prompts(prompts)
    n = len(prompts)
    seed = arguments.integer("seed", seed, low=0, high=arguments.MAX_SEED)
    seeds = arguments.seeds(seed, n)
    overwrite = arguments.flag("overwrite", overwrite)
    progress = arguments.flag("progress", progress, optional=True)
    if not isinstance(out_dir, (str, os.PathLike)):
        raise TypeError(f"out_dir must be a folder path (a string or a Path), not {type(out_dir).__name__}")
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"out_dir {str(out)!r} is a file, not a folder; give a folder to write the "
                                 "pictures into")
    _check_generate_kwargs(prompts, seeds, model, generate_kwargs)
    paths = [out / name for name in file_names(prompts)]
    if not overwrite:
        taken = [p for p in paths if p.exists()]
        if taken:
            raise FileExistsError(f"{len(taken)} of the {n} pictures' files are already in {str(out)!r} (the first "
                                  f"is {taken[0].name!r}); pass another out_dir, or overwrite=True to replace them")
    job = _Job(prompts=prompts, seeds=seeds, paths=[str(p) for p in paths], model=model, overwrite=overwrite,
               generate_kwargs=generate_kwargs)

    # 2. Inside a launch already (accelerate launch, or a function notebook_launcher started): this process's share.
    if _launched():
        world = _world_size()
        if num_processes is not None and num_processes != world:
            raise ValueError(f"num_processes={num_processes!r}, but this process is one of {world} launched "
                             "already (accelerate launch or notebook_launcher), which share the prompts; leave "
                             "num_processes out")
        return _share_in_launch(job, progress)

    cuda = _use_cuda()
    if num_processes is None:
        num_processes = min(n, _device_count()) if cuda else 1
    limit = (_device_count(), "the CUDA GPUs") if cuda else (os.cpu_count() or 1, "the CPU cores")
    num_processes = _check_num_processes(num_processes, n, *limit)
    if num_processes > 1 and (cuda or _device_count() > 0) and _forks_cannot_use_cuda():
        raise RuntimeError(
            "CUDA is already in use in this process (a picture was made on the GPU here, or torch.cuda."
            "is_available(), ig.set_device or another torch.cuda call ran), so the processes notebook_launcher "
            "forks from it cannot use CUDA. Restart the kernel and call ig.generate_many before any of those "
            "(importing imagegen_nb is fine; generate_many gives each process its GPU), or run a script with "
            "`accelerate launch`.")
    out.mkdir(parents=True, exist_ok=True)

    # 3. One process: make the pictures here.
    if num_processes == 1:
        with _Progress(job, 1, progress) as bar:
            for i in range(n):
                _make_one(job, i)
                bar.update()
        return _read(job)

    # 4. Several: fork them with notebook_launcher; each writes its pictures, and reports an error in a file.
    job.cuda = cuda
    job.placement = _chosen()
    job.threads = _threads_each(num_processes)
    job.errors_dir = tempfile.mkdtemp(prefix="imagegen_nb-many-")
    try:
        from accelerate import notebook_launcher
        from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

        crashed = None
        with _Progress(job, num_processes, progress, poll=True), contextlib.redirect_stdout(io.StringIO()):
            try:  # (notebook_launcher prints a line about "training"; library code is quiet)
                notebook_launcher(_work, args=(job,), num_processes=num_processes, use_port=str(_free_port()))
            except ChildFailedError as err:  # a process that died without reporting (killed, out of memory, ...)
                crashed = err
        _raise_if_failed(job, _reports(job.errors_dir), crashed)
    finally:
        shutil.rmtree(job.errors_dir, ignore_errors=True)
    return _read(job)


@dataclass
class _Job:
    """What every process needs to make its share (plain data, so it also crosses a spawn)."""

    prompts: list[str]
    seeds: list[int]
    paths: list[str]
    model: Any
    overwrite: bool
    generate_kwargs: dict[str, Any] = field(default_factory=dict)
    cuda: bool = False
    placement: devices.Placement | None = None  # the ig.set_device choice of the launching process
    threads: int = 1  # CPU threads per process
    errors_dir: str | None = None  # where a failed process writes its report


def file_names(prompts: list[str]) -> list[str]:
    """The file names of the pictures: the prompt's place in the list, then its words.

    >>> file_names(["a red circle", "Two BLUE squares!"])
    ['0000-a-red-circle.png', '0001-two-blue-squares.png']
    """
    width = max(4, len(str(len(prompts) - 1)))
    names = []
    for i, prompt in enumerate(prompts):
        words = re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-")[:48].rstrip("-")
        names.append(f"{i:0{width}d}{'-' + words if words else ''}.png")
    return names


# -- checks -----------------------------------------------------------------------------------------------------

def _check_prompts(prompts) -> list[str]:
    if isinstance(prompts, str):
        raise TypeError("prompts must be a list of prompts, not one string; for one prompt use ig.generate, or "
                        f"pass [{prompts[:40]!r}]")
    if not isinstance(prompts, (list, tuple)) or not prompts:
        raise TypeError(f"prompts must be a non-empty list of strings, not {prompts!r}"[:300])
    for i, prompt in enumerate(prompts):
        if not isinstance(prompt, str):
            raise TypeError(f"prompts[{i}] must be a string, not {type(prompt).__name__} {prompt!r}"[:300])
        arguments.text(f"prompts[{i}]", prompt)
    return list(prompts)


def _check_num_processes(num_processes, n: int, most: int, what: str) -> int:
    num_processes = arguments.integer("num_processes", num_processes, low=1)
    if num_processes > n:
        raise ValueError(f"num_processes={num_processes} is more than the {n} prompts: a process would have nothing "
                         f"to do; use at most num_processes={n}")
    if num_processes > most:
        raise ValueError(f"num_processes={num_processes} is more than {what} ({most}); use at most "
                         f"num_processes={most}")
    return num_processes


def _check_generate_kwargs(prompts: list[str], seeds: list[int], model, generate_kwargs: dict[str, Any]) -> None:
    """Check the arguments `ig.generate` gets as it checks them, and refuse names it takes but no process can."""
    own = [name for name, p in inspect.signature(tasks.generate).parameters.items()
           if p.kind is p.KEYWORD_ONLY and name not in ("seed", "model", "progress")]
    for name in generate_kwargs:
        if name in NOT_PASSED:
            raise TypeError(f"generate_many() does not take {name!r}: {NOT_PASSED[name]}")
        if name in arguments.MANAGED:
            raise TypeError(f"generate_many() does not take {name!r}: {arguments.MANAGED[name]}")
    unknown = [name for name in generate_kwargs if name not in own]
    if unknown:  # a pipeline argument: it must be one the model's pipeline takes
        _, family = registry.resolve(model, allow_pickle=bool(generate_kwargs.get("allow_pickle", False)))
        valid = {"prompts", "out_dir", "seed", "num_processes", "model", "overwrite", "progress"} | \
            set(own) - set(NOT_PASSED)
        takes = _pipeline_arguments(family.pipeline)
        for name in unknown:
            if name in arguments.ALIASES or (takes is not None and name not in takes):
                raise arguments.unknown_argument("generate_many", name, valid | (takes or set()))
    with tasks.checking_only():  # every value, and every prompt with the model's rules (weights, length)
        step = arguments.limits.max_images
        for k in range(0, len(prompts), step):
            chunk = prompts[k:k + step]
            tasks.generate(chunk if len(chunk) > 1 else chunk[0], seed=seeds[k:k + step] if len(chunk) > 1 else
                           seeds[k], model=model, progress=False, **generate_kwargs)


def _pipeline_arguments(class_name: str) -> set[str] | None:
    """The keyword arguments a diffusers pipeline class's `__call__` names that a caller may pass (None: unknown)."""
    import importlib

    cls = getattr(importlib.import_module("diffusers"), class_name, None)
    if cls is None:
        return None
    params = inspect.signature(cls.__call__).parameters
    return {n for n, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and n != "self"} - \
        set(arguments.MANAGED)


# -- where the processes run ------------------------------------------------------------------------------------

def _chosen() -> devices.Placement | None:
    """The placement `ig.set_device` chose, or None (read without `devices.current()`, whose automatic dtype
    choice asks the GPU and so initialises CUDA)."""
    return devices._override


def _use_cuda() -> bool:
    """Whether the processes run on CUDA GPUs: the device `ig.set_device` chose, else CUDA when there is a GPU."""
    chosen = _chosen()
    if chosen is not None:
        return chosen.device.startswith("cuda")
    return _device_count() > 0


def _device_count() -> int:
    """The CUDA GPUs, counted through NVML where it can be (`torch.cuda.is_available()` would set up CUDA's driver
    in this process, and a process forked from it could not use CUDA then)."""
    import torch

    return torch.cuda.device_count()


def _forks_cannot_use_cuda() -> bool:
    """Whether a process forked from this one could not use CUDA (CUDA initialised here, or torch's fork guard set
    by a CUDA call): a fork made here looks, and exits at once."""
    import torch

    if torch.cuda.is_initialized():
        return True
    pid = os.fork()
    if pid == 0:  # the forked process: only reads torch's flag
        code = 2
        try:
            code = 1 if torch.cuda._is_in_bad_fork() else 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 1


def _threads_each(num_processes: int) -> int:
    """CPU threads per process: this process's torch threads shared between them."""
    import torch

    return max(1, torch.get_num_threads() // num_processes)


def _world_size() -> int:
    import torch

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


def _launched() -> bool:
    """Whether this process is one of several already launched (accelerate launch, torchrun, notebook_launcher)."""
    return "LOCAL_RANK" in os.environ and _world_size() > 1


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _state(cuda: bool):
    """Accelerate's state of this process: gloo between CPU processes, NCCL between GPUs."""
    import torch
    from accelerate import PartialState

    if "LOCAL_RANK" in os.environ and not torch.distributed.is_initialized() and PartialState._shared_state:
        PartialState._reset_state()  # a state forked from the launching process is not this process's
    return PartialState() if cuda else PartialState(cpu=True, backend="gloo")


def _place(job: _Job, local_index: int) -> None:
    """Process `local_index` on its own GPU (keeping the dtype and memory policy chosen before), and a model
    the cache holds on another device loaded again."""
    from . import cache

    chosen = job.placement
    device = f"cuda:{local_index}"
    devices.set_device(device, dtype=chosen.dtype if chosen else None, memory=chosen.memory if chosen else "auto")
    name = registry.BUILTIN if job.model is None else str(job.model)
    for entry in cache.info()["models"]:
        if entry["model"] == name and entry["device"] != device:
            cache.evict(job.model)


def _make_one(job: _Job, i: int) -> None:
    """Picture `i`: made alone with its own seed, written with its recipe."""
    image = tasks.generate(job.prompts[i], seed=job.seeds[i], model=job.model, progress=False,
                           **job.generate_kwargs)
    recipes.save(image, job.paths[i], overwrite=job.overwrite)


def _work(job: _Job) -> None:
    """The function notebook_launcher runs in each process: its share of the pictures, and a report if one fails
    (written, not raised, so that the other processes finish their shares)."""
    import torch

    launched = "LOCAL_RANK" in os.environ  # (not when notebook_launcher calls it here: Colab, one device)
    if launched and not job.cuda:
        os.environ.setdefault("OMP_NUM_THREADS", str(job.threads))  # (else accelerate picks and warns)
        torch.set_num_threads(job.threads)
    state = _state(job.cuda)
    if job.cuda and state.num_processes > 1:
        _place(job, state.local_process_index)
    index = None
    try:
        with state.split_between_processes(list(range(len(job.prompts)))) as mine:
            for index in mine:
                _make_one(job, index)
    except Exception as err:
        _report(job, state, index, err)
    finally:
        if launched and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _failure(state, index: int | None, err: Exception) -> dict[str, Any]:
    """What a process that failed at picture `index` reports (called where the error is caught)."""
    return {"process": state.process_index, "processes": state.num_processes, "index": index,
            "error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()}


def _report(job: _Job, state, index: int | None, err: Exception) -> None:
    path = Path(job.errors_dir or ".") / f"process-{state.process_index}.json"
    path.write_text(json.dumps(_failure(state, index, err)), encoding="utf-8")


def _reports(errors_dir: str) -> list[dict[str, Any]]:
    found = sorted(Path(errors_dir).glob("process-*.json"), key=lambda p: int(p.stem.split("-")[1]))
    return [json.loads(p.read_text(encoding="utf-8")) for p in found]


def _raise_if_failed(job: _Job, reports: list[dict[str, Any]], crashed: Exception | None) -> None:
    """A RuntimeError naming the process, the picture and the error, and what is in the folder, if any failed."""
    missing = [i for i, p in enumerate(job.paths) if not Path(p).exists()]
    if not reports and crashed is None and not missing:
        return
    folder = str(Path(job.paths[0]).parent)
    kept = f"{len(job.paths) - len(missing)} of the {len(job.paths)} pictures are in {folder!r}"
    if missing:
        kept += f" (missing: {', '.join(map(str, missing[:10]))}{', ...' if len(missing) > 10 else ''})"
    if reports:
        first = reports[0]
        i = first["index"]
        where = f" at picture {i} ({job.prompts[i]!r})" if i is not None else ""
        error = RuntimeError(f"process {first['process']} of {first['processes']} failed{where}: {first['error']}; "
                             f"the other pictures made are kept: {kept}")
        for report in reports:
            error.add_note(f"process {report['process']}: {report['traceback']}")
        raise error
    if crashed is not None:
        how = "; ".join(f"process {rank} exited with code {failure.exitcode}" for rank, failure in
                        sorted(getattr(crashed, "failures", {}).items()))
        raise RuntimeError(f"a process ended without finishing its share ({how or type(crashed).__name__}: killed, "
                           f"or out of memory?): {kept}") from crashed
    raise RuntimeError(f"the processes ended without writing every picture: {kept}")


def _share_in_launch(job: _Job, progress: bool | None) -> ImageList:
    """Inside a launch: this process makes its share, and every process returns all the pictures."""
    from accelerate.utils import gather_object

    chosen = _chosen()
    job.cuda = _use_cuda()
    job.placement = chosen
    state = _state(job.cuda)
    if job.cuda:
        _place(job, state.local_process_index)
    Path(job.paths[0]).parent.mkdir(parents=True, exist_ok=True)
    state.wait_for_everyone()  # every process has looked for existing files before any writes one
    report = None
    main = state.is_main_process
    try:
        with _Progress(job, state.num_processes, progress if main else False, poll=main):
            index = None
            try:
                with state.split_between_processes(list(range(len(job.prompts)))) as mine:
                    for index in mine:
                        _make_one(job, index)
            except Exception as err:
                report = _failure(state, index, err)
            reports = [r for r in gather_object([report]) if r is not None]
    finally:
        if job.cuda:  # this process's device choice as it was
            devices.set_device(*((chosen.device, chosen.dtype, chosen.memory) if chosen else ()))
    _raise_if_failed(job, reports, None)
    return _read(job)


def _read(job: _Job) -> ImageList:
    """The pictures from their files, in prompt order, each carrying its recipe and its file's name."""
    from . import inputs

    images = ImageList()
    for path in job.paths:
        image = inputs.open_file(path)
        copy = image.copy()  # (a plain image, shown enlarged like ig.generate's)
        copy.filename = path
        images.append(enlarge_when_small(copy))
    return images


class _Progress:
    """One tqdm.auto bar for the whole job, counting pictures written. With `poll=True` a thread looks for the
    files (each process writes its share in order, so it watches the next file of each share)."""

    def __init__(self, job: _Job, num_processes: int, progress: bool | None, *, poll: bool = False):
        self.job, self.progress, self.poll = job, progress, poll
        n, k = len(job.paths), num_processes
        per, extra = divmod(n, k)
        starts = [p * per + min(p, extra) for p in range(k)]
        self.next = list(starts)  # each share's next picture
        self.ends = starts[1:] + [n]
        self.done = 0
        self.bar = None
        self._stop = threading.Event()
        self._thread = None

    def __enter__(self) -> _Progress:
        if self.progress is not False:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=len(self.job.paths), delay=0 if self.progress else 1.0, leave=False,
                            unit="picture")
        if self.poll:
            self._thread = threading.Thread(target=self._watch, daemon=True)
            self._thread.start()
        return self

    def update(self, k: int = 1) -> None:
        self.done += k
        if self.bar is not None and k:
            self.bar.update(k)

    def count(self) -> int:
        """Pictures whose files have appeared since the last count."""
        found = 0
        for share, end in enumerate(self.ends):
            while self.next[share] < end and os.path.exists(self.job.paths[self.next[share]]):
                self.next[share] += 1
                found += 1
        return found

    def _watch(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            self.update(self.count())

    def __exit__(self, *exc) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self.update(self.count())
        if self.bar is not None:
            self.bar.close()
