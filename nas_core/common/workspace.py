"""Where the app keeps everything: one folder, ``$ESM_NAS_HOME`` or ``./workspace``.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "ESM_NAS_HOME"


def workspace_root(root: str | os.PathLike[str] | None = None) -> Path:
    """Return the workspace folder, created on first use."""
    path = Path(root if root is not None else os.environ.get(ENV_VAR, "workspace")).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def subdir(name: str, root: str | os.PathLike[str] | None = None) -> Path:
    path = workspace_root(root) / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_storage_url(root: str | os.PathLike[str] | None = None) -> str:
    """The embedded SQLite study store inside the workspace."""
    return f"sqlite:///{workspace_root(root) / 'studies.db'}"
