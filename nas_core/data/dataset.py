"""A clean dataset and the words for what is wrong with one: :class:`Dataset`,
:class:`Problem`, the residue alphabet, the label lookup shared by training and prediction."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

STANDARD_RESIDUES = frozenset("ACDEFGHIKLMNPQRSTVWY")
ALLOWED_RESIDUES = STANDARD_RESIDUES | frozenset("XBZUO")
ESM2_MAX_RESIDUES = 1022
TASKS = ("binary", "multiclass", "regression")
SPLITS = ("train", "valid", "test")
Severity = Literal["error", "warning", "info"]


@dataclass(frozen=True)
class Problem:
    severity: Severity
    code: str
    message: str
    where: tuple[str, ...] = ()
    fix: str | None = None

    def __str__(self) -> str:
        return f"{self.severity}: {self.message}"


@dataclass
class Dataset:
    """Clean, normalised sequences with labels and (after splitting) a split column."""

    frame: pd.DataFrame  # columns: id, sequence, label, split, where
    task: str
    label_names: list[str] | None  # classes in index order; None for regression
    name: str = "dataset"

    @property
    def fingerprint(self) -> str:
        """Hash of the normalised content: identifies the dataset across studies and machines."""
        rows = sorted(
            f"{s}\t{label_text(lab)}\t{sp or ''}"
            for s, lab, sp in zip(self.frame["sequence"], self.frame["label"],
                                  self.frame.get("split", [None] * len(self.frame)))
        )
        digest = hashlib.sha256(f"{self.task}\n".encode())
        for row in rows:
            digest.update(row.encode())
            digest.update(b"\n")
        return digest.hexdigest()

    def part(self, split: str) -> pd.DataFrame:
        return self.frame[self.frame["split"] == split].reset_index(drop=True)

    def label_index(self, labels: pd.Series) -> np.ndarray:
        """Class indices (classification) or float values (regression)."""
        if self.task == "regression":
            return labels.astype(float).to_numpy()
        return label_indices(labels, self.label_names or [])

    def summary(self) -> dict:
        return summarise(self.frame, self.task, self.label_names)


def label_indices(labels, label_names: list[str]) -> np.ndarray:
    """Class indices of ``labels`` in ``label_names`` order; KeyError for an unknown class."""
    lookup = {name: i for i, name in enumerate(label_names)}
    return np.array([lookup[str(v)] for v in labels], dtype=np.int64)


def label_text(value: object) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value)


def normalise_sequence(seq: str) -> str:
    """Uppercase, remove whitespace anywhere, strip a terminal stop '*'."""
    cleaned = "".join(str(seq).split()).upper()
    return cleaned[:-1] if cleaned.endswith("*") else cleaned


def where_list(wheres: list[str], limit: int = 8) -> str:
    """``row 3, row 7, ... and 12 more``: where a problem is, without flooding the screen."""
    shown = ", ".join(wheres[:limit])
    return shown + (f" and {len(wheres) - limit} more" if len(wheres) > limit else "")


def summarise(frame: pd.DataFrame, task: str, label_names: list[str] | None) -> dict:
    lengths = frame["sequence"].str.len()
    out: dict = {
        "n_sequences": int(len(frame)),
        "task": task,
        "length": {"min": int(lengths.min()), "median": float(lengths.median()),
                   "max": int(lengths.max()), "mean": round(float(lengths.mean()), 1)},
    }
    if task == "regression":
        values = frame["label"].astype(float)
        out["label"] = {"min": float(values.min()), "median": float(values.median()),
                        "max": float(values.max()), "mean": float(values.mean()),
                        "std": float(values.std(ddof=0))}
    else:
        counts = Counter(frame["label"])
        out["classes"] = {name: int(counts.get(name, 0)) for name in label_names or []}
    if "split" in frame and frame["split"].notna().any():
        counts = Counter(frame["split"])
        out["splits"] = {s: int(counts.get(s, 0)) for s in SPLITS}
    return out


def invalid_characters(seq: str) -> str:
    return "".join(sorted(set(seq) - ALLOWED_RESIDUES))
