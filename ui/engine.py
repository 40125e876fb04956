"""The server-wide parts that load torch: the job manager, loaded models and speed
measurements. Pages that train, predict or measure import this; Home and Monitor do not, and
app.py starts the job manager in the background after the first page has drawn."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import streamlit as st

from nas_core.pretraining.config import PretrainConfig
from nas_core.pretraining.speed import tokens_per_second
from nas_core.publishing.predict import Predictor
from nas_core.runtime.jobs import JobManager
from ui.resources import secret_storage_url

logger = logging.getLogger(__name__)


@st.cache_resource(show_spinner=False)
def job_manager(root: str) -> JobManager:
    """Owns the background search threads for as long as this server process lives.

    The study store comes from Streamlit secrets (``[storage] url = "postgresql://..."``),
    else ``$ESM_NAS_STORAGE``, else the workspace's SQLite file; the page only ever sees it
    without the password."""
    return JobManager(root, storage=secret_storage_url())


def start_in_background(root: str) -> None:
    """Start the job manager (it recovers interrupted jobs and runs the queue) off the page's
    thread."""
    threading.Thread(target=job_manager, args=(root,), name="esm-nas-start-jobs",
                     daemon=True).start()


@st.cache_resource(max_entries=4)
def predictor(model: str, version: float):
    """A loaded model, shared by every session (``version``: the weights' mtime)."""
    return Predictor(model)


@st.cache_resource(show_spinner="Measuring how fast this machine pretrains that backbone...")
def pretraining_speed(base: str, max_length: int, batch_tokens: int) -> float:
    """Training tokens per second of ``base`` here (measured once per server process)."""
    return tokens_per_second(PretrainConfig(base=base, max_length=max_length,
                                            batch_tokens=batch_tokens))


class Measurements:
    """Speed measurements for the Search page's estimate, run off the page's thread one at a
    time (they time training steps: two at once would slow each other), each at most once per
    server process. The page draws at once with a rough estimate and shows the measured one
    when it arrives."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._serial = threading.Lock()
        self._started: set[str] = set()
        self._running: set[str] = set()

    def start(self, key: str, work: Callable[[], object]) -> None:
        with self._lock:
            if key in self._started:
                return
            self._started.add(key)
            self._running.add(key)
        threading.Thread(target=self._run, args=(key, work), name="esm-nas-measure",
                         daemon=True).start()

    def running(self, key: str) -> bool:
        with self._lock:
            return key in self._running

    def _run(self, key: str, work: Callable[[], object]) -> None:
        try:
            with self._serial:
                work()
        except Exception:  # the estimate stays the rough one; never retried in a loop
            logger.exception("measuring this machine's speed failed (%s)", key)
        finally:
            with self._lock:
                self._running.discard(key)


@st.cache_resource(show_spinner=False)
def measurements() -> Measurements:
    return Measurements()
