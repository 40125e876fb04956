"""Server-wide singletons, created once per server process (not per browser session)."""

from __future__ import annotations

import streamlit as st

from nas_core.common.workspace import workspace_root
from nas_core.data.store import DatasetStore
from nas_core.pretraining.config import PretrainConfig
from nas_core.pretraining.speed import tokens_per_second
from nas_core.publishing.predict import Predictor
from nas_core.runtime.downloads import Downloads
from nas_core.runtime.jobs import JobManager
from nas_core.views.monitor import StudyView, load_view


@st.cache_resource
def dataset_store(root: str) -> DatasetStore:
    return DatasetStore(root)


@st.cache_resource
def job_manager(root: str) -> JobManager:
    """Owns the background search threads for as long as this server process lives.

    The study store comes from Streamlit secrets (``[storage] url = "postgresql://..."``),
    else ``$ESM_NAS_STORAGE``, else the workspace's SQLite file; the page only ever sees it
    without the password."""
    return JobManager(root, storage=_secret_storage_url())


@st.cache_resource
def downloads() -> Downloads:
    """Backbone downloads of this server process (any session sees their progress)."""
    return Downloads()


def _secret_storage_url() -> str | None:
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


@st.cache_resource(max_entries=4)
def predictor(model: str, version: float):
    """A loaded model, shared by every session (``version``: the weights' mtime)."""
    return Predictor(model)


@st.cache_resource(show_spinner="Measuring how fast this machine pretrains that backbone...")
def pretraining_speed(base: str, max_length: int, batch_tokens: int) -> float:
    """Training tokens per second of ``base`` here (measured once per server process)."""
    return tokens_per_second(PretrainConfig(base=base, max_length=max_length,
                                            batch_tokens=batch_tokens))
