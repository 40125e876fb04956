"""Workers: more processes, GPUs and machines on one study, through the shared study store.

We do not schedule anything ourselves. The process that owns a search queues its trials in
the study (:func:`nas_core.search.budget.top_up`); any number of workers, on this machine or
others, pop queued trials until none is left. Heartbeats mark a dead worker's trial failed and
queue it again; the database is the only thing workers share (plus, for finalising the best
trial, the workspace that holds its weights).
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import optuna
from optuna.trial import TrialState

from nas_core.common.workspace import ENV_VAR as WORKSPACE_ENV
from nas_core.common.workspace import STORAGE_ENV, workspace_root
from nas_core.data.dataset import Dataset
from nas_core.data.store import load_stored, read_normalised
from nas_core.search.budget import FINISHED
from nas_core.search.config import CONFIG_ATTR, Heartbeat, SearchConfig
from nas_core.search.objective import SearchListener
from nas_core.search.optuna_internals import grace_period, heartbeat_interval, storage_url
from nas_core.search.storage import (
    database_errors,
    database_reason,
    full_url,
    make_storage,
    public_url,
    requeue,
)
from nas_core.search.study import optimize

logger = logging.getLogger(__name__)
MAX_RECONNECTS = 5  # in a row without any trial finishing


class WorkerError(Exception):
    """A worker cannot start or go on; the message says why and what to do."""


class DatabaseUnreachable(WorkerError):
    """The study database did not answer within the wait."""


def connect(study_name: str, storage: str, *, root=None, heartbeat: Heartbeat | None = None,
            wait_seconds: float = 0.0) -> optuna.Study:
    """Load an existing study, waiting up to ``wait_seconds`` for the database to answer."""
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            study = optuna.load_study(study_name=study_name,
                                      storage=make_storage(storage, root, heartbeat=heartbeat))
            break
        except KeyError:
            names = optuna.get_all_study_names(make_storage(storage, root, heartbeat=heartbeat))
            raise WorkerError(f"there is no study '{study_name}' in {public_url(storage)}; "
                              f"studies there: {', '.join(names) or 'none'}. Start the search "
                              "first (app or `search`), then its workers.") from None
        except database_errors() as exc:
            if time.monotonic() >= deadline:
                raise DatabaseUnreachable(_lost(storage, exc, wait_seconds)) from None
            time.sleep(min(5.0, max(0.5, wait_seconds / 20)))
    if CONFIG_ATTR not in study.user_attrs:
        raise WorkerError(f"study '{study_name}' was not created by ESM-NAS Studio (it has no "
                          "search configuration): a worker cannot join it.")
    return study


def _lost(storage: str, exc: BaseException, waited: float) -> str:
    reason = database_reason(exc)
    return (f"cannot reach the study database {public_url(storage)} (waited {waited:.0f} s): "
            f"{reason}. Completed trials are safe in the database; start the worker again "
            "when it answers.")


def dataset_for(study: optuna.Study, path: str | os.PathLike[str] | None = None) -> Dataset:
    """The study's dataset: from ``path`` (a copy for machines without a shared filesystem)
    or where the study says it lives; refused if its fingerprint is not the study's."""
    attrs = study.user_attrs
    where = Path(path or attrs.get("dataset_path") or "")
    if not str(where) or not where.exists():
        raise WorkerError(
            f"the dataset of study '{study.study_name}' is not at '{where}' on this machine: "
            "copy the study's dataset folder (workspace/datasets/<id>/, or its data.csv) here "
            "and pass --data PATH.")
    folder = where if where.is_dir() else where.parent
    if (folder / "meta.json").is_file():
        try:
            dataset = load_stored(folder)
        except ValueError as exc:
            raise WorkerError(str(exc)) from None
    else:  # a bare data.csv: the study knows the task and the label names
        csv = where if where.is_file() else where / "data.csv"
        dataset = read_normalised(csv, attrs["task"], attrs.get("label_names"),
                                  attrs.get("dataset_name", csv.stem))
    expected = attrs.get("dataset_fingerprint", "")
    if dataset.fingerprint != expected:
        raise WorkerError(
            f"the dataset at '{where}' is not the one study '{study.study_name}' was started on "
            f"(fingerprint {dataset.fingerprint[:12]}, the study's {expected[:12]}): copy the "
            "study's own dataset folder, unchanged, to this machine.")
    return dataset


