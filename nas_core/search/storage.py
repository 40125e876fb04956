"""Where studies live: the workspace's SQLite file, or a shared PostgreSQL database.

A lab server or several GPU machines point at one PostgreSQL database; every process (the app,
``search``, each ``worker``) then sees the same trials. Credentials never travel in job rows,
page text or command lines: a URL with a password is registered once in the process (from the
environment or Streamlit secrets) and everything else handles the password-free form.
"""

from __future__ import annotations

import functools
import os
import threading
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from nas_core.common.workspace import default_storage_url

STORAGE_ENV = "ESM_NAS_STORAGE"


HEARTBEAT_INTERVAL, GRACE_PERIOD, MAX_RETRY = 30, 120, 3


@dataclass(frozen=True)
class Heartbeat:
    """How often a running trial says it is alive, and how long silence means it is dead."""

    interval: int = field(default=HEARTBEAT_INTERVAL, metadata={
        "help": "Seconds between a running trial's heartbeats."})
    grace: int = field(default=GRACE_PERIOD, metadata={
        "help": "Seconds without a heartbeat before a trial counts as dead and is queued "
        "again."})

    def __post_init__(self) -> None:
        if self.interval < 1 or self.grace <= self.interval:
            raise ValueError("the heartbeat interval must be at least 1 s and the grace period "
                             "longer than the interval.")


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
    return optuna.storages.RDBStorage(
        url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat.interval,
        grace_period=heartbeat.grace, heartbeat_stale_trial_callback=retry_stale_trial)


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
