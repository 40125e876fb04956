"""Launching a whole search from this process: open the study, start workers for the extra
devices, run trials, finalise. Also evaluating another Pareto point of a finished job."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import optuna
from optuna.trial import TrialState

from nas_core.common.access import Person, check_owner
from nas_core.common.progress import StepProgress
from nas_core.common.report import Report
from nas_core.common.workspace import subdir
from nas_core.data.dataset import Dataset
from nas_core.data.store import DatasetStore
from nas_core.evaluation.finalise import finalise
from nas_core.runtime import workers
from nas_core.runtime.jobtable import Job, JobKind
from nas_core.search.config import SearchConfig
from nas_core.search.objective import SearchListener
from nas_core.search.storage import make_storage
from nas_core.search.study import open_study, optimize, safe_name


def run_search(config: SearchConfig, dataset: Dataset, out_dir: str | Path, *, root=None,
               storage: str | None = None, listeners: Sequence[SearchListener] = (),
               should_stop: Callable[[], bool] | None = None,
               dataset_path: str | None = None,
               devices: Sequence[str] | None = None) -> Report | None:
    """Search, then evaluate the best architecture on the test split; returns the report, or
    None when ``should_stop`` ended the search (its completed trials stay in the study).

    With several ``devices`` this process runs trials on the first and starts a worker process
    on each of the others (they need ``dataset_path``, the stored normalised dataset).
    """
    started = time.perf_counter()
    study = open_study(config, dataset, root=root, storage=storage, dataset_path=dataset_path)
    devices = list(devices or [config.device])
    helpers = []
    if len(devices) > 1:
        if not dataset_path:
            raise ValueError("several workers need the stored dataset's path (dataset_path).")
        helpers = workers.spawn(study, devices[1:], root=root, data=dataset_path,
                                log_dir=subdir("runs", root) / safe_name(study.study_name))
    try:
        optimize(study, config, dataset, root=root, listeners=listeners,
                 should_stop=should_stop, device=devices[0])
    finally:
        for process in helpers:
            if should_stop and should_stop():
                process.terminate()  # it gives its running trial back to the queue
            process.wait()
    if should_stop and should_stop():
        return None
    return finalise(study, dataset, out_dir, device=devices[0],
                    wall_seconds=time.perf_counter() - started)


def point_dir(job: Job, trial_number: int) -> Path:
    return Path(job.out_dir) / f"pareto_trial_{trial_number}"


def evaluate_point(job: Job, trial_number: int, root=None) -> Report:
    """Evaluate another Pareto point on the test split and export it beside the best model."""

    study = optuna.load_study(study_name=job.study_name, storage=make_storage(job.storage,
                                                                              root))
    dataset = DatasetStore(root).load(job.dataset_id)
    return finalise(study, dataset, point_dir(job, trial_number), trial_number=trial_number,
                    device=job.device or "auto")


def finalisable(job: Job, root=None) -> int:
    """How many finished trials a stopped job (cancelled, interrupted, failed) has that
    :func:`finalise_stopped` could test; 0 when it has none or is still active/finished."""
    if not job.state.can_resume or job.report_path.is_file() or job.kind is not JobKind.SEARCH:
        return 0  # (a Compress job is not a search: nothing to test and export)
    try:
        study = optuna.load_study(study_name=job.study_name,
                                  storage=make_storage(job.storage, root))
    except KeyError:
        return 0
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def finalise_stopped(job: Job, user: Person | None, root=None,
                     progress: Callable[[StepProgress], None] | None = None) -> Report:
    """Test the best finished trial of a stopped search once on the held-out split and export
    it, as a finished search would (its report says the budget was not spent). ``user``: who
    asks, in the app (owner or admin); None from the command line, whose operator owns the
    workspace."""
    if user is not None:
        check_owner(user, job.owner, job.owner_shown, "job")
    if not job.state.can_resume:
        raise ValueError(f"job is {job.state}: only a cancelled, interrupted or failed search is "
                         "finalised this way (a finished one already was).")
    if not finalisable(job, root):
        raise ValueError("this search has no finished trial yet: resume it, or start a new one.")
    study = optuna.load_study(study_name=job.study_name, storage=make_storage(job.storage, root))
    dataset = DatasetStore(root).load(job.dataset_id)
    return finalise(study, dataset, job.out_dir, device=(job.device or "auto").split(",")[0],
                    progress=progress)
