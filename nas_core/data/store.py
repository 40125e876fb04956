"""Datasets kept in the workspace, so a page reload, another user or a worker finds them again.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pandas as pd

from nas_core.common.access import Person, check_owner
from nas_core.common.tasks import Task
from nas_core.common.workspace import subdir
from nas_core.data.dataset import Dataset, Problem
from nas_core.data.flip import Source, sort_uploads
from nas_core.data.homology import HomologyError
from nas_core.data.pairs import sniff_pairs_upload
from nas_core.data.splits import assign_splits
from nas_core.data.validation import (
    ValidationResult,
    load_dataset,
    load_flip,
    load_pairs,
    load_upload,
)


@dataclass(frozen=True)
class StoredDataset:
    id: str
    name: str
    task: Task
    n_sequences: int
    fingerprint: str
    created: float
    source: str
    label_names: list[str] | None
    path: str
    owner: str = ""  # Person.key of whoever stored it first ("" from the CLI: admins only)
    owner_name: str = ""
    # a later round of a design loop: the dataset it extends (id, name, fingerprint) and how
    # many measured sequences were added from which file
    parent: dict | None = None
    pair_split: str | None = None  # pairs: which proteins the test shares with training

    @property
    def title(self) -> str:
        return f"{self.name} ({self.task}, {self.n_sequences} sequences)"


class DatasetStore:
    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.dir = subdir("datasets", root)

    def save(self, dataset: Dataset, *, source: str = "", name: str | None = None,
             owner: Person | None = None, parent: dict | None = None) -> StoredDataset:
        """Store a split dataset; storing the same content twice returns the same id."""
        if dataset.frame["split"].isna().any():
            raise ValueError("assign splits before storing a dataset.")
        fingerprint = dataset.fingerprint
        ident = fingerprint[:12]
        folder = self.dir / ident
        folder.mkdir(parents=True, exist_ok=True)
        meta_path = folder / "meta.json"
        if meta_path.exists():
            return self._record(folder)
        try:
            self._write(folder, dataset, source, name, owner, parent)
        except BaseException:
            if not meta_path.exists():  # never listed: remove the half-written files
                shutil.rmtree(folder, ignore_errors=True)
            raise
        return self._record(folder)

    def _write(self, folder: Path, dataset: Dataset, source: str, name: str | None,
               owner: Person | None, parent: dict | None = None) -> None:
        fingerprint, ident = dataset.fingerprint, folder.name
        dataset.frame.to_csv(folder / "data.csv", index=False)
        meta = {"id": ident, "name": self._distinct(name or dataset.name), "task": dataset.task,
                "n_sequences": int(len(dataset.frame)), "fingerprint": fingerprint,
                "created": time.time(), "source": source, "label_names": dataset.label_names,
                "owner": owner.key if owner else "", "owner_name": owner.shown if owner else ""}
        if parent:
            meta["parent"] = parent
        if dataset.pair_split:
            meta["pair_split"] = dataset.pair_split
        tmp = folder / "meta.json.tmp"
        tmp.write_text(json.dumps(meta, indent=2))
        tmp.replace(folder / "meta.json")  # atomic: a half-written dataset is never listed

    def _distinct(self, name: str) -> str:
        """``name``, or when another stored dataset (other rows, labels or splits) has it,
        ``name`` with the date and time it is stored: no two datasets share a name."""
        taken = {r.name for r in self.list()}
        if name not in taken:
            return name
        stamped = f"{name} {time.strftime('%Y-%m-%d %H:%M')}"
        candidate, n = stamped, 2
        while candidate in taken:
            candidate, n = f"{stamped} ({n})", n + 1
        return candidate

    def _record(self, folder: Path) -> StoredDataset:
        meta = json.loads((folder / "meta.json").read_text())
        return StoredDataset(path=str(folder / "data.csv"), **meta)

    def list(self) -> list[StoredDataset]:
        found = [self._record(p.parent) for p in self.dir.glob("*/meta.json")]
        return sorted(found, key=lambda r: r.created, reverse=True)

    def get(self, ident: str) -> StoredDataset:
        folder = self.dir / ident
        if not (folder / "meta.json").exists():
            raise KeyError(f"no stored dataset '{ident}' in {self.dir}.")
        return self._record(folder)

    def load(self, ident: str) -> Dataset:
        return load_stored(self.get(ident))

    def delete(self, ident: str, who: Person) -> None:
        """Remove a stored dataset (its owner or an admin); searches already run keep their
        results. The metadata goes first, so a half-deleted dataset is never listed."""
        record = self.get(ident)
        check_owner(who, record.owner, record.owner_name, "dataset")
        folder = self.dir / ident
        (folder / "meta.json").unlink()
        shutil.rmtree(folder, ignore_errors=True)


def load_stored(record: StoredDataset | str | os.PathLike[str]) -> Dataset:
    """Load a stored dataset (record, or the path of its data.csv / folder)."""
    if not isinstance(record, StoredDataset):
        path = Path(record)
        folder = path if path.is_dir() else path.parent
        meta = json.loads((folder / "meta.json").read_text())
        record = StoredDataset(path=str(folder / "data.csv"), **meta)
    dataset = read_normalised(record.path, record.task, record.label_names, record.name)
    dataset.pair_split = record.pair_split
    if dataset.fingerprint != record.fingerprint:
        raise ValueError(f"stored dataset {record.id} was changed on disk: its content no longer "
                         "matches its fingerprint. Upload it again.")
    return dataset


def read_normalised(path: str | os.PathLike[str], task: Task, label_names: list[str] | None,
                    name: str) -> Dataset:
    """A normalised dataset CSV (what the store writes) back into a :class:`Dataset`."""
    # every text column as text: pandas would read per-residue class strings or class codes
    # made of digits ("0000400", "007") as numbers and drop their leading zeros
    frame = pd.read_csv(path, dtype={"id": str, "sequence": str, "label": str, "split": str,
                                     "where": str, "id_2": str, "sequence_2": str},
                        keep_default_na=False)
    frame["id"] = frame["id"].replace("", None)
    if "id_2" in frame:
        frame["id_2"] = frame["id_2"].replace("", None)
    if Task(task).label_kind == Task.REGRESSION:
        frame["label"] = frame["label"].astype(float)
    for column in ("nearest_train_identity", "nearest_train_identity_2"):
        if column in frame:
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return Dataset(frame, task, label_names, name)


@dataclass
class ImportOutcome:
    """A validated upload: the problems, and — when usable — the split dataset."""

    result: ValidationResult
    dataset: Dataset | None
    notes: list
    stored: StoredDataset | None = None

    @property
    def ok(self) -> bool:
        return self.dataset is not None


def import_dataset(source: str | os.PathLike[str] | bytes | BinaryIO | list[tuple[str, bytes]],
                   *, name: str | None = None, options=None, split_options=None,
                   store: DatasetStore | None = None, progress=None,
                   owner: Person | None = None, labels: Source | None = None,
                   mask: Source | None = None, proteins: Source | None = None
                   ) -> ImportOutcome:
    """Read, validate, split and (optionally) store: the one path the app and the CLI share.

    ``source`` is a path, or an upload's bytes or open file (then ``name`` gives the format),
    or — for the FLIP / biotrainer per-residue layout — the sequence FASTA with ``labels``
    (and optionally ``mask``) beside it, or the two or three uploaded FASTA files as
    ``(name, bytes)`` pairs in any order;
    or — for protein pairs listed by ID — the pairs file with ``proteins`` (their FASTA)
    beside it, or the two uploads in any order;
    ``progress(message, fraction)`` hears about reading, checking and splitting.
    Raises :class:`~nas_core.data.reading.DataFileError` when the file itself is unusable.
    """
    listed = sniff_pairs_upload(source) if isinstance(source, list) else None
    if listed is not None:
        name = name or listed[0][0]
        result = load_pairs(listed[0], listed[1], options, progress=progress)
    elif proteins is not None:
        assert not isinstance(source, (bytes, list))
        result = load_pairs(source if isinstance(source, (str, os.PathLike))
                            else (name or "pairs.tsv", source), proteins, options,
                            progress=progress)
        name = name or Path(str(source)).name
    elif isinstance(source, list):
        sequences, labels, mask = sort_uploads(source)
        name = name or sequences[0]
        result = load_flip(sequences, labels, mask, options, progress=progress)
    elif labels is not None:
        assert not isinstance(source, (bytes, list))
        result = load_flip(source if isinstance(source, (str, os.PathLike))
                           else (name or "sequences.fasta", source), labels, mask, options,
                           progress=progress)
        name = name or Path(str(source)).name
    elif isinstance(source, (str, os.PathLike)):
        result = load_dataset(source, options, display_name=name, progress=progress)
    else:
        if not name:
            raise ValueError("an upload needs its file name to know its format.")
        result = load_upload(source, name, options, progress=progress)
    if not result.ok or result.dataset is None:
        return ImportOutcome(result, None, [])
    if isinstance(source, list) or labels is not None or proteins is not None:
        result.dataset.name = Path(name or "dataset").name.split(".")[0]
    try:
        dataset, notes = assign_splits(result.dataset, split_options, progress=progress)
    except ValueError as exc:
        result.problems.append(Problem("error", "bad_split", str(exc)))
        return ImportOutcome(result, None, [])
    except HomologyError as exc:  # never a traceback: say what failed and what to do
        result.problems.append(Problem(
            "error", "homology_failed",
            f"The homology-aware split could not be computed ({exc}). Choose the random split "
            "(--split random in the CLI, 'Random' in the app), or check the sequences."))
        return ImportOutcome(result, None, [])
    stored = store.save(dataset, source=name or str(source), name=name and Path(name).stem,
                        owner=owner) if store else None
    return ImportOutcome(result, dataset, notes, stored)
