"""The next round of a design loop: measured candidates added to a stored dataset.

The old rows keep their splits (the held-out test stays the one the earlier models were judged
on); a new sequence joins the split of a close relative already in it (at the split's identity,
as a homology split would place it), otherwise training. The result is a new stored dataset
(new fingerprint) that names its parent."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from nas_core.common.access import Person
from nas_core.common.tasks import Task
from nas_core.data import homology
from nas_core.data.dataset import Dataset, Problem
from nas_core.data.reading import DataFileError, read_bytes, read_raw
from nas_core.data.store import DatasetStore, StoredDataset, load_stored
from nas_core.data.validation import (
    is_missing_label,
    numeric_hint,
    row_problem,
    validate_for_prediction,
)


@dataclass
class Extension:
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    dataset: Dataset | None = None
    stored: StoredDataset | None = None
    added: dict[str, int] = field(default_factory=dict)  # split -> new sequences

    @property
    def ok(self) -> bool:
        return self.stored is not None


def extend_dataset(parent: StoredDataset, measurements: str | os.PathLike[str] | bytes, *,
                   store: DatasetStore, name: str | None = None, owner: Person | None = None,
                   progress=None) -> Extension:
    """Add measured sequences (with their labels) to ``parent``; store the extended dataset.
    Nothing is stored when any row has a problem: every problem is listed at once."""
    out = Extension()
    base = load_stored(parent)
    if base.task.per_residue or base.pairs:
        what = "per-residue labels" if base.task.per_residue else "pairs of proteins"
        out.problems.append(Problem("error", "per_residue" if base.task.per_residue else
                                    "pairs", "adding measurements works for one label per "
                                    f"sequence; for {what}, upload the extended files on the "
                                    "Data page (a pair split keeps whole proteins apart, so "
                                    "the dataset is split anew)."))
        return out
    try:
        raw = (read_bytes(measurements, name or "measurements.csv") if isinstance(
            measurements, bytes) else read_raw(measurements))
    except DataFileError as exc:
        out.problems.append(Problem("error", "unreadable", str(exc)))
        return out
    rows, problems = validate_for_prediction(raw)
    out.problems += [p for p in problems if p.severity == "error"]
    labels = []
    for where, value in zip(rows["where"], rows["label"]):
        label, problem = _label(value, base, where)
        labels.append(label)
        if problem:
            out.problems.append(problem)
    if out.problems:
        return out
    rows = rows.assign(label=labels)
    known = set(base.frame["sequence"])
    repeated = rows["sequence"].isin(known) | rows["sequence"].duplicated()
    if repeated.any():
        out.notes.append(f"{int(repeated.sum())} measured sequence(s) are already in the "
                         f"dataset (or repeat a row above) and were not added again: "
                         f"{', '.join(rows.loc[repeated, 'where'].head(5))}"
                         + (" ..." if repeated.sum() > 5 else "") + ".")
        rows = rows[~repeated]
    if rows.empty:
        out.problems.append(Problem("error", "nothing_new", "every measured sequence is already "
                                    "in the dataset: there is nothing to add."))
        return out
    new = pd.DataFrame({"id": rows["id"].to_numpy(), "sequence": rows["sequence"].to_numpy(),
                        "label": rows["label"].to_numpy(), "where": rows["where"].to_numpy()})
    new["split"], note = _place(base, list(new["sequence"]), progress)
    out.notes.append(note)
    frame = pd.concat([base.frame, new[[c for c in new.columns if c in base.frame.columns
                                        or c == "split"]]], ignore_index=True)
    _held_out_identity(frame)
    dataset = Dataset(frame, base.task, base.label_names, f"{parent.name}+{len(new)}")
    out.added = {s: int((new["split"] == s).sum()) for s in ("train", "valid", "test")}
    out.dataset = dataset
    out.stored = store.save(dataset, source=name or str(measurements), name=dataset.name,
                            owner=owner, parent={"id": parent.id, "name": parent.name,
                                                 "fingerprint": parent.fingerprint,
                                                 "added": int(len(new)),
                                                 "measurements": Path(
                                                     name or str(measurements)).name})
    return out


def _label(value: object, base: Dataset, where: str) -> tuple[object, Problem | None]:
    if is_missing_label(value):
        return None, row_problem("missing_label", where, "no measured label. Give the "
                                 "measurement, or remove the row until it is measured.")
    if base.task.label_kind == Task.REGRESSION:
        try:
            number = float(str(value).strip().replace(",", "."))
        except ValueError:
            hint = numeric_hint(value)
            return None, row_problem("not_numeric", where, f"the label {value!r} is not a "
                                     f"number{f' ({hint})' if hint else ''}. This dataset's "
                                     "labels are numbers.")
        if not np.isfinite(number):
            return None, row_problem("not_numeric", where, "the label is not a finite number.")
        return number, None
    text = str(value).strip()
    if text not in (base.label_names or []):
        return None, row_problem("unknown_class", where, f"the class {text!r} is not one of "
                                 f"this dataset's classes ({', '.join(base.label_names or [])}). "
                                 "Fix the label, or start a new dataset for new classes.")
    return text, None


def _place(base: Dataset, sequences: list[str], progress) -> tuple[list[str], str]:
    """Each new sequence's split, keeping the guarantee the dataset's split gave: when no
    held-out sequence had a training relative at the split's identity (a homology split), a new
    sequence related to a validation or test sequence joins that split so the guarantee still
    holds; otherwise (a random split, or one family of variants) every new sequence trains.
    The held-out sequences already there never move."""
    threshold = homology.default_identity(list(base.frame["sequence"]))
    held = base.frame[base.frame["split"] != "train"]
    known = held.get("nearest_train_identity")
    guaranteed = (known is not None and len(held) > 0 and bool(known.notna().all())
                  and bool((known < threshold).all()))
    splits = ["train"] * len(sequences)
    if not guaranteed:
        return splits, (f"The dataset's split does not keep relatives apart (held-out "
                        f"sequences have training relatives at {threshold:.0%} identity), so "
                        "every new sequence joins the training split; validation and test "
                        "stay as they were.")
    for part in ("test", "valid"):
        held_part = list(base.part(part)["sequence"])
        if not held_part:
            continue
        near = homology.nearest_identity(sequences, held_part, progress=progress)
        for i, value in enumerate(near):
            if value >= threshold and splits[i] == "train":
                splits[i] = part
    moved = sum(p != "train" for p in splits)
    return splits, (f"{moved} new sequence(s) are related (at least {threshold:.0%} identity) "
                    "to validation or test sequences and joined those splits, so no training "
                    "sequence has a held-out relative; the rest joined training."
                    if moved else "Every new sequence joined the training split (none is "
                    "related to a held-out sequence); validation and test stay as they were.")


def _held_out_identity(frame: pd.DataFrame) -> None:
    """Validation and test rows' identity to their nearest training sequence, recomputed:
    the training split grew."""
    if "nearest_train_identity" not in frame:
        return
    held = frame["split"] != "train"
    if held.any():
        frame.loc[held, "nearest_train_identity"] = homology.nearest_identity(
            list(frame.loc[held, "sequence"]), list(frame.loc[~held, "sequence"]))
    frame.loc[~held, "nearest_train_identity"] = np.nan
