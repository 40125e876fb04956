"""The job table: each background search's lifecycle and owner (SQLite in the workspace).
Everything about the search itself lives in the Optuna storage. No torch here: the Monitor
reads it."""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path

from nas_core.common.report import REPORT_FILE, Report, load_report
from nas_core.pretraining.config import PretrainRequest
from nas_core.search.config import SearchConfig


class JobKind(StrEnum):
    """What a job makes: a search, or the Compress step of a finished search."""

    SEARCH = "search"
    COMPRESS = "compress"
    PRETRAIN = "pretrain"  # teach a backbone proteins (masked-language-model training)


class JobState(StrEnum):
    """Where a background job is in its life (stored as its text in the job table)."""

    QUEUED = "queued"
    RUNNING = "running"
    CANCELLING = "cancelling"  # asked to stop, not stopped yet
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"  # its server process stopped
    FAILED = "failed"
    FINISHED = "finished"

    @property
    def active(self) -> bool:
        """Queued or holding a device: the job still needs its dataset and its study."""
        return self in (JobState.QUEUED, JobState.RUNNING, JobState.CANCELLING)

    @property
    def on_device(self) -> bool:
        """Running (or stopping) on this host's devices."""
        return self in (JobState.RUNNING, JobState.CANCELLING)

    @property
    def finished(self) -> bool:
        return not self.active

    @property
    def can_resume(self) -> bool:
        """Stopped before its budget was spent: Resume queues it again."""
        return self in (JobState.CANCELLED, JobState.INTERRUPTED, JobState.FAILED)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, study_name TEXT NOT NULL, dataset_id TEXT NOT NULL,
    owner TEXT NOT NULL, state TEXT NOT NULL, config TEXT NOT NULL, storage TEXT NOT NULL,
    out_dir TEXT NOT NULL, created REAL NOT NULL, started REAL, ended REAL, error TEXT,
    device TEXT, host TEXT, pid INTEGER, owner_name TEXT NOT NULL DEFAULT ''
)"""
_MIGRATIONS = ("ALTER TABLE jobs ADD COLUMN owner_name TEXT NOT NULL DEFAULT ''",)


@dataclass(frozen=True)
class Job:
    id: str
    study_name: str
    dataset_id: str
    owner: str
    state: JobState
    config: dict
    storage: str
    out_dir: str
    created: float
    started: float | None = None
    ended: float | None = None
    error: str | None = None
    device: str | None = None
    host: str | None = None
    pid: int | None = None
    owner_name: str = ""
    queue_position: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", JobState(self.state))  # the table's text

    @property
    def owner_shown(self) -> str:
        return self.owner_name or self.owner

    @property
    def kind(self) -> JobKind:
        """A search, or Compress (smaller variants of a finished search's model)."""
        return JobKind(self.config.get("kind", JobKind.SEARCH))

    @property
    def search_config(self) -> SearchConfig:
        """What a search job runs (its saved configuration, read back through its type)."""
        if self.kind is not JobKind.SEARCH:
            raise ValueError(f"job {self.id} is a {self.kind} job, not a search.")
        return SearchConfig.from_dict(self.config)

    @property
    def pretrain_request(self) -> PretrainRequest:
        """What a pretraining job learns from and makes."""
        if self.kind is not JobKind.PRETRAIN:
            raise ValueError(f"job {self.id} is a {self.kind} job, not pretraining.")
        return PretrainRequest.from_dict(self.config)

    @property
    def compress_source(self) -> str | None:
        """The search job a Compress job makes smaller variants of (None for a search)."""
        return self.config.get("source") if self.kind is JobKind.COMPRESS else None

    @property
    def estimated_seconds(self) -> float | None:
        """The run time estimated when the job was queued (a Compress job: from its model's
        measured training time), the Monitor's ETA until the job's own epochs are timed."""
        value = self.config.get("estimate_s")
        return float(value) if value else None

    @property
    def n_trials(self) -> int | None:
        return self.config.get("n_trials")

    @property
    def report_path(self) -> Path:
        return Path(self.out_dir) / REPORT_FILE

    def report(self) -> Report | None:
        return load_report(self.report_path)


class JobTable:
    """The job rows; every method opens its own connection (safe from any thread)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with closing(self._connect()) as db, db:
            db.execute(_SCHEMA)
            columns = {r["name"] for r in db.execute("PRAGMA table_info(jobs)")}
            if "owner_name" not in columns:  # a workspace from before owners had names
                for statement in _MIGRATIONS:
                    db.execute(statement)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30)
        db.row_factory = sqlite3.Row
        return db

    def insert(self, job: Job) -> None:
        with closing(self._connect()) as db, db:
            db.execute(
                "INSERT INTO jobs (id, study_name, dataset_id, owner, owner_name, state, config, "
                "storage, out_dir, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (job.id, job.study_name, job.dataset_id, job.owner, job.owner_name, job.state,
                 json.dumps(job.config), job.storage, job.out_dir, job.created))

    def update(self, job_id: str, **values) -> None:
        if "config" in values:
            values["config"] = json.dumps(values["config"])
        columns = ", ".join(f"{k} = ?" for k in values)
        with closing(self._connect()) as db, db:
            db.execute(f"UPDATE jobs SET {columns} WHERE id = ?", (*values.values(), job_id))

    def claim(self, job_id: str, devices: list[str], host: str, pid: int) -> bool:
        """Atomically start ``job_id`` on ``devices`` if it is still queued and no job runs on
        any of them on this host (several server processes may share a workspace)."""
        with closing(self._connect()) as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                rows = db.execute("SELECT device FROM jobs WHERE state IN (?, ?) AND host = ?",
                                  (JobState.RUNNING, JobState.CANCELLING, host)).fetchall()
                taken = {d for r in rows for d in (r["device"] or "").split(",")}
                queued = db.execute("SELECT 1 FROM jobs WHERE id = ? AND state = ?",
                                    (job_id, JobState.QUEUED)).fetchone()
                if taken & set(devices) or not queued:
                    db.rollback()
                    return False
                db.execute("UPDATE jobs SET state = ?, started = ?, device = ?, "
                           "host = ?, pid = ?, error = NULL WHERE id = ?",
                           (JobState.RUNNING, time.time(), ",".join(devices), host, pid,
                            job_id))
                db.commit()
                return True
            except BaseException:
                db.rollback()
                raise

    def all(self) -> list[Job]:
        with closing(self._connect()) as db:
            rows = db.execute("SELECT * FROM jobs ORDER BY created").fetchall()
        jobs = [Job(**{**dict(r), "config": json.loads(r["config"])}) for r in rows]
        queued = [j.id for j in jobs if j.state is JobState.QUEUED]
        return [replace(j, queue_position=queued.index(j.id) + 1) if j.id in queued else j
                for j in jobs]
