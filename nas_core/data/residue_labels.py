"""Per-residue labels: how to recognise them and what can be wrong with one.

A per-residue class label is a string as long as its sequence (``HHHEEECCC``, ``0001100``),
with ``-`` or ``.`` where a residue has no label; a per-residue value label is that many numbers
separated by spaces or commas, ``nan`` where a residue has no value."""

from __future__ import annotations

import math
import re
from collections import Counter

import numpy as np

from nas_core.common.tasks import Task
from nas_core.data.dataset import UNLABELLED, residue_values_text

UNLABELLED_MARKS = frozenset("-.")
_SEPARATED = re.compile(r"[\s,;]")
_MISSING_VALUES = frozenset({"nan", "na", "-", "none", "?"})
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
# share of rows with one label per residue (and of distinct labels) that makes a task
# per-residue: the rest are then reported row by row, not read as thousands of classes
PER_RESIDUE_SHARE = 0.5


def _pieces(text: str) -> list[str]:
    return [p for p in re.split(r"[\s,;]+", text.strip()) if p]


def _is_number(piece: str) -> bool:
    try:
        float(piece)
    except ValueError:
        return piece.lower() in _MISSING_VALUES
    return True


def per_residue_kind(text: str, length: int) -> str | None:
    """'classification' or 'regression' when ``text`` gives one label per residue of a
    ``length``-residue sequence, else None."""
    text = str(text).strip()
    if length < 2:
        return None
    if _SEPARATED.search(text):
        pieces = _pieces(text)
        if len(pieces) == length and all(_is_number(p) for p in pieces):
            return "regression"
        return None
    if _NUMBER.fullmatch(text) and (not text.isdigit() or length < 4):
        return None  # '1.5' for a tripeptide is a measurement, not three residue classes
    return "classification" if len(text) == length else None


def infer_residue_task(labels: list[object], sequences: list[str]) -> Task | None:
    """A per-residue task when nearly every label has one entry per residue, else None."""
    kinds = [per_residue_kind(str(lab), len(seq)) for lab, seq in zip(labels, sequences)]
    counted = Counter(k for k in kinds if k)
    if not labels or sum(counted.values()) < PER_RESIDUE_SHARE * len(labels):
        return None
    if len({str(v) for v in labels}) < PER_RESIDUE_SHARE * len(labels):
        return None  # a few labels repeated: classes of whole sequences
    return Task(f"residue_{counted.most_common(1)[0][0]}")


def check_classes(text: str, length: int) -> tuple[str | None, str | None, str | None]:
    """(normalised label, problem code, what is wrong and what to do) of a per-residue class
    string for a ``length``-residue sequence; the label is None when there is a problem."""
    text = "".join(str(text).split())
    if len(text) != length:
        return None, "label_length", _length_text(len(text), length, "character")
    bad = sorted({c for c in text if not (c.isalnum() or c in UNLABELLED_MARKS)})
    if bad:
        return None, "bad_residue_label", (
            f"the label has character(s) {', '.join(map(repr, bad))} that are not classes. "
            "Write one letter or digit per residue, '-' for a residue without a label")
    label = "".join(UNLABELLED if c in UNLABELLED_MARKS else c for c in text)
    if set(label) == {UNLABELLED}:
        return None, "no_labelled_residue", _NO_LABEL
    return label, None, None


def check_values(text: str, length: int) -> tuple[str | None, str | None, str | None]:
    """Like :func:`check_classes` for per-residue numbers."""
    pieces = _pieces(str(text))
    if len(pieces) != length:
        return None, "label_length", _length_text(len(pieces), length, "number")
    unreadable = [p for p in pieces if not _is_number(p)]
    if unreadable:
        return None, "bad_residue_label", (
            f"{len(unreadable)} per-residue value(s) are not numbers "
            f"({', '.join(map(repr, unreadable[:3]))}). Write numbers with a decimal point, "
            "'nan' for a residue without a value")
    values = [math.nan if p.lower() in _MISSING_VALUES else float(p) for p in pieces]
    if any(math.isinf(v) for v in values):
        return None, "bad_residue_label", "a per-residue value is infinite. Correct it"
    if all(math.isnan(v) for v in values):
        return None, "no_labelled_residue", _NO_LABEL
    return residue_values_text(values), None, None


_NO_LABEL = ("no residue of this protein has a label (all are '-', 'nan' or masked). Add its "
             "labels or drop it")


def _length_text(got: int, length: int, unit: str) -> str:
    diff = got - length
    more = f"{abs(diff)} {'too many' if diff > 0 else 'too few'}"
    return (f"the label has {got} {unit}{'s' if got != 1 else ''} but the sequence has "
            f"{length} residues ({more}). Give exactly one label per residue ('-' or 'nan' for "
            "a residue without one), or drop the row")


def truncate_label(label: str, task: Task, limit: int) -> str:
    if task == Task.RESIDUE_REGRESSION:
        return " ".join(label.split()[:limit])
    return label[:limit]


def proteins_per_class(labels: list[str]) -> Counter[str]:
    """In how many proteins each residue class occurs."""
    return Counter(c for text in labels for c in set(text) - {UNLABELLED})


def without_classes(label: str, classes: set[str]) -> str:
    return "".join(UNLABELLED if c in classes else c for c in label)


def constant_values(labels: list[str]) -> bool:
    values = np.concatenate([np.array(str(t).split(), dtype=float) for t in labels])
    values = values[np.isfinite(values)]
    return len(values) == 0 or bool(np.all(values == values[0]))


def _values(text: str) -> np.ndarray:
    return np.array([math.nan if p.lower() in _MISSING_VALUES else float(p)
                     for p in _pieces(str(text))])


def label_start(text: str, task: Task, shown: int = 12) -> str:
    """The first labels of a per-residue label, and how many there are in all: what a
    message shows instead of hundreds of numbers."""
    if task == Task.RESIDUE_REGRESSION:
        pieces = _pieces(str(text))
        head = " ".join(pieces[:shown])
        return f"'{head} ...' ({len(pieces)} values)" if len(pieces) > shown else f"'{head}'"
    text = str(text)
    return f"'{text[:shown]}...' ({len(text)} residues)" if len(text) > shown else f"'{text}'"


def differing_positions(labels: list[str], task: Task) -> int:
    """At how many residues the per-residue labels of one sequence disagree."""
    if task == Task.RESIDUE_REGRESSION:
        stacked = np.stack([_values(t) for t in labels])
        spread = np.nanmax(stacked, 0) - np.nanmin(stacked, 0)
        return int(np.sum(np.nan_to_num(spread) > 0))
    return sum(len(set(column)) > 1 for column in zip(*map(str, labels)))


def mean_values(labels: list[str]) -> str:
    """The residue-by-residue mean of replicate per-residue measurements ('nan' where none
    has a value)."""
    stacked = np.stack([_values(t) for t in labels])
    counts = np.isfinite(stacked).sum(0)
    mean = np.where(counts > 0, np.nansum(stacked, 0) / np.maximum(counts, 1), np.nan)
    return residue_values_text(mean)
