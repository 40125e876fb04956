"""How the engine's entry points (the CLI, the app's server, the tests) set up Optuna's
logging: once, at start, never as a side effect of importing the engine."""

from __future__ import annotations

import logging
import warnings

import optuna

from nas_core.common.workspace import StorageError


def quiet_optuna() -> None:
    """What the entry points (the CLI, the app) call once: Optuna's experimental-feature
    warnings (heartbeats, fail_stale_trials and TPE's ``group`` are stable in practice) and its
    INFO lines would only confuse users; a full or read-only disk ends the search with one
    message instead of a traceback per trial."""
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(logging.WARNING)
    optimize_log = logging.getLogger("optuna.study._optimize")
    if _not_a_disk_problem not in optimize_log.filters:
        optimize_log.addFilter(_not_a_disk_problem)


def _not_a_disk_problem(record: logging.LogRecord) -> bool:
    """Optuna logs each failed trial with its traceback; a full or read-only disk ends the
    search with one message instead (the objective raises StorageError and stops the study)."""
    error = record.exc_info[1] if record.exc_info else None
    return not isinstance(error, StorageError) and "StorageError(" not in record.getMessage()