def join(study_name: str, storage: str, *, device: str | None = None, data: str | None = None,
         root=None, heartbeat: Heartbeat | None = None, db_wait: float = 300.0,
         seed_offset: int | None = None, listeners: Sequence[SearchListener] = (),
         should_stop: Callable[[], bool] | None = None) -> int:
    """Run the study's queued trials until its budget is reached; returns the trials this
    worker finished. A lost database is waited for (``db_wait`` seconds) and reconnected."""
    study = connect(study_name, storage, root=root, heartbeat=heartbeat, wait_seconds=db_wait)
    config = SearchConfig.from_dict(study.user_attrs[CONFIG_ATTR])
    dataset = dataset_for(study, data)
    offset = (os.getpid() % 9973) + 1 if seed_offset is None else seed_offset
    pid = os.getpid()
    failures = 0
    while True:
        done_before = len(study.get_trials(deepcopy=False, states=FINISHED))
        try:
            optimize(study, config, dataset, root=root, listeners=listeners,
                     should_stop=should_stop, device=device, seed_offset=offset,
                     db_wait=db_wait)
            break
        except database_errors() as exc:
            reason = database_reason(exc)
            failures += 1
            if failures > MAX_RECONNECTS:
                raise DatabaseUnreachable(
                    f"the study database failed {failures} times in a row ({reason}); "
                    "completed trials are safe in it. Check the database, then start the "
                    "worker again.") from None
            logger.warning("lost the study database (%s); reconnecting", reason)
            study = connect(study_name, storage, root=root, heartbeat=heartbeat,
                            wait_seconds=db_wait)
            if len(study.get_trials(deepcopy=False, states=FINISHED)) > done_before:
                failures = 0
    mine = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("pid") == pid
            and t.user_attrs.get("host") == _host()]
    for trial in mine:  # a stopped worker gives its interrupted trial back to the queue
        if trial.state == TrialState.FAIL and trial.user_attrs.get("cancelled"):
            requeue(study, trial)
    return sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in mine)


def _host() -> str:
    return socket.gethostname()


def parse_workers(value: str | int | None) -> int | None:
    """``auto`` (one per GPU) -> None; otherwise a positive count."""
    if value is None or value == "auto":
        return None
    count = int(value)
    if count < 1:
        raise ValueError("workers must be 'auto' or at least 1.")
    return count


def worker_devices(workers: int | None, devices: Sequence[str]) -> list[str]:
    """Devices for ``workers`` processes: one per GPU for ``auto``; on a CPU machine, N
    CPU workers share the cores."""
    if workers is None:
        return list(devices)
    if all(d == "cpu" for d in devices):
        return ["cpu"] * workers
    return list(devices[:workers])


def spawn(study: optuna.Study, devices: Sequence[str], *, root=None, data: str | None = None,
          first_offset: int = 1, log_dir: Path | None = None) -> list[subprocess.Popen]:
    """Start ``python -m nas_core worker`` processes on ``devices`` for ``study``.

    The storage URL (and its password) travels in the environment, never on the command line.
    """
    url = public_url(storage_url(study))
    root = workspace_root(root)
    env = {**os.environ, STORAGE_ENV: full_url(url), WORKSPACE_ENV: str(root)}
    cpu_workers = sum(d == "cpu" for d in devices)
    if cpu_workers:
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // (cpu_workers + 1))))
    processes = []
    if log_dir:
        log_dir.mkdir(parents=True, exist_ok=True)
    for i, device in enumerate(devices):
        argv = [sys.executable, "-m", "nas_core", "worker", "--study", study.study_name,
                "--device", device, "--seed-offset", str(first_offset + i),
                "--heartbeat-interval", str(int(heartbeat_interval(study))),
                "--grace-period", str(grace_period(study))]
        if data:
            argv += ["--data", str(data)]
        log = open(log_dir / f"worker-{i + first_offset}.log", "ab") if log_dir else None
        try:
            processes.append(subprocess.Popen(argv, env=env, stdout=log or subprocess.DEVNULL,
                                              stderr=subprocess.STDOUT if log else None))
        finally:
            if log:
                log.close()  # the child keeps its own descriptor
    return processes
