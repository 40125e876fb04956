"""Where studies live: the workspace's SQLite file, or a shared PostgreSQL database.

A lab server or several GPU machines point at one PostgreSQL database; every process (the app,
``search``, each ``worker``) then sees the same trials. Credentials never travel in job rows,
page text or command lines: a URL with a password is registered once in the process (from the
environment or Streamlit secrets) and everything else handles the password-free form.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError

from nas_core.common.workspace import STORAGE_ENV, default_storage_url
from nas_core.search.config import Heartbeat

MAX_RETRY = 3


_CREDENTIALS: dict[str, str] = {}  # password-free URL -> URL with the password
_LOCK = threading.Lock()


def public_url(url: str) -> str:
    """The URL without its password (what job rows, reports and pages show)."""
    if url.startswith("sqlite"):
        return url
    parsed = make_url(url)
    if not parsed.password:
        return url
    return URL.create(parsed.drivername, username=parsed.username, host=parsed.host,
                      port=parsed.port, database=parsed.database, query=parsed.query
                      ).render_as_string(hide_password=False)


def register(url: str) -> str:
    """Remember a URL's credentials for this process; returns its password-free form."""
    check_url(url)
    public = public_url(url)
    with _LOCK:
        _CREDENTIALS[public] = url
    return public


def check_url(url: str) -> None:
    """Refuse a URL that cannot be a study store, with the fix."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError("the study store setting is not a database URL; use "
                         "postgresql://USER:PASSWORD@HOST:5432/DB or sqlite:///PATH.") from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ValueError(f"the study store must be PostgreSQL or SQLite, not "
                         f"'{parsed.get_backend_name()}'.")


def configured_url(root=None, secret: str | None = None) -> str:
    """The study store to use: a URL from Streamlit secrets (``secret``), else
    ``$ESM_NAS_STORAGE``, else the workspace's SQLite file. Registered, returned without the
    password."""
    url = secret or os.environ.get(STORAGE_ENV) or default_storage_url(root)
    return register(url)


def full_url(url: str) -> str:
    with _LOCK:
        return _CREDENTIALS.get(url, url)


def make_storage(url: str | None = None, root=None, *,
                 heartbeat: Heartbeat | None = None) -> optuna.storages.BaseStorage:
    """RDB storage with heartbeats: trials of a killed process are marked failed and queued
    again. One storage object per URL and process, shared by every thread."""
    url = full_url(url or configured_url(root))
    with _LOCK:
        return _cached_storage(url, heartbeat or Heartbeat())


@functools.lru_cache(maxsize=32)
def _cached_storage(url: str, heartbeat: Heartbeat) -> optuna.storages.BaseStorage:
    engine_kwargs: dict[str, Any]
    if url.startswith("sqlite"):
        engine_kwargs = {"connect_args": {"timeout": 60}}
    else:  # a restarted database or a dropped connection: reconnect instead of failing
        engine_kwargs = {"pool_pre_ping": True, "pool_recycle": 1800,
                         "connect_args": {"connect_timeout": 10}}
    return PatientStorage(
        url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat.interval,
        grace_period=heartbeat.grace, heartbeat_stale_trial_callback=retry_stale_trial)


# -- riding out an outage of the study database -------------------------------------------
DB_WAIT = 300.0  # seconds a search waits for its study database before giving up
_patience = threading.local()  # .seconds: how long calls from this thread wait (0: not at all)
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outage:
    """The study database stopped answering a search in this process."""

    since: float  # time.time()
    reason: str
    wait: float  # seconds the search waits in all

    @property
    def words(self) -> str:
        return (f"the study database has not answered for {time.time() - self.since:.0f} s "
                f"({self.reason}); the search keeps training and retries its writes for up to "
                f"{self.wait:.0f} s")


_OUTAGE: list[Outage] = []  # the current one, if any (a list: set and read across threads)


def current_outage() -> Outage | None:
    """The study database outage a search of this process is riding out now, if any (Monitor
    says so)."""
    return _OUTAGE[0] if _OUTAGE else None


@contextlib.contextmanager
def patience(seconds: float = DB_WAIT):
    """Study-store calls made by this thread inside the block ride out an outage of the
    database: each one is retried with backoff for up to ``seconds`` (the trial keeps
    training meanwhile). Pages and other threads keep failing fast."""
    before = getattr(_patience, "seconds", 0.0)
    _patience.seconds = seconds
    try:
        yield
    finally:
        _patience.seconds = before


def database_errors() -> tuple[type[BaseException], ...]:
    """What a dropped connection looks like (Optuna wraps some as StorageInternalError)."""
    return (OperationalError, DBAPIError, optuna.exceptions.StorageInternalError)


def database_reason(exc: BaseException) -> str:
    """The driver's words (Optuna and SQLAlchemy wrap them)."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _patient(name: str):
    method = getattr(optuna.storages.RDBStorage, name)

    @functools.wraps(method)
    def call(self, *args, **kwargs):
        wait = getattr(_patience, "seconds", 0.0)
        if not wait or getattr(_patience, "inside", False):
            return method(self, *args, **kwargs)  # impatient, or an inner call of a retry
        _patience.inside = True
        deadline, delay = None, 0.5
        try:
            while True:
                try:
                    result = method(self, *args, **kwargs)
                    break
                except database_errors() as exc:
                    now = time.monotonic()
                    if deadline is None:
                        deadline = now + wait
                        if not _OUTAGE:
                            _OUTAGE.append(Outage(time.time(), database_reason(exc), wait))
                            logger.warning("waiting for the study database: %s",
                                           _OUTAGE[0].words)
                    if now >= deadline:
                        raise
                    time.sleep(min(delay, deadline - now))
                    delay = min(2 * delay, 10.0)
        finally:
            _patience.inside = False
        if deadline is not None and _OUTAGE:
            logger.warning("the study database answers again after %.0f s",
                           time.time() - _OUTAGE[0].since)
            _OUTAGE.clear()
        return result

    return call


