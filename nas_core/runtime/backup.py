"""Backup and restore of the only state there is: the study database and the workspace.

A backup is a folder: the study store (``pg_dump`` custom format for PostgreSQL, an online
SQLite copy otherwise), the workspace as a tar archive (without the representation cache,
which is recomputed on demand), the job table as a consistent SQLite copy, and a manifest with
checksums and counts. ``restore`` puts both back, refusing to overwrite anything unless told.
Passwords travel to ``pg_dump``/``pg_restore`` in the environment, never on a command line.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import time
from contextlib import closing
from pathlib import Path

import optuna
from sqlalchemy.engine import make_url

from nas_core.common.workspace import workspace_root
from nas_core.search.storage import full_url, make_storage, public_url

SKIP = {"cache", "studies.db", "jobs.db"}  # recomputable, or copied through SQLite's backup API


class BackupError(Exception):
    pass


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """A password-free libpq URL (``postgresql://``) and the environment carrying the password.
    """
    parsed = make_url(full_url(url))
    env = {**os.environ}
    if parsed.password:
        env["PGPASSWORD"] = parsed.password
    plain = public_url(full_url(url)).replace("postgresql+psycopg://", "postgresql://")
    return plain, env


def _tool(name: str) -> str:
    found = shutil.which(name)
    if not found:
        raise BackupError(f"{name} is not installed: apt-get install postgresql-client.")
    return found


def _sqlite_path(url: str) -> Path:
    return Path(url.split("sqlite:///", 1)[1])


def _sqlite_copy(source: Path, target: Path) -> None:
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def backup(out_dir: str | os.PathLike[str], storage: str, root=None) -> dict:
    """Write a backup of ``storage`` and the workspace into ``out_dir`` (a new folder)."""

    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise BackupError(f"{out} is not empty: give a new folder for the backup.")
    out.mkdir(parents=True, exist_ok=True)
    root = workspace_root(root)
    kind = "sqlite" if storage.startswith("sqlite") else "postgresql"
    if kind == "sqlite":
        _sqlite_copy(_sqlite_path(storage), out / "studies.db")
    else:
        url, env = _libpq(storage)
        done = subprocess.run([_tool("pg_dump"), "--format=custom", "--no-owner",
                               "--no-privileges", f"--file={out / 'studies.dump'}",
                               f"--dbname={url}"], env=env, capture_output=True, text=True)
        if done.returncode:
            raise BackupError(f"pg_dump failed: {done.stderr.strip()}")
    if (root / "jobs.db").exists():
        _sqlite_copy(root / "jobs.db", out / "jobs.db")
    with tarfile.open(out / "workspace.tar.gz", "w:gz") as tar:
        for entry in sorted(root.iterdir()):
            if entry.name not in SKIP:
                tar.add(entry, arcname=entry.name)
    studies = optuna.get_all_study_names(make_storage(storage))
    manifest = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "storage": public_url(storage),
        "kind": kind, "workspace": str(root), "studies": sorted(studies),
        "files": {p.name: _sha256(p) for p in sorted(out.iterdir())},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def restore(backup_dir: str | os.PathLike[str], storage: str, root=None, *,
            force: bool = False) -> dict:
    """Put a backup back: the study store at ``storage`` and the workspace at ``root``.

    Refuses a damaged backup (checksums), a store that already holds studies or a workspace
    that is not empty, unless ``force``."""

    src = Path(backup_dir)
    try:
        manifest = json.loads((src / "manifest.json").read_text())
    except (OSError, ValueError):
        raise BackupError(f"{src} is not a backup folder (no readable manifest.json).") from None
    for name, digest in manifest["files"].items():
        if not (src / name).is_file() or _sha256(src / name) != digest:
            raise BackupError(f"{src / name} is missing or damaged (checksum differs): this "
                              "backup cannot be restored safely.")
    kind = "sqlite" if storage.startswith("sqlite") else "postgresql"
    if kind != manifest["kind"]:
        raise BackupError(f"this is a {manifest['kind']} backup; restore it into a "
                          f"{manifest['kind']} study store, not {kind}.")
    root = workspace_root(root)
    present = [p.name for p in root.iterdir()]
    if present and not force:
        raise BackupError(f"the workspace {root} is not empty ({', '.join(present[:5])}); "
                          "restore into an empty folder, or pass force to overwrite.")
    if kind == "sqlite":
        target = _sqlite_path(storage)
        if target.exists() and not force:
            raise BackupError(f"{target} exists; pass force to overwrite it.")
        target.parent.mkdir(parents=True, exist_ok=True)
        _sqlite_copy(src / "studies.db", target)
    else:
        existing = optuna.get_all_study_names(make_storage(storage))
        if existing and not force:
            raise BackupError(f"the database already holds studies ({', '.join(existing)}); "
                              "restore into an empty database, or pass force to replace them.")
        url, env = _libpq(storage)
        done = subprocess.run([_tool("pg_restore"), "--clean", "--if-exists", "--no-owner",
                               "--no-privileges", "--single-transaction", f"--dbname={url}",
                               str(src / "studies.dump")], env=env, capture_output=True,
                              text=True)
        if done.returncode:
            raise BackupError(f"pg_restore failed: {done.stderr.strip()}")
    if (src / "jobs.db").exists():
        _sqlite_copy(src / "jobs.db", root / "jobs.db")
    with tarfile.open(src / "workspace.tar.gz", "r:gz") as tar:
        tar.extractall(root, filter="data")
    return manifest
