"""Backbone downloads owned by the server process: one thread per checkpoint, its progress
readable by any session (a reload or a second user sees the same download)."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, replace

from nas_core.backbones.download import DownloadError, download


@dataclass(frozen=True)
class DownloadState:
    name: str
    done: int = 0
    total: int = 0
    error: str | None = None
    finished: bool = False
    started: float = 0.0

    @property
    def active(self) -> bool:
        return not self.finished and self.error is None

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0


class Downloads:
    """Create one per server process (the app keeps it as a resource)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[str, DownloadState] = {}

    def state(self, name: str) -> DownloadState | None:
        with self._lock:
            return self._states.get(name)

    def active(self) -> list[DownloadState]:
        with self._lock:
            return [s for s in self._states.values() if s.active]

    def start(self, name: str) -> DownloadState:
        """Start downloading ``name`` unless it is downloading already (then its state)."""
        with self._lock:
            current = self._states.get(name)
            if current is not None and current.active:
                return current
            state = DownloadState(name, started=time.time())
            self._states[name] = state
        threading.Thread(target=self._run, args=(name,), name=f"esm-nas-download-{name}",
                         daemon=True).start()
        return state

    def _set(self, name: str, **values) -> None:
        with self._lock:
            self._states[name] = replace(self._states[name], **values)

    def _run(self, name: str) -> None:
        try:
            download(name, endpoint=os.environ.get("HF_ENDPOINT") or None,
                     progress=lambda done, total: self._set(name, done=done, total=total))
        except DownloadError as exc:
            self._set(name, error=str(exc))
        except Exception as exc:  # said on the page, never a traceback
            self._set(name, error=f"{type(exc).__name__}: {exc}")
        else:
            self._set(name, finished=True)

    def wait(self, name: str, timeout: float = 600) -> DownloadState:
        deadline = time.monotonic() + timeout
        while (state := self.state(name)) is not None and state.active:
            if time.monotonic() > deadline:
                raise TimeoutError(f"download of {name} still running.")
            time.sleep(0.1)
        assert state is not None
        return state
