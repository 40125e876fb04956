"""Fetching an ESM-2 checkpoint into the Hugging Face cache before a search needs it, with its
size, byte progress, a disk check first, and resumption of an interrupted download (the Hub
client keeps the partial file and asks for the rest). From the Search page (a background
download owned by the server) and ``python -m nas_core download-backbone NAME``."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx2
from huggingface_hub import (
    HfApi,
    constants,
    get_hf_file_metadata,
    get_session,
    hf_hub_url,
    try_to_load_from_cache,
)
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.hf_api import RepoFile
from huggingface_hub.utils import build_hf_headers

from nas_core.backbones.registry import resolve

# what loading needs: config, tokenizer and the weights (safetensors, else the PyTorch file)
_NEEDED = ("config.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json")
_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
_MARGIN = 1.05  # free space asked beyond the files themselves

Progress = Callable[[int, int], None]  # (bytes done, bytes in all)


class DownloadError(RuntimeError):
    """The download cannot start or did not finish; the message says why and what to do."""


@dataclass(frozen=True)
class DownloadPlan:
    repo_id: str
    files: tuple[tuple[str, int], ...]  # (path in the repository, bytes)

    @property
    def total_bytes(self) -> int:
        return sum(size for _, size in self.files)


def gigabytes(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.0f} MB"


def plan(name: str, *, endpoint: str | None = None) -> DownloadPlan:
    """The files a registry backbone needs, with their sizes, from the Hub."""
    spec = resolve(name)
    if Path(spec.source).is_dir():
        raise DownloadError(f"{name} is a local folder: nothing to download.")
    try:
        entries = {e.path: int(e.size or 0) for e in HfApi(endpoint=endpoint).list_repo_tree(
            spec.source) if isinstance(e, RepoFile)}
    except (HfHubHTTPError, httpx2.HTTPError, OSError, ValueError) as exc:
        raise DownloadError(f"could not list {spec.source} on the Hub ({exc}). Check the "
                            "network (or HF_ENDPOINT) and try again.") from None
    weights = next((w for w in _WEIGHTS if w in entries), None)
    if weights is None:
        raise DownloadError(f"{spec.source} has no model.safetensors or pytorch_model.bin.")
    files = [(p, entries[p]) for p in _NEEDED if p in entries] + [(weights, entries[weights])]
    return DownloadPlan(spec.source, tuple(files))


def hub_cache() -> Path:
    """The Hugging Face cache, read when asked (``HF_HUB_CACHE`` may change after import)."""
    return Path(os.environ.get("HF_HUB_CACHE") or constants.HF_HUB_CACHE)


def is_downloaded(source: str) -> bool:
    """A Hub checkpoint whose config is in the cache (local folders count as downloaded)."""
    if Path(source).is_dir():
        return True
    return isinstance(try_to_load_from_cache(source, "config.json", cache_dir=hub_cache()), str)


def _existing_parent(path: Path) -> Path:
    while not path.exists():
        path = path.parent
    return path


def _partial_bytes(repo_id: str, cache: Path) -> int:
    folder = cache / f"models--{repo_id.replace('/', '--')}" / "blobs"
    return sum(p.stat().st_size for p in folder.glob("*.part")) if folder.is_dir() else 0


def _fetch_resumable(repo_id: str, path: str, cache: Path, endpoint: str | None,
                     say: Callable[[int], None]) -> None:
    """One file into the cache's own layout (``blobs/<etag>``, ``snapshots/<commit>/<path>``,
    ``refs/main``), continuing ``blobs/<etag>.part`` with an HTTP Range request when an
    earlier download stopped. (huggingface_hub 2.x restarts every interrupted file from zero,
    which for a 11 GB checkpoint is not an option.)"""
    url = hf_hub_url(repo_id, path, endpoint=endpoint)
    meta = get_hf_file_metadata(url, endpoint=endpoint)
    if not meta.etag or not meta.commit_hash:
        raise DownloadError(f"the Hub gave no version for {repo_id}/{path}; try again later.")
    folder = cache / f"models--{repo_id.replace('/', '--')}"
    blob = folder / "blobs" / meta.etag
    part = blob.with_name(f"{meta.etag}.part")
    blob.parent.mkdir(parents=True, exist_ok=True)
    if not blob.is_file():
        have = part.stat().st_size if part.is_file() else 0
        headers = build_hf_headers(library_name="esm-nas-studio")
        if have:
            headers["Range"] = f"bytes={have}-"
        say(have)
        with get_session().stream("GET", meta.location or url, headers=headers,
                                  follow_redirects=True, timeout=60) as response:
            if response.status_code == 200:
                have = 0  # the server sent it whole: start the part again
            elif response.status_code != 206:
                raise DownloadError(f"the Hub answered {response.status_code} for "
                                    f"{repo_id}/{path}.")
            with open(part, "ab" if have else "wb") as out:
                for chunk in response.iter_bytes(1 << 20):
                    out.write(chunk)
                    have += len(chunk)
                    say(have)
        if meta.size is not None and have != meta.size:
            raise DownloadError(f"{repo_id}/{path} arrived with {have} of {meta.size} bytes.")
        part.replace(blob)
    snapshot = folder / "snapshots" / meta.commit_hash / path
    snapshot.parent.mkdir(parents=True, exist_ok=True)
    if not snapshot.exists():
        snapshot.symlink_to(os.path.relpath(blob, snapshot.parent))
    (folder / "refs").mkdir(exist_ok=True)
    (folder / "refs" / "main").write_text(meta.commit_hash)


def download(name: str, *, progress: Progress | None = None, endpoint: str | None = None,
             cache_dir: str | Path | None = None,
             free_bytes: Callable[[Path], int] | None = None) -> Path:
    """Download ``name`` into the Hugging Face cache (continuing a partial download); returns
    the snapshot folder. Refuses before the first byte when the disk cannot hold what is
    left."""
    cache = Path(cache_dir) if cache_dir else hub_cache()
    todo = plan(name, endpoint=endpoint)
    total = todo.total_bytes
    done = 0
    waiting = []
    for path, size in todo.files:
        if isinstance(try_to_load_from_cache(todo.repo_id, path, cache_dir=cache), str):
            done += size  # already complete in the cache: counted, not fetched again
        else:
            waiting.append((path, size))
    left = sum(size for _, size in waiting) - _partial_bytes(todo.repo_id, cache)
    where = _existing_parent(cache)
    free = (free_bytes or (lambda p: shutil.disk_usage(p).free))(where)
    if left > 0 and free < left * _MARGIN:
        raise DownloadError(f"{name} needs {gigabytes(left)} more on disk and {where} has "
                            f"{gigabytes(free)} free. Free some space or point HF_HOME at a "
                            "larger disk, then download again.")
    say = progress or (lambda done, total: None)
    say(done, total)
    for path, size in waiting:
        def report(n: int, start: int = done, size: int = size) -> None:
            say(start + min(n, size), total)

        try:
            _fetch_resumable(todo.repo_id, path, cache, endpoint, report)
        except (HfHubHTTPError, httpx2.HTTPError, OSError) as exc:
            raise DownloadError(f"the download of {name} stopped at {path} ({exc}). Download "
                                "again: it continues where it stopped.") from None
        done += size
        say(done, total)
    found = try_to_load_from_cache(todo.repo_id, "config.json", cache_dir=cache)
    assert isinstance(found, str)
    return Path(found).parent
