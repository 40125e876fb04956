"""Validation and normalisation of labelled protein sequences.

``validate(raw, options)`` turns a :class:`~nas_core.reading.RawTable` into a
:class:`ValidationResult`: every problem found (with the row, what is wrong and what to do),
the fixes that would resolve the errors, and — when nothing blocks — a clean :class:`Dataset`.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from nas_core.reading import RawTable, read_bytes, read_raw

STANDARD_RESIDUES = frozenset("ACDEFGHIKLMNPQRSTVWY")
ALLOWED_RESIDUES = STANDARD_RESIDUES | frozenset("XBZUO")
ESM2_MAX_RESIDUES = 1022
TASKS = ("binary", "multiclass", "regression")
SPLITS = ("train", "valid", "test")
_SPLIT_ALIASES = {"train": "train", "training": "train", "valid": "valid", "validation": "valid",
                  "val": "valid", "dev": "valid", "test": "test", "testing": "test",
                  "holdout": "test"}

Severity = Literal["error", "warning", "info"]

FIXES: dict[str, str] = {
    "drop_conflicts": "Drop every copy of the sequences that carry conflicting labels",
    "drop_invalid": "Drop the rows whose sequence has invalid characters",
    "drop_empty": "Drop the rows with an empty sequence",
    "drop_unlabelled": "Drop the rows with a missing or unusable label",
    "drop_rare_classes": "Drop the classes with too few examples",
    "drop_bad_split": "Drop the rows with an unknown split value",
}


@dataclass(frozen=True)
class IngestOptions:
    """How to read and check a labelled dataset (validated once, then trusted)."""

    seq_col: str | None = field(default=None, metadata={
        "help": "Column holding the sequences; detected from names like 'sequence' or 'seq'."})
    label_col: str | None = field(default=None, metadata={
        "help": "Column holding the measured label; detected from names like 'label' or 'y'."})
    task: str = field(default="auto", metadata={
        "help": "binary, multiclass or regression; 'auto' infers it from the labels."})
    max_length: int = field(default=ESM2_MAX_RESIDUES, metadata={
        "help": "Longer sequences are truncated to this many residues (ESM-2 reads 1022)."})
    min_class_size: int = field(default=5, metadata={
        "help": "A class needs at least this many sequences to be split and learned."})
    fixes: frozenset[str] = field(default=frozenset(), metadata={
        "help": "Named fixes to apply, e.g. drop_conflicts."})

    def __post_init__(self) -> None:
        if self.task not in ("auto", *TASKS):
            raise ValueError(f"task must be auto, binary, multiclass or regression, not "
                             f"'{self.task}'.")
        unknown = set(self.fixes) - set(FIXES)
        if unknown:
            raise ValueError(f"unknown fix {sorted(unknown)}; choose from {sorted(FIXES)}.")
        if self.max_length < 1:
            raise ValueError("max_length must be at least 1.")
        if self.min_class_size < 1:
            raise ValueError("min_class_size must be at least 1.")
        object.__setattr__(self, "fixes", frozenset(self.fixes))


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
            f"{s}\t{_label_text(lab)}\t{sp or ''}"
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
        lookup = {name: i for i, name in enumerate(self.label_names or [])}
        return np.array([lookup[str(v)] for v in labels], dtype=np.int64)

    def summary(self) -> dict:
        return summarise(self.frame, self.task, self.label_names)


@dataclass
class ValidationResult:
    problems: list[Problem]
    dataset: Dataset | None
    n_rows_read: int
    source: str
    applied_fixes: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        return self.dataset is not None and not self.errors

    @property
    def offered_fixes(self) -> dict[str, str]:
        """Fixes that would resolve errors, with a sentence that counts what they drop."""
        rows: Counter[str] = Counter()
        groups: Counter[str] = Counter()
        for p in self.errors:
            if p.fix:
                rows[p.fix] += max(1, len(p.where))
                groups[p.fix] += 1
        out = {}
        for fix, n in rows.items():
            plural = "s" if n != 1 else ""
            if fix == "drop_conflicts":
                out[fix] = f"Drop the {groups[fix]} conflicting sequences ({n} row{plural})"
            elif fix == "drop_rare_classes":
                out[fix] = f"Drop the {groups[fix]} rare class(es) ({n} row{plural})"
            else:
                out[fix] = f"{FIXES[fix]} ({n} row{plural})"
        return out


def _label_text(value: object) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value)


def normalise_sequence(seq: str) -> str:
    """Uppercase, remove whitespace anywhere, strip a terminal stop '*'."""
    cleaned = "".join(str(seq).split()).upper()
    return cleaned[:-1] if cleaned.endswith("*") else cleaned


def _where_list(wheres: list[str], limit: int = 8) -> str:
    shown = ", ".join(wheres[:limit])
    return shown + (f" and {len(wheres) - limit} more" if len(wheres) > limit else "")


def _as_float(value: object) -> float | None:
    try:
        return float(str(value).strip())
    except (TypeError, ValueError):
        return None


def infer_task(labels: list[object]) -> str:
    """Guess binary / multiclass / regression from the label values."""
    values = [str(v).strip() for v in labels]
    distinct = set(values)
    numbers = [_as_float(v) for v in values]
    all_numeric = all(n is not None for n in numbers)
    if len(distinct) == 2:
        return "binary"
    if all_numeric:
        integral = all(n is not None and math.isfinite(n) and float(n).is_integer()
                       for n in numbers)
        if integral and len(distinct) <= 10:
            return "multiclass"
        return "regression"
    return "multiclass"


def _sorted_classes(names: set[str]) -> list[str]:
    floats = {n: _as_float(n) for n in names}
    if all(v is not None for v in floats.values()):
        return sorted(names, key=lambda n: floats[n])
    lowered = {n.lower() for n in names}
    for neg, pos in (("false", "true"), ("no", "yes"), ("negative", "positive")):
        if lowered == {neg, pos}:
            return sorted(names, key=lambda n: n.lower() == pos)
    return sorted(names)


def validate(raw: RawTable, options: IngestOptions | None = None) -> ValidationResult:
    """Check every row; apply the requested fixes; return the problems and a clean dataset."""
    opts = options or IngestOptions()
    df = raw.frame.copy()
    problems: list[Problem] = []
    applied: list[str] = []
    keep = pd.Series(True, index=df.index)

    def flag(mask: pd.Series, fix: str, make: callable) -> None:
        if not mask.any():
            return
        rows = df.index[mask & keep]
        if fix in opts.fixes:
            applied.append(f"{FIXES[fix]}: dropped {len(rows)} row(s) "
                           f"({_where_list(list(df.loc[rows, 'where']))}).")
            keep.loc[rows] = False
            return
        for i in rows:
            problems.append(make(i))

    df["sequence"] = df["sequence"].map(normalise_sequence)

    empty = df["sequence"] == ""
    flag(empty, "drop_empty", lambda i: Problem(
        "error", "empty_sequence",
        f"{df.at[i, 'where']}: the sequence is empty. Fill it in or drop the row.",
        (df.at[i, "where"],), "drop_empty"))

    invalid = df["sequence"].map(invalid_characters)
    flag((invalid != "") & ~empty, "drop_invalid", lambda i: Problem(
        "error", "invalid_characters",
        f"{df.at[i, 'where']}: invalid character(s) {', '.join(repr(c) for c in invalid[i])} "
        f"in the sequence. Use one-letter amino-acid codes (the 20 standard ones plus X, B, Z, "
        f"U, O), or drop the row.", (df.at[i, "where"],), "drop_invalid"))

    # Labels -----------------------------------------------------------------------------
    missing = df["label"].isna()
    flag(missing, "drop_unlabelled", lambda i: Problem(
        "error", "missing_label",
        f"{df.at[i, 'where']}: the label is missing. Fill it in or drop the row.",
        (df.at[i, "where"],), "drop_unlabelled"))
    labelled = df.loc[keep & ~missing, "label"].tolist()
    if not labelled:
        problems.append(Problem("error", "no_labels", f"{raw.source}: no row has a label."))
        return ValidationResult(problems, None, len(df), raw.source, applied)
    task = opts.task if opts.task != "auto" else infer_task(labelled)

    if task == "regression":
        values = df["label"].map(lambda v: None if v is None else _as_float(v))
        non_numeric = ~missing & values.isna()
        flag(non_numeric, "drop_unlabelled", lambda i: Problem(
            "error", "non_numeric_label",
            f"{df.at[i, 'where']}: the label {df.at[i, 'label']!r} is not a number, but the task "
            "is regression. Correct it, drop the row, or choose a classification task.",
            (df.at[i, "where"],), "drop_unlabelled"))
        not_finite = values.map(lambda v: v is not None and not math.isfinite(v))
        flag(not_finite, "drop_unlabelled", lambda i: Problem(
            "error", "non_finite_label",
            f"{df.at[i, 'where']}: the label is {df.at[i, 'label']!r} (not a finite number). "
            "Correct it or drop the row.", (df.at[i, "where"],), "drop_unlabelled"))
        df["label"] = values
    else:
        df["label"] = df["label"].map(lambda v: None if v is None else str(v).strip())

    # Splits given by the user -------------------------------------------------------------
    has_split = df["split"].notna().any()
    if has_split:
        norm = df["split"].map(lambda v: None if v is None else _SPLIT_ALIASES.get(
            str(v).strip().lower(), "?"))
        bad = norm.isna() | (norm == "?")
        flag(bad, "drop_bad_split", lambda i: Problem(
            "error", "bad_split",
            f"{df.at[i, 'where']}: split value {df.at[i, 'split']!r} is not one of train, valid, "
            "test. Correct it, leave the whole split column empty to let the app split, or drop "
            "the row.", (df.at[i, "where"],), "drop_bad_split"))
        df["split"] = norm.where(~bad, None)

    # Truncation ---------------------------------------------------------------------------
    usable = keep & ~empty & (invalid == "") & df["label"].notna()
    too_long = usable & (df["sequence"].str.len() > opts.max_length)
    if too_long.any():
        wheres = list(df.loc[too_long, "where"])
        problems.append(Problem(
            "warning", "truncated",
            f"{len(wheres)} sequence(s) longer than {opts.max_length} residues will be truncated "
            f"to the first {opts.max_length} (ESM-2's limit): {_where_list(wheres)}.",
            tuple(wheres)))
        df.loc[too_long, "sequence"] = df.loc[too_long, "sequence"].str[: opts.max_length]

    # Duplicates -----------------------------------------------------------------------------
    usable = keep & ~empty & (invalid == "") & df["label"].notna()
    groups = df[usable].groupby("sequence", sort=False)
    conflict_rows: list[int] = []
    duplicate_rows: list[int] = []
    for seq, group in groups:
        if len(group) < 2:
            continue
        labels = set(map(_label_text, group["label"]))
        if len(labels) > 1:
            conflict_rows.extend(group.index)
            if "drop_conflicts" not in opts.fixes:
                wheres = tuple(group["where"])
                shown = seq if len(seq) <= 30 else seq[:27] + "..."
                problems.append(Problem(
                    "error", "conflicting_labels",
                    f"{_where_list(list(wheres))}: the identical sequence {shown} has conflicting "
                    f"labels {', '.join(sorted(labels))}. Keep the right one, or drop the "
                    "conflicting sequences.", wheres, "drop_conflicts"))
        else:
            duplicate_rows.extend(group.index[1:])
    if conflict_rows and "drop_conflicts" in opts.fixes:
        n_seqs = df.loc[conflict_rows, "sequence"].nunique()
        applied.append(f"{FIXES['drop_conflicts']}: dropped {n_seqs} sequence(s), "
                       f"{len(conflict_rows)} row(s).")
        keep.loc[conflict_rows] = False
    if duplicate_rows:
        duplicate_rows.sort()
        wheres = list(df.loc[duplicate_rows, "where"])
        problems.append(Problem(
            "warning", "duplicates_dropped",
            f"{len(wheres)} exact duplicate row(s) (same sequence, same label) dropped; the first "
            f"copy is kept: {_where_list(wheres)}.", tuple(wheres)))
        keep.loc[duplicate_rows] = False

    clean = df[keep & ~empty & (invalid == "") & df["label"].notna()]
    if has_split:
        clean = clean[clean["split"].notna()]
    if any(p.severity == "error" for p in problems):
        return ValidationResult(problems, None, len(df), raw.source, applied)
    if clean.empty:
        problems.append(Problem("error", "no_rows", f"{raw.source}: no usable rows are left."))
        return ValidationResult(problems, None, len(df), raw.source, applied)

    # Classes -----------------------------------------------------------------------------
    label_names = None
    if task != "regression":
        counts = Counter(clean["label"])
        if len(counts) < 2:
            only = next(iter(counts))
            problems.append(Problem(
                "error", "single_class",
                f"Every usable row has the label {only!r}: a classifier needs at least two "
                "classes. Add examples of the other class, or choose the regression task if the "
                "label is a measurement."))
            return ValidationResult(problems, None, len(df), raw.source, applied)
        rare = {c: n for c, n in counts.items() if n < opts.min_class_size}
        if rare and "drop_rare_classes" in opts.fixes and len(counts) - len(rare) >= 2:
            rows = clean.index[clean["label"].isin(rare)]
            applied.append(f"{FIXES['drop_rare_classes']}: dropped classes "
                           f"{', '.join(map(repr, sorted(rare)))} ({len(rows)} row(s)).")
            clean = clean.drop(rows)
            counts = Counter(clean["label"])
        elif rare:
            for cls, n in sorted(rare.items()):
                wheres = tuple(clean.loc[clean["label"] == cls, "where"])
                problems.append(Problem(
                    "error", "rare_class",
                    f"Class {cls!r} has only {n} example(s) ({_where_list(list(wheres))}); each "
                    f"class needs at least {opts.min_class_size} to appear in the training, "
                    "validation and test splits. Add examples, merge it into another class, or "
                    "drop the class.", wheres, "drop_rare_classes"))
            return ValidationResult(problems, None, len(df), raw.source, applied)
        label_names = _sorted_classes(set(counts))
        if task == "binary" and len(label_names) > 2:
            problems.append(Problem(
                "error", "not_binary",
                f"The task is binary but the labels have {len(label_names)} classes "
                f"({', '.join(label_names[:6])}). Choose multiclass, or relabel."))
            return ValidationResult(problems, None, len(df), raw.source, applied)
        if task == "multiclass" and len(label_names) == 2:
            task = "binary"
    elif clean["label"].nunique() < 2:
        problems.append(Problem(
            "error", "constant_label",
            "Every label has the same value: there is nothing to learn. Check the label "
            "column."))
        return ValidationResult(problems, None, len(df), raw.source, applied)

    frame = clean[["id", "sequence", "label", "split", "where"]].reset_index(drop=True)
    name = Path(raw.source).name.split(".")[0] or "dataset"
    return ValidationResult(problems, Dataset(frame, task, label_names, name), len(df),
                            raw.source, applied)


def load_dataset(path: str | Path, options: IngestOptions | None = None, *,
                 display_name: str | None = None) -> ValidationResult:
    opts = options or IngestOptions()
    raw = read_raw(path, seq_col=opts.seq_col, label_col=opts.label_col,
                   display_name=display_name)
    return validate(raw, opts)


def load_upload(data: bytes, name: str, options: IngestOptions | None = None) -> ValidationResult:
    opts = options or IngestOptions()
    raw = read_bytes(data, name, seq_col=opts.seq_col, label_col=opts.label_col)
    return validate(raw, opts)


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


def validate_for_prediction(raw: RawTable, max_length: int = ESM2_MAX_RESIDUES
                            ) -> tuple[pd.DataFrame, list[Problem]]:
    """Sequences to predict: same sequence rules as training data, labels optional.

    Returns the clean rows (``id``, ``sequence``, ``label``, ``where``) and the problems; any
    error means nothing is predicted, so the user fixes the file once.
    """
    frame = raw.frame.copy()
    frame["sequence"] = frame["sequence"].map(normalise_sequence)
    problems: list[Problem] = []
    for i in frame.index:
        seq, where = frame.at[i, "sequence"], frame.at[i, "where"]
        if not seq:
            problems.append(Problem("error", "empty_sequence",
                                    f"{where}: the sequence is empty. Fill it in or remove the "
                                    "row.", (where,)))
        elif bad := invalid_characters(seq):
            problems.append(Problem(
                "error", "invalid_characters",
                f"{where}: invalid character(s) {', '.join(repr(c) for c in bad)} in the "
                "sequence. Use one-letter amino-acid codes (the 20 standard ones plus X, B, Z, "
                "U, O).", (where,)))
    long = frame["sequence"].str.len() > max_length
    if long.any():
        wheres = list(frame.loc[long, "where"])
        problems.append(Problem("warning", "truncated",
                                f"{len(wheres)} sequence(s) longer than {max_length} residues "
                                f"are truncated for prediction: {_where_list(wheres)}.",
                                tuple(wheres)))
        frame.loc[long, "sequence"] = frame.loc[long, "sequence"].str[:max_length]
    return frame[["id", "sequence", "label", "where"]], problems