class PatientStorage(optuna.storages.RDBStorage):
    """Optuna's RDB storage whose calls ride out an outage of the database inside a
    :func:`patience` block (a restarted PostgreSQL, a dropped network): retried with backoff
    instead of failing the running trial. A heartbeat that cannot be written is skipped (the
    next one will do, well within the grace period); a failing heartbeat thread would
    otherwise die and leave a live trial looking dead."""

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            super().record_heartbeat(trial_id)
        except database_errors() as exc:
            logger.info("heartbeat of trial id %s not written: %s", trial_id, database_reason(exc))


for _name in ("check_trial_is_updatable", "create_new_study", "create_new_trial",
              "delete_study", "get_all_studies", "get_all_trials", "get_best_trial",
              "get_n_trials", "get_study_directions", "get_study_id_from_name",
              "get_study_name_from_id", "get_study_system_attrs", "get_study_user_attrs",
              "get_trial", "get_trial_id_from_study_id_trial_number",
              "get_trial_number_from_id", "get_trial_param", "get_trial_params",
              "get_trial_system_attrs", "get_trial_user_attrs", "set_study_system_attr",
              "set_study_user_attr", "set_trial_intermediate_value", "set_trial_param",
              "set_trial_state_values", "set_trial_system_attr", "set_trial_user_attr",
              "_get_stale_trial_ids"):
    setattr(PatientStorage, _name, _patient(_name))


def retry_stale_trial(study: optuna.Study, trial: FrozenTrial) -> None:
    """A trial whose worker stopped sending heartbeats (it is FAIL already, so it cannot be
    annotated): queue the same architecture again, at most ``MAX_RETRY`` times, as Optuna's
    ``RetryHeartbeatStaleTrialCallback`` does but without copying the dead trial's curves. The
    retry says why it exists."""
    history = [*trial.system_attrs.get("retry_history", []), trial.number]
    if len(history) <= MAX_RETRY:
        requeue(study, trial, history, reason=stale_reason(trial))


def stale_reason(trial: FrozenTrial) -> str:
    host, pid = trial.user_attrs.get("host", "?"), trial.user_attrs.get("pid", "?")
    return (f"worker {host} (pid {pid}) stopped sending heartbeats: the process died or lost "
            "the database")


def requeue(study: optuna.Study, trial: FrozenTrial, history: list[int] | None = None,
            reason: str | None = None) -> None:
    """A WAITING copy of ``trial``'s architecture that supersedes it in the budget."""
    attrs: dict[str, Any] = {"retry_of": trial.number}
    if reason:
        attrs["retry_reason"] = reason
    study.add_trial(optuna.create_trial(
        state=TrialState.WAITING, params=trial.params, distributions=trial.distributions,
        user_attrs=attrs,
        system_attrs={"failed_trial": (history or [trial.number])[0],
                      "retry_history": history or [trial.number]}))


def fail_reasons(trials: list[FrozenTrial]) -> dict[int, str]:
    """Why each failed trial failed, including the ones a dead worker left behind."""
    retries = {t.user_attrs["retry_of"]: t for t in trials if "retry_of" in t.user_attrs}
    reasons = {}
    for t in trials:
        if t.state != TrialState.FAIL:
            continue
        retry = retries.get(t.number)
        reason = t.user_attrs.get("fail_reason") or (
            retry.user_attrs.get("retry_reason") if retry else None) or stale_reason(t)
        if retry is not None:
            reason += f"; run again as trial {retry.number}"
        reasons[t.number] = reason
    return reasons
