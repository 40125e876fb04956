"""The one place that touches Optuna's private API.

Each touch is wrapped here and guarded by ``tests/search/test_optuna_internals.py``, which fails
loudly when an Optuna release changes it. Nothing else in the engine reads a private Optuna
name.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial


class BudgetReached(Exception):
    """No queued trial is left: this worker's part of the budget is done."""


class QueueStudy(optuna.Study):
    """A study whose ``ask`` only pops queued trials; an empty queue ends ``optimize``.

    Optuna's ``Study._pop_waiting_trial_id`` pops a WAITING trial atomically in the database
    (``None`` when there is none); ``ask`` would then create a new trial, which a worker must
    never do: the budget belongs to the process that owns the search.
    """

    def _pop_waiting_trial_id(self) -> int | None:
        trial_id = super()._pop_waiting_trial_id()
        if trial_id is None:
            raise BudgetReached
        return trial_id


def study_storage(study: optuna.Study) -> BaseStorage:
    """The storage object a study was opened with (Optuna keeps it private)."""
    return study._storage


def storage_backend(storage: BaseStorage) -> BaseStorage:
    """The RDB storage behind Optuna's caching wrapper (``_CachedStorage._backend``)."""
    return getattr(storage, "_backend", storage)


def storage_url(study: optuna.Study) -> str:
    backend = storage_backend(study_storage(study))
    return getattr(backend, "url", type(backend).__name__)


def heartbeat_interval(study: optuna.Study) -> float:
    interval = getattr(study_storage(study), "get_heartbeat_interval", lambda: None)()
    return float(interval or 5)


def grace_period(study: optuna.Study, default: int = 120) -> int:
    return int(getattr(storage_backend(study_storage(study)), "grace_period", None) or default)


def stop_requested(study: optuna.Study) -> bool:
    """Whether ``study.stop()`` was called inside the running ``optimize``."""
    return bool(study._stop_flag)


def set_trial_user_attr(study: optuna.Study, trial: FrozenTrial, key: str, value: Any) -> None:
    """Annotate a trial that is not this process's running trial (e.g. one a dead process
    left RUNNING): the public API only annotates the trial in hand."""
    study_storage(study).set_trial_user_attr(trial._trial_id, key, value)


def check() -> None:
    """Fail loudly, naming what changed, when this Optuna release lacks what we rely on."""
    study = optuna.create_study()
    trial = optuna.trial.create_trial(value=0.0)
    missing = [name for name, ok in (
        ("Study._pop_waiting_trial_id", callable(getattr(study, "_pop_waiting_trial_id", None))),
        ("Study._storage", isinstance(getattr(study, "_storage", None), BaseStorage)),
        ("Study._stop_flag", isinstance(getattr(study, "_stop_flag", None), bool)),
        ("FrozenTrial._trial_id", hasattr(trial, "_trial_id")),
    ) if not ok]
    if missing:
        raise RuntimeError(f"Optuna {optuna.__version__} changed private API ESM-NAS Studio "
                           f"relies on ({', '.join(missing)}): see "
                           "nas_core/search/optuna_internals.py.")
