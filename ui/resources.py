"""Server-wide singletons, created once per server process (not per browser session). Light on
purpose: the first page a fresh server draws loads no torch; what needs it is in ui/engine.py."""

from __future__ import annotations

import streamlit as st

from nas_core.common.workspace import workspace_root
from nas_core.data.store import DatasetStore
from nas_core.runtime.downloads import Downloads
from nas_core.runtime.jobtable import Job, JobTable
from nas_core.views.monitor import StudyView, load_view


@st.cache_resource
def dataset_store(root: str) -> DatasetStore:
    return DatasetStore(root)


@st.cache_resource
def job_table(root: str) -> JobTable:
    return JobTable(workspace_root(root) / "jobs.db")


def jobs(root: str) -> list[Job]:
    """Every job, newest first, read from the job table without the job manager (which loads
    torch): what Monitor lists while the manager starts in the background."""
    return list(reversed(job_table(root).all()))


@st.cache_resource
def downloads() -> Downloads:
    """Backbone downloads of this server process (any session sees their progress)."""
    return Downloads()


def secret_storage_url() -> str | None:
    try:
        return st.secrets.get("storage", {}).get("url")
    except (FileNotFoundError, KeyError, AttributeError):
        return None  # no secrets file: environment or workspace default


@st.cache_data(ttl=2, show_spinner=False, max_entries=64)
def _study_view(study_name: str, storage: str, version: str) -> StudyView | None:
    return load_view(study_name, storage)


def study_view(job) -> StudyView | None:
    """The job's study, re-read at most every 2 s, and at once when the job changes state."""
    return _study_view(job.study_name, job.storage, f"{job.state}:{job.started}:{job.ended}")


def workspace() -> str:
    return str(workspace_root())
