"""A clean dataset and the words for what is wrong with one: :class:`Dataset`,
:class:`Problem`, the residue alphabet, the label lookup shared by training and prediction."""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from nas_core.common.metric_names import IGNORE_INDEX
from nas_core.common.report import DatasetSummary, Stats
from nas_core.common.tasks import Task

STANDARD_RESIDUES = frozenset("ACDEFGHIKLMNPQRSTVWY")
ALLOWED_RESIDUES = STANDARD_RESIDUES | frozenset("XBZUO")
UNLABELLED = "-"  # a residue without a label in a per-residue class string
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

    # columns: id, sequence, label, split, where; pairs also id_2 and sequence_2 (partner 2)
    frame: pd.DataFrame
    task: Task
    label_names: list[str] | None  # classes in index order; None for regression
    name: str = "dataset"
    # pairs: which proteins the test may share with training ("both_unseen", "one_unseen",
    # "random": see nas_core.data.pair_splits), named on every result
    pair_split: str | None = None

    def __post_init__(self) -> None:
        self.task = Task(self.task)  # the stored text of a task becomes its member

    @property
    def pairs(self) -> bool:
        return self.task.per_pair

    @property
    def fingerprint(self) -> str:
        """Hash of the normalised content: identifies the dataset across studies and machines."""
        firsts = self.frame["sequence"]
        if self.pairs:
            firsts = firsts + "\t" + self.frame["sequence_2"]
        rows = sorted(
            f"{s}\t{label_text(lab)}\t{sp or ''}"
            for s, lab, sp in zip(firsts, self.frame["label"],
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
        """Class indices (classification) or float values (regression); for a per-residue
        task an object array holding one array per sequence (a residue without a label is
        ``IGNORE_INDEX`` or NaN)."""
        if self.task.label_kind is Task.REGRESSION:
            return labels.astype(float).to_numpy()
        if self.task.per_residue:
            return residue_targets(labels, self.task, self.label_names)
        return label_indices(labels, self.label_names or [])

    def summary(self) -> DatasetSummary:
        return summarise(self.frame, self.task, self.label_names, self.pair_split)


def label_indices(labels, label_names: list[str]) -> np.ndarray:
    """Class indices of ``labels`` in ``label_names`` order; KeyError for an unknown class."""
    lookup = {name: i for i, name in enumerate(label_names)}
    return np.array([lookup[str(v)] for v in labels], dtype=np.int64)


def residue_values(text: str) -> np.ndarray:
    """A per-residue regression label as written in the dataset: numbers separated by spaces
    or commas, ``nan`` (or ``-``) where a residue has no value."""
    pieces = [p for p in text.replace(",", " ").split() if p]
    return np.array([math.nan if p in (UNLABELLED, "nan", "NaN") else float(p) for p in pieces],
                    dtype=np.float64)


def residue_values_text(values) -> str:
    return " ".join("nan" if not math.isfinite(v) else repr(float(v)) for v in values)


def residue_targets(labels, task: Task, label_names: list[str] | None) -> np.ndarray:
    """One target array per sequence: class indices (``IGNORE_INDEX`` where unlabelled) or
    values (NaN where unlabelled)."""
    out = np.empty(len(labels), dtype=object)
    if task is Task.RESIDUE_REGRESSION:
        for i, text in enumerate(labels):
            out[i] = residue_values(str(text))
        return out
    table = np.full(128, IGNORE_INDEX, dtype=np.int64)
    for i, name in enumerate(label_names or []):
        table[ord(name)] = i
    for i, text in enumerate(labels):
        out[i] = table[np.frombuffer(str(text).encode("ascii"), dtype=np.uint8)]
    return out


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


def grouped_messages(problems: list[Problem]) -> list[str]:
    """The problems as lines to read: row problems that say the same thing about different
    rows (twenty missing labels) become one line naming the rows; others stay as they are,
    in order."""
    order: list[str | tuple[str, str]] = []  # a message, or a group's (code, text) key
    groups: dict[tuple[str, str], list[str]] = {}
    for problem in problems:
        where = problem.where[0] if len(problem.where) == 1 else ""
        if not where or not problem.message.startswith(f"{where}: "):
            order.append(problem.message)
            continue
        key = (problem.code, problem.message[len(where) + 2:])
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(where)
    lines = []
    for item in order:
        if isinstance(item, str):
            lines.append(item)
            continue
        wheres = groups[item]
        lines.append(f"{wheres[0]}: {item[1]}" if len(wheres) == 1 else
                     f"{where_list(wheres)} ({len(wheres)} rows): {item[1]}")
    return lines


def summarise(frame: pd.DataFrame, task: Task, label_names: list[str] | None,
              pair_split: str | None = None) -> DatasetSummary:
    proteins = None
    if task.per_pair:  # each protein once, whatever number of pairs it is in
        unique = pd.unique(pd.concat([frame["sequence"], frame["sequence_2"]]))
        lengths = pd.Series(unique).str.len()
        proteins = int(len(unique))
    else:
        lengths = frame["sequence"].str.len()
    length = Stats(int(lengths.min()), float(lengths.median()), int(lengths.max()),
                   round(float(lengths.mean()), 1))
    label = classes = labelled = None
    if task.is_regression:
        if task.per_residue:
            values = np.concatenate([residue_values(str(t)) for t in frame["label"]])
            values = values[np.isfinite(values)]
            labelled = int(len(values))
        else:
            values = frame["label"].astype(float).to_numpy()
        label = Stats(float(values.min()), float(np.median(values)), float(values.max()),
                      float(values.mean()), std=float(values.std()))
    else:
        counts = Counter("".join(frame["label"].astype(str)) if task.per_residue
                         else frame["label"])
        classes = {name: int(counts.get(name, 0)) for name in label_names or []}
        labelled = int(sum(classes.values())) if task.per_residue else None
    splits = None
    if "split" in frame and frame["split"].notna().any():
        counts = Counter(frame["split"])
        splits = {s: int(counts.get(s, 0)) for s in SPLITS}
    return DatasetSummary(int(len(frame)), task, length, n_labelled_residues=labelled,
                          label=label, classes=classes, splits=splits, n_proteins=proteins,
                          pair_split=pair_split)


def invalid_characters(seq: str) -> str:
    return "".join(sorted(set(seq) - ALLOWED_RESIDUES))
