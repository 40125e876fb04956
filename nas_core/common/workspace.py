"""Where the app keeps everything: one folder, ``$ESM_NAS_HOME`` or ``./workspace``.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

ENV_VAR = "ESM_NAS_HOME"

STORAGE_ENV = "ESM_NAS_STORAGE"  # the study database URL, when not the workspace's SQLite


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


class StorageError(OSError):
    """Writing to the workspace or the study store failed because of the disk (full, read-only,
    not permitted). The message says which folder and what to do; nothing already stored was
    changed (every store writes to a temporary name, or in a transaction, first)."""

    def __init__(self, kind: str, folder: str, detail: str = "") -> None:
        self.kind, self.folder = kind, folder
        if kind == "full":
            text = (f"The disk holding {folder} is full, so nothing more could be saved there. "
                    "Free space on that disk (finished searches' trial checkpoints under runs/ "
                    "and the representation cache under cache/ in the workspace can go), or "
                    f"set {ENV_VAR} to a folder on a disk with room, then try again.")
        else:
            text = (f"{folder} cannot be written to ({detail or 'read-only'}). Set {ENV_VAR} to "
                    "a folder this user can write to, or make this one writable (chmod/chown, "
                    "or remount the disk read-write), then try again.")
        super().__init__(text + " Nothing already stored was changed.")

    def __str__(self) -> str:
        return str(self.args[0])


_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_READ_ONLY = {errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
              errno.EPERM: "operation not permitted"}
_SQLITE = {"database or disk is full": ("full", ""),
           "attempt to write a readonly database": ("read-only", "read-only database"),
           "unable to open database file": ("read-only", "the database file cannot be opened")}


def storage_problem(exc: BaseException | None, folder: str | os.PathLike[str] | None = None
                    ) -> StorageError | None:
    """The disk problem behind ``exc`` (anywhere in its chain of causes), or None.

    Only for failures of writes the engine makes itself: a user's unreadable input file is a
    ``DataFileError`` long before this."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, StorageError):
            return exc
        where = _folder_of(getattr(exc, "filename", None)) or _default_folder(folder)
        if isinstance(exc, OSError) and exc.errno in _FULL:
            return StorageError("full", where)
        if isinstance(exc, OSError) and exc.errno in _READ_ONLY and (
                exc.filename or exc.errno == errno.EROFS):
            return StorageError("read-only", where, _READ_ONLY[exc.errno])
        text = str(exc).lower()
        for needle, (kind, detail) in _SQLITE.items():
            if needle in text:
                return StorageError(kind, _default_folder(folder), detail)
        exc = exc.__cause__ or exc.__context__
    return None


def _folder_of(filename: object) -> str | None:
    if not isinstance(filename, (str, os.PathLike)):
        return None
    path = Path(filename)
    return str(path if path.is_dir() else path.parent)


def _default_folder(folder: str | os.PathLike[str] | None) -> str:
    chosen = folder if folder is not None else os.environ.get(ENV_VAR, "workspace")
    return str(Path(chosen).expanduser().absolute())


COMPRESS_RESULTS = "compress.json"  # what the Compress step writes into its folder
INCOMPLETE = ".incomplete"  # in a results folder while a step writes into it


@contextlib.contextmanager
def writing(folder: str | os.PathLike[str], step: str) -> Iterator[Path]:
    """Mark ``folder`` incomplete while ``step`` writes its results there: a process killed
    (or failing) half-way leaves the marker, readers treat the folder as unfinished
    (:func:`interrupted`), and running the step again rewrites it whole and removes it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / INCOMPLETE
    marker.write_text(f"{step} stopped while writing this folder: run it again to finish.\n")
    yield folder
    marker.unlink(missing_ok=True)


def interrupted(folder: str | os.PathLike[str]) -> str | None:
    """Why ``folder``'s results are unfinished (a step was killed while writing), or None."""
    marker = Path(folder) / INCOMPLETE
    return marker.read_text().strip() if marker.is_file() else None
