"""Validation and normalisation of labelled protein sequences.

``validate(raw, options)`` turns a :class:`~nas_core.data.reading.RawTable` into a
:class:`ValidationResult`: every problem found (with the row, what is wrong and what to do),
the fixes that would resolve the errors, and — when nothing blocks — a clean :class:`Dataset`.
"""

from __future__ import annotations

import io
import math
import os
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd

from nas_core.common.tasks import Task
from nas_core.data import pairs as pair_checks
from nas_core.data import residue_labels as rl
from nas_core.data.dataset import (
    UNLABELLED,
    Dataset,
    Problem,
    Severity,
    invalid_characters,
    label_text,
    normalise_sequence,
    where_list,
)
from nas_core.data.flip import Source, read_flip
from nas_core.data.options import ESM2_MAX_RESIDUES, FIXES, IngestOptions
from nas_core.data.reading import Progress, RawTable, read_raw, read_stream

_SPLIT_ALIASES = {"train": "train", "training": "train", "valid": "valid", "validation": "valid",
                  "val": "valid", "dev": "valid", "test": "test", "testing": "test",
                  "holdout": "test"}




@dataclass
class ValidationResult:
    problems: list[Problem]
    dataset: Dataset | None
    n_rows_read: int
    source: str
    applied_fixes: list[str] = field(default_factory=list)
    # the columns read (given or detected): (sequence, label); a FASTA file has none
    columns: tuple[str | None, str | None] = (None, None)

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
            # replicate measurements: their mean, or drop them like any conflict
            fixes = (p.fix, "drop_conflicts") if p.fix == "mean_replicates" else (p.fix,)
            for fix in filter(None, fixes):
                rows[fix] += max(1, len(p.where))
                groups[fix] += 1
        out = {}
        for fix, n in rows.items():
            plural = "s" if n != 1 else ""
            if fix == "drop_conflicts":
                out[fix] = f"Drop the {groups[fix]} conflicting sequences ({n} row{plural})"
            elif fix == "mean_replicates":
                out[fix] = (f"Keep the mean of the {groups[fix]} sequences' replicate "
                            f"measurements ({n} row{plural})")
            elif fix == "drop_rare_classes":
                out[fix] = f"Drop the {groups[fix]} rare class(es) ({n} row{plural})"
            else:
                out[fix] = f"{FIXES[fix]} ({n} row{plural})"
        return out


def _as_float(value: object) -> float | None:
    try:
        return float(str(value).strip())
    except (TypeError, ValueError):
        return None


# Label cells that mean "no measurement" (compared case-insensitively, stripped).
MISSING_LABELS = frozenset({"na", "n/a", "#n/a", "nan", "none", "null", "missing", "?"})
MOSTLY_NUMERIC = 0.9  # share of number-like labels from which a column is a measurement


def is_missing_label(value: object) -> bool:
    return value is None or str(value).strip().lower() in MISSING_LABELS


def numeric_hint(value: object) -> str | None:
    """Why a label that looks like a number is not read as one, and how to write it."""
    text = str(value).strip()
    if re.fullmatch(r"[-+]?\d+,\d+", text):
        return f"uses a decimal comma: write it as {text.replace(',', '.')}"
    if re.fullmatch(r"[-+]?\d+(\.\d+)?\s*%", text):
        return f"is a percentage: write it as a plain number ({text.rstrip('% ')})"
    return None


TYPO_SHARE = 0.001  # a residue class under this share of the labelled residues is suspect


def _char_kind(c: str) -> str:
    return "digit" if c.isdigit() else "letter" if c.isalpha() else "symbol"


def as_number_text(value: object) -> object:
    """A label written as 2,5 or 30% as the number it means (other labels unchanged)."""
    text = str(value).strip()
    if re.fullmatch(r"[-+]?\d+,\d+", text):
        return text.replace(",", ".")
    if re.fullmatch(r"[-+]?\d+(\.\d+)?\s*%", text):
        return text.rstrip("% ")
    return value


def infer_task(labels: list[object]) -> Task:
    """Guess binary / multiclass / regression from the label values.

    A column whose labels are nearly all numbers (or numbers in a format we do not read, such
    as ``2,5`` or ``30%``) is a measurement even when a few cells are words: those rows are then
    reported as not numbers, instead of the whole column turning into classes."""
    values = [str(v).strip() for v in labels]
    distinct = set(values)
    numbers = [_as_float(v) for v in values]
    all_numeric = all(n is not None for n in numbers)
    if len(distinct) == 2:
        return Task.BINARY
    number_like = sum(n is not None or numeric_hint(v) is not None
                      for v, n in zip(values, numbers))
    if not all_numeric and number_like >= MOSTLY_NUMERIC * len(values) and len(distinct) > 10:
        return Task.REGRESSION
    if all_numeric:
        integral = all(n is not None and math.isfinite(n) and float(n).is_integer()
                       for n in numbers)
        if integral and len(distinct) <= 10:
            return Task.MULTICLASS
        return Task.REGRESSION
    return Task.MULTICLASS


def _sorted_classes(names: set[str]) -> list[str]:
    floats = {n: _as_float(n) for n in names}
    numbers = {n: v for n, v in floats.items() if v is not None}
    if len(numbers) == len(names):
        return sorted(names, key=lambda n: numbers[n])
    lowered = {n.lower() for n in names}
    for neg, pos in (("false", "true"), ("no", "yes"), ("negative", "positive")):
        if lowered == {neg, pos}:
            return sorted(names, key=lambda n: n.lower() == pos)
    return sorted(names)


ROW_FIXES = {  # problem code -> the fix that drops the row
    "empty_sequence": "drop_empty", "invalid_characters": "drop_invalid",
    "missing_label": "drop_unlabelled", "non_numeric_label": "drop_unlabelled",
    "non_finite_label": "drop_unlabelled", "label_overflow": "drop_unlabelled",
    "bad_split": "drop_bad_split", "label_length": "drop_unlabelled",
    "bad_residue_label": "drop_unlabelled", "no_labelled_residue": "drop_unlabelled",
    "nucleotide_sequence": "drop_nucleotides", "unknown_residues": "drop_invalid",
    "missing_protein": "drop_missing_proteins",
}
UNKNOWN_RESIDUES = frozenset("X")
NUCLEOTIDES = frozenset("ACGTUN")
# a row this long written in A, C, G, T/U and N only is DNA or RNA, not a protein (a random
# protein that long has about one chance in 10^12 of it; short peptides such as GAGAGA are
# left alone)
NUCLEOTIDE_ROW_LENGTH = 20


def nucleotide_problem(sequences: pd.Series) -> Problem | None:
    """An error when nearly every sequence is written in A, C, G, T/U and N only."""
    seqs = [s for s in sequences if len(s) >= 8]
    dna = sum(set(s) <= NUCLEOTIDES for s in seqs)
    if not seqs or dna < MOSTLY_NUMERIC * len(seqs):
        return None
    return Problem(
        "error", "nucleotide_sequences",
        f"{dna} of {len(seqs)} sequences contain only A, C, G, T/U and N: this looks like DNA "
        "or RNA, not protein. ESM-2 reads amino-acid sequences: translate the coding sequences "
        "first (for instance with Biopython's Seq.translate or EMBOSS transeq), or choose the "
        "column that holds the protein sequences.")


# a SMILES string: atoms, bonds, branches, rings, charges; and at least one bond, branch or
# bracket, which no protein sequence (nor a typo in one) has
_SMILES = re.compile(r"^[A-Za-z0-9@+\-\[\]()=#$/\\%.:*]+$")
_CHEMISTRY = re.compile(r"[=#()\[\]@]")


def chemistry_problem(values: pd.Series) -> Problem | None:
    """An error naming the file for what it is when most "sequences" are SMILES (small
    molecules), not proteins: dropping every row would be no answer."""
    texts = [str(v).strip() for v in values if v is not None and str(v).strip()]
    smiles = sum(bool(_SMILES.match(t)) and bool(_CHEMISTRY.search(t)) for t in texts)
    if not texts or smiles < 0.5 * len(texts):
        return None
    return Problem(
        "error", "chemistry",
        f"{smiles} of {len(texts)} entries look like SMILES (chemical structures, such as "
        "CC(=O)Oc1ccccc1C(=O)O), not protein sequences. ESM-NAS Studio learns from amino-acid "
        "sequences, one letter per residue: choose the column with the protein sequences "
        "(Columns and task), or, for small molecules, use a chemistry model instead.")


def row_problem(code: str, where: str, text: str, severity: Severity = "error",
                fix: str | None = None) -> Problem:
    """A problem with one row: ``"<where>: <what is wrong>. <what to do>"``."""
    return Problem(severity, code, f"{where}: {text}", (where,), fix)


def invalid_characters_text(bad: str) -> str:
    return (f"invalid character(s) {', '.join(repr(c) for c in bad)} in the sequence. Use "
            "one-letter amino-acid codes (the 20 standard ones plus X, B, Z, U, O)")


class _Check:
    """One validation run: the rows, which of them are kept, what was found and fixed."""

    def __init__(self, raw: RawTable, opts: IngestOptions) -> None:
        self.raw, self.opts = raw, opts
        self.df = raw.frame.copy()
        self.problems: list[Problem] = []
        self.applied: list[str] = []
        self.keep = pd.Series(True, index=self.df.index)
        self.residue_task: str | None = None
        self.task: Task | None = None
        self.refused = False  # the file as a whole is not protein data
        self.pairs = raw.pairs  # two sequences and one label per row
        self.absent = (self.df["absent"].notna() if self.pairs
                       else pd.Series(False, index=self.df.index))

    def flag(self, mask: pd.Series, code: str, text: Callable[[int], str]) -> None:
        """Rows in ``mask`` have problem ``code``: dropped if its fix was chosen, else each
        reported with ``text(row)`` and the fix offered."""
        fix = ROW_FIXES[code]
        rows = self.df.index[mask & self.keep]
        if not len(rows):
            return
        if fix in self.opts.fixes:
            self.applied.append(f"{FIXES[fix]}: dropped {len(rows)} row(s) "
                                f"({where_list(list(self.df.loc[rows, 'where']))}).")
            self.keep.loc[rows] = False
            return
        for i in rows:
            self.problems.append(row_problem(code, self.df.at[i, "where"], text(i), fix=fix))

    def result(self, dataset: Dataset | None = None) -> ValidationResult:
        columns = ((self.raw.seq_col, self.raw.label_col) if self.raw.fmt in ("table", "excel")
                   else (None, None))
        return ValidationResult(self.problems, dataset, len(self.df), self.raw.source,
                                self.applied, columns)

    @property
    def has_errors(self) -> bool:
        return any(p.severity == "error" for p in self.problems)

    def usable(self) -> pd.Series:
        return self.keep & ~self.empty & (self.invalid == "") & self.df["label"].notna()

    # -- the steps, in order ---------------------------------------------------------------
    def sequences(self) -> None:
        df = self.df
        chemistry = chemistry_problem(df["sequence"])
        df["sequence"] = df["sequence"].map(normalise_sequence)
        self.empty = (df["sequence"] == "") & ~self.absent
        if chemistry is not None:  # one answer for the file, not one per row
            self.problems.append(chemistry)
            self.refused = True
            return
        if self.pairs:
            proteins = self.df.attrs.get("proteins", "the protein file")
            self.flag(self.absent, "missing_protein", lambda i: (
                f"protein {df.at[i, 'absent']} is not in {proteins}. Add its sequence to the "
                "protein file, correct the ID, or drop the pair."))
        first = "the first partner's sequence" if self.pairs else "the sequence"
        self.flag(self.empty, "empty_sequence",
                  lambda i: f"{first} is empty. Fill it in or drop the row.")
        self.invalid = df["sequence"].map(invalid_characters)
        self.flag((self.invalid != "") & ~self.empty, "invalid_characters",
                  lambda i: ("first partner: " if self.pairs else "")
                  + invalid_characters_text(self.invalid[i]) + ", or drop the row.")
        if self.pairs:
            self.second_partner()
        unknown = ~self.empty & (self.invalid == "") & df["sequence"].map(
            lambda s: set(s) <= UNKNOWN_RESIDUES)
        self.flag(unknown, "unknown_residues", lambda i: (
            "every residue is X (unknown): the sequence carries nothing to learn from. Fill in "
            "the real sequence, or drop the row."))
        self.invalid = self.invalid.where(~unknown, "X")  # not usable, not a conflict
        self.nucleotides(df.loc[~self.empty, "sequence"])

    def second_partner(self) -> None:
        """A pair's second sequence: the same rules as the first."""
        df = self.df
        df["sequence_2"] = df["sequence_2"].map(normalise_sequence)
        empty = (df["sequence_2"] == "") & ~self.absent
        self.flag(empty & ~self.empty, "empty_sequence", lambda i: (
            "the second partner's sequence is empty. Fill it in or drop the row."))
        invalid = df["sequence_2"].map(invalid_characters)
        self.flag((invalid != "") & ~empty & (self.invalid == ""), "invalid_characters",
                  lambda i: "second partner: " + invalid_characters_text(invalid[i])
                  + ", or drop the row.")
        self.empty = self.empty | empty | self.absent
        self.invalid = self.invalid.where(self.invalid != "", invalid)

    def nucleotides(self, sequences: pd.Series) -> None:
        """A file of DNA/RNA is refused with what to do: ESM-2 reads proteins, and MMseqs2's
        protein search fails on it. In a protein file, each row that looks like DNA or RNA is
        named, with the fix that drops them."""
        if problem := nucleotide_problem(sequences):
            self.problems.append(problem)
            return
        seqs = self.df["sequence"]
        looks = seqs.map(lambda s: len(s) >= NUCLEOTIDE_ROW_LENGTH and set(s) <= NUCLEOTIDES)
        self.flag(looks & ~self.empty, "nucleotide_sequence", lambda i: (
            "the sequence holds only A, C, G, T/U and N: it looks like DNA or RNA, not a "
            "protein. Translate it, or drop the row."))

    def labels(self) -> Task | None:
        """Check the labels and return the task (None when no row has a label)."""
        df = self.df
        raw_missing = df["label"].map(lambda v: v is not None and is_missing_label(v))
        df["label"] = df["label"].map(lambda v: None if is_missing_label(v) else v)
        missing = df["label"].isna()
        self.flag(missing, "missing_label", lambda i: (
            "the label is missing"
            + (f" ({self.raw.frame.at[i, 'label']!r} means no value)" if raw_missing[i] else "")
            + ". Fill it in or drop the row."))
        if "read_numbers" in self.opts.fixes:
            df["label"] = df["label"].map(lambda v: None if v is None else as_number_text(v))
        labelled = df.loc[self.keep & ~missing, "label"].tolist()
        if not labelled:
            self.problems.append(Problem("error", "no_labels",
                                         f"{self.raw.source}: no row has a label."))
            return None
        if self.opts.task == "auto":
            sequences = df.loc[self.keep & ~missing, "sequence"].tolist()
            task = ((None if self.pairs else rl.infer_residue_task(labelled, sequences))
                    or infer_task(labelled))
            if not task.per_residue and task != Task.REGRESSION and self.mixed_labels(
                    df.loc[self.keep & ~missing, "label"]):
                return None
        else:
            task = Task(self.opts.task).label_kind  # a pair's label is one class or value
            if task.per_residue and self.pairs:
                self.problems.append(Problem(
                    "error", "pair_task", f"{self.raw.source}: a file of pairs holds one label "
                    "per pair; choose pair_binary, pair_multiclass or pair_regression."))
                return None
        if task.per_residue:
            self.residue_labels(task, missing)
            return task
        self.formulas(df.loc[self.keep & ~missing, "label"])
        if task != Task.REGRESSION:
            df["label"] = df["label"].map(lambda v: None if v is None else str(v).strip())
            return task
        values = df["label"].map(lambda v: None if v is None else _as_float(v))
        unreadable = df["label"].map(lambda v: v is not None and _as_float(v) is None)
        self.flag(unreadable, "non_numeric_label", lambda i: (
            f"the label {df.at[i, 'label']!r} "
            + (f"{numeric_hint(df.at[i, 'label'])}." if numeric_hint(df.at[i, 'label']) else
               "is not a number, but the task is regression. Correct it, drop the row, or "
               "choose a classification task.")))
        self.flag(~unreadable & ~missing & values.map(lambda v: not math.isfinite(v)),
                  "non_finite_label", lambda i: (
                      f"the label is {df.at[i, 'label']!r} (not a finite number). Correct it "
                      "or drop the row."))
        self.overflow(values)
        df["label"] = values
        return task

    def mixed_labels(self, labels: pd.Series) -> bool:
        """Labels guessed to be classes that look like something else: numbers in several
        formats (2,5 and 30% beside 1.5: measurements) or numbers mixed with words (0, 1, yes,
        2.5). Read as classes, each would silently become a class of its own; the user
        decides (a fix, or the task chosen explicitly). True when an error was recorded."""
        text = labels.map(lambda v: str(v).strip())
        hinted = text.map(lambda v: numeric_hint(v) is not None)
        numeric = text.map(lambda v: _as_float(v) is not None)
        if hinted.any():
            examples = ", ".join(dict.fromkeys(text[hinted | numeric]))
            self.problems.append(Problem(
                "error", "number_formats",
                f"The labels look like measurements written in several formats ({examples[:120]}"
                f"): read as classes, each way of writing a number would be a class of its own. "
                "Read them as numbers (a decimal comma as a point, 30% as 30), write them all as "
                "plain numbers, or choose a classification task if they are codes.",
                tuple(self.df.loc[hinted[hinted].index, "where"].astype(str)), "read_numbers"))
            return True
        if numeric.any() and not numeric.all():
            numbers = list(dict.fromkeys(text[numeric]))
            words = list(dict.fromkeys(text[~numeric]))
            minority = numeric if numeric.sum() < (~numeric).sum() else ~numeric
            self.problems.append(Problem(
                "error", "mixed_labels",
                f"The labels mix numbers ({', '.join(numbers[:6])}) and words "
                f"({', '.join(words[:6])}): a measurement or a class? Correct the odd cells, "
                "or choose the task yourself: binary or multiclass reads every distinct label "
                "as a class, regression reads the numbers and lists the rows with words (to "
                "drop or correct).",
                tuple(self.df.loc[minority[minority].index, "where"].astype(str))))
            return True
        return False

    def residue_labels(self, task: Task, missing: pd.Series) -> None:
        """One label per residue: right length, readable, at least one residue labelled."""
        df = self.df
        check = rl.check_values if task == Task.RESIDUE_REGRESSION else rl.check_classes
        found: dict[int, tuple[str, str]] = {}
        for i in df.index[self.keep & ~missing & ~self.empty]:
            label, code, text = check(str(df.at[i, "label"]), len(df.at[i, "sequence"]))
            if code is not None and text is not None:
                found[i] = (code, text)
            df.at[i, "label"] = label
        for code in ("label_length", "bad_residue_label", "no_labelled_residue"):
            rows = pd.Series(False, index=df.index)
            rows.loc[[i for i, (c, _) in found.items() if c == code]] = True
            self.flag(rows, code, lambda i: found[i][1] + ".")

    def overflow(self, values: pd.Series) -> None:
        """Finite labels so large that their mean or spread is not (e.g. 1e308)."""
        finite = values[self.keep & values.map(lambda v: v is not None and math.isfinite(v))]
        with np.errstate(over="ignore", invalid="ignore"):
            stats = np.array([np.mean(finite.astype(float)), np.std(finite.astype(float))])
        if len(finite) and not np.isfinite(stats).all():
            huge = values.map(lambda v: v is not None and math.isfinite(v) and abs(v) >= 1e150)
            self.flag(huge, "label_overflow", lambda i: (
                f"the label {self.df.at[i, 'label']!r} is too large to compute with (the mean "
                "and spread of the labels overflow). Rescale the labels (for instance take "
                "log10) or drop the row."))

    def formulas(self, labels: pd.Series) -> None:
        """Cells like ``=HYPERLINK(...)``: a spreadsheet formula exported as text."""
        text = labels.astype(str).str.strip()
        formula = text.str.match(r"^(=|@|[+-][^\d.\s])")
        if formula.any():
            wheres = [str(w) for w in self.df.loc[formula[formula].index, "where"]]
            self.problems.append(Problem(
                "warning", "formula_label",
                f"{len(wheres)} label(s) look like spreadsheet formulas and are read as plain "
                f"text: {where_list(wheres)}. Check those cells (a formula should have been "
                "exported as its value).", tuple(wheres)))

    def given_splits(self) -> None:
        df = self.df
        self.has_split = bool(df["split"].notna().any())
        if not self.has_split:
            return
        norm = df["split"].map(lambda v: None if v is None else _SPLIT_ALIASES.get(
            str(v).strip().lower(), "?"))
        bad = norm.isna() | (norm == "?")
        flip = self.raw.fmt == "flip"

        def why(i) -> str:
            value = df.at[i, "split"]
            if value is None or str(value).strip() in ("", "nan", "None"):
                if flip:
                    return ("its label record has no SET= in its header, unlike the others: "
                            "add SET=train or SET=test, or drop the row.")
                return ("no split value, unlike the other rows: give it train, valid or test, "
                        "leave the whole split column empty to let the app split, or drop the "
                        "row.")
            return (f"split value {str(value)!r} is not one of train, valid, test. Correct it, "
                    "leave the whole split column empty to let the app split, or drop the row.")
        self.flag(bad, "bad_split", why)
        df["split"] = norm.where(~bad, None)

    def truncate(self) -> None:
        df, limit = self.df, self.opts.max_length
        too_long = self.usable() & (df["sequence"].str.len() > limit)
        if self.pairs:
            too_long |= self.usable() & (df["sequence_2"].str.len() > limit)
        if not too_long.any():
            return
        wheres = list(df.loc[too_long, "where"])
        self.problems.append(Problem(
            "warning", "truncated",
            f"{len(wheres)} sequence(s) longer than {limit} residues will be truncated to the "
            f"first {limit} (ESM-2's limit): {where_list(wheres)}.", tuple(wheres)))
        df.loc[too_long, "sequence"] = df.loc[too_long, "sequence"].str[:limit]
        if self.pairs:
            df.loc[self.usable(), "sequence_2"] = df.loc[self.usable(), "sequence_2"].str[:limit]
        if self.residue_task:  # the labels of the residues cut off go too
            df.loc[too_long, "label"] = df.loc[too_long, "label"].map(
                lambda v, task=self.residue_task: rl.truncate_label(v, task, limit))

    def duplicates(self) -> None:
        """Identical sequences: conflicting labels are errors (or dropped), replicate
        measurements are errors (or averaged), exact copies are dropped with a warning."""
        df = self.df
        conflict_rows: list[int] = []
        duplicate_rows: list[int] = []
        averaged: list[int] = []
        measured = self.task in (Task.REGRESSION, Task.RESIDUE_REGRESSION)
        key = (pair_checks.pair_keys(df["sequence"], df["sequence_2"])[0] if self.pairs
               else df["sequence"])
        for seq, group in df[self.usable()].groupby(key[self.usable()], sort=False):
            if len(group) < 2:
                continue
            labels = set(map(label_text, group["label"]))
            if len(labels) == 1:
                duplicate_rows.extend(group.index[1:])
                continue
            if measured and "mean_replicates" in self.opts.fixes:
                df.at[group.index[0], "label"] = self._mean(list(group["label"]))
                averaged.extend(group.index[1:])  # merged into the first row
                continue
            conflict_rows.extend(group.index)
            if "drop_conflicts" not in self.opts.fixes:
                self.problems.append(self._conflict(seq, group, measured))
        if conflict_rows and "drop_conflicts" in self.opts.fixes:
            n_seqs = df.loc[conflict_rows, "sequence"].nunique()
            self.applied.append(f"{FIXES['drop_conflicts']}: dropped {n_seqs} sequence(s), "
                                f"{len(conflict_rows)} row(s).")
            self.keep.loc[conflict_rows] = False
        if averaged:
            n_seqs = df.loc[averaged, "sequence"].nunique()
            self.applied.append(f"{FIXES['mean_replicates']}: {n_seqs} sequence(s) now carry "
                                f"the mean of their measurements ({len(averaged)} row(s) "
                                "merged into the first of each).")
            self.keep.loc[averaged] = False
        if duplicate_rows:
            duplicate_rows.sort()
            dropped = [str(w) for w in df.loc[duplicate_rows, "where"]]
            self.problems.append(Problem(
                "warning", "duplicates_dropped",
                f"{len(dropped)} exact duplicate row(s) (same sequence, same label) dropped; "
                f"the first copy is kept: {where_list(dropped)}.", tuple(dropped)))
            self.keep.loc[duplicate_rows] = False

    def _mean(self, labels: list) -> object:
        if self.task == Task.RESIDUE_REGRESSION:
            return rl.mean_values([str(v) for v in labels])
        return float(np.mean([float(v) for v in labels]))

    def reversed_pairs(self) -> None:
        """A-B beside B-A: the same label drops the second listing, different ones are
        errors (or dropped with the conflicts)."""
        drop, problems = pair_checks.reversed_pairs(self.df[self.usable()])
        self.keep.loc[drop] = False
        for problem in problems:
            if problem.code == "reversed_conflict" and "drop_conflicts" in self.opts.fixes:
                rows = self.df.index[self.df["where"].isin(problem.where)]
                self.applied.append(f"{FIXES['drop_conflicts']}: dropped {len(rows)} pair "
                                    "row(s) listed as A-B and B-A with different labels.")
                self.keep.loc[rows] = False
            else:
                self.problems.append(problem)

    def _conflict(self, seq: str, group: pd.DataFrame, measured: bool) -> Problem:
        """One identical sequence with different labels: its labels in a few words (a
        per-residue label by its start and how many positions differ), and the fix."""
        wheres = tuple(group["where"])
        if self.pairs:  # the key joins both partners
            seq = " with ".join(s if len(s) <= 20 else s[:17] + "..." for s in seq.split("\x00"))
        shown = seq if len(seq) <= 30 or self.pairs else seq[:27] + "..."
        what = "pair" if self.pairs else "sequence"
        values = list(dict.fromkeys(map(label_text, group["label"])))
        if self.task is not None and self.task.per_residue:
            differ = rl.differing_positions(values, self.task)
            words = (f"per-residue labels that differ at {differ} of {len(seq)} positions ("
                     + ", ".join(rl.label_start(v, self.task) for v in values[:3])
                     + (f" and {len(values) - 3} more" if len(values) > 3 else "") + ")")
        else:
            words = "conflicting labels " + ", ".join(sorted(values)[:6]) + (
                f" and {len(values) - 6} more" if len(values) > 6 else "")
        if measured:
            words = words.replace("conflicting ", "different ")
            return Problem("error", "replicate_values",
                           f"{where_list(list(wheres))}: the identical {what} {shown} was "
                           f"measured {len(group)} times with {words}: replicate "
                           "measurements? Keep their mean, or drop the sequence.",
                           wheres, "mean_replicates")
        return Problem("error", "conflicting_labels",
                       f"{where_list(list(wheres))}: the identical {what} {shown} has {words}. "
                       "Keep the right one, or drop the conflicting sequences.", wheres,
                       "drop_conflicts")

    def clean_rows(self) -> pd.DataFrame:
        clean = self.df[self.usable()]
        return clean[clean["split"].notna()] if self.has_split else clean

    def classes(self, clean: pd.DataFrame, task: Task
                ) -> tuple[pd.DataFrame, Task, list[str] | None] | None:
        """The classes (rare ones dropped if asked), or None with the error recorded."""
        if task == Task.RESIDUE_CLASSIFICATION:
            return self.residue_classes(clean)
        if task.is_regression:
            per_residue = task == Task.RESIDUE_REGRESSION
            if (rl.constant_values(list(clean["label"])) if per_residue
                    else clean["label"].nunique() < 2):
                self.problems.append(Problem(
                    "error", "constant_label",
                    f"Every {'residue' if per_residue else 'label'} has the same value: there "
                    "is nothing to learn. Check the label column."))
                return None
            return clean, task, None
        counts = Counter(clean["label"])
        if len(counts) < 2:
            self.problems.append(Problem(
                "error", "single_class",
                f"Every usable row has the label {next(iter(counts))!r}: a classifier needs at "
                "least two classes. Add examples of the other class, or choose the regression "
                "task if the label is a measurement."))
            return None
        rare = {c: n for c, n in counts.items() if n < self.opts.min_class_size}
        if rare and "drop_rare_classes" in self.opts.fixes and len(counts) - len(rare) >= 2:
            rows = clean.index[clean["label"].isin(rare)]
            self.applied.append(f"{FIXES['drop_rare_classes']}: dropped classes "
                                f"{', '.join(map(repr, sorted(rare)))} ({len(rows)} row(s)).")
            clean = clean.drop(rows)
            counts = Counter(clean["label"])
        elif rare:
            for cls, n in sorted(rare.items()):
                wheres = tuple(clean.loc[clean["label"] == cls, "where"].astype(str))
                self.problems.append(Problem(
                    "error", "rare_class",
                    f"Class {cls!r} has only {n} example(s) ({where_list(list(wheres))}); each "
                    f"class needs at least {self.opts.min_class_size} to appear in the "
                    "training, validation and test splits. Add examples, merge it into another "
                    "class, or drop the class.", wheres, "drop_rare_classes"))
            return None
        label_names = _sorted_classes(set(counts))
        if task == Task.BINARY and len(label_names) > 2:
            self.problems.append(Problem(
                "error", "not_binary",
                f"The task is binary but the labels have {len(label_names)} classes "
                f"({', '.join(label_names[:6])}). Choose multiclass, or relabel."))
            return None
        return clean, Task.BINARY if len(label_names) == 2 else task, label_names

    def residue_classes(self, clean: pd.DataFrame
                        ) -> tuple[pd.DataFrame, Task, list[str]] | None:
        """Per-residue classes: each must occur in enough proteins to reach every split."""
        proteins = rl.proteins_per_class(list(clean["label"]))
        typos = self.typo_classes(clean)
        if typos and "drop_rare_classes" not in self.opts.fixes:
            return None
        if len(proteins) < 2:
            self.problems.append(Problem(
                "error", "single_class",
                f"Every labelled residue has the class {next(iter(proteins), '?')!r}: a "
                "classifier needs at least two classes. Check the label strings."))
            return None
        rare = {c: n for c, n in proteins.items()
                if n < self.opts.min_class_size or c in typos}
        if rare and "drop_rare_classes" in self.opts.fixes and len(proteins) - len(rare) >= 2:
            clean = clean.copy()
            clean["label"] = clean["label"].map(lambda t: rl.without_classes(t, set(rare)))
            empty = clean["label"].map(lambda t: set(t) == {UNLABELLED})
            self.applied.append(
                f"{FIXES['drop_rare_classes']}: residues of class(es) "
                f"{', '.join(map(repr, sorted(rare)))} marked as unlabelled"
                + (f"; {int(empty.sum())} protein(s) left without a label dropped"
                   if empty.any() else "") + ".")
            clean = clean[~empty]
            proteins = rl.proteins_per_class(list(clean["label"]))
        elif rare:
            for cls, n in sorted(rare.items()):
                wheres = tuple(clean.loc[clean["label"].str.contains(re.escape(cls)),
                                         "where"].astype(str))
                self.problems.append(Problem(
                    "error", "rare_class",
                    f"Residue class {cls!r} occurs in only {n} protein(s) "
                    f"({where_list(list(wheres))}); each class needs residues in at least "
                    f"{self.opts.min_class_size} proteins to appear in the training, validation "
                    "and test splits (proteins never straddle splits). Add proteins with it, "
                    "merge it into another class, or mark its residues as unlabelled.",
                    wheres, "drop_rare_classes"))
            return None
        if self.opts.class_names:
            self.problems.append(Problem(
                "error", "residue_class_names",
                "Per-residue classes keep the one-character codes of the label strings "
                f"({', '.join(sorted(proteins))}); naming them is not supported yet. Leave the "
                "class names empty."))
            return None
        return clean, Task.RESIDUE_CLASSIFICATION, rl_sorted(set(proteins))

    def typo_classes(self, clean: pd.DataFrame) -> set[str]:
        """Per-residue classes that look like typing errors: a handful of residues (under
        TYPO_SHARE of the labelled ones) written in another kind of character than every other
        class (an N among 0/1/2/4). Each is an error with the fix that marks its residues as
        unlabelled; a class merely that rare is a warning."""
        residues = Counter(c for text in clean["label"] for c in text if c != UNLABELLED)
        total = sum(residues.values())
        typos: set[str] = set()
        for cls, n in sorted(residues.items()):
            if n >= TYPO_SHARE * total:
                continue
            others = {_char_kind(c) for c in residues if c != cls}
            wheres = tuple(clean.loc[clean["label"].str.contains(re.escape(cls)),
                                     "where"].astype(str))
            if len(others) == 1 and _char_kind(cls) not in others:
                typos.add(cls)
                if "drop_rare_classes" in self.opts.fixes:
                    continue  # marked as unlabelled by the fix (residue_classes says so)
                self.problems.append(Problem(
                    "error", "typo_class",
                    f"Residue class {cls!r} labels only {n} of {total:,} residues "
                    f"({where_list(list(wheres))}) and is written unlike every other class "
                    f"({', '.join(sorted(c for c in residues if c != cls))}): a typing error? "
                    "Correct those residues, or mark them as unlabelled.",
                    wheres, "drop_rare_classes"))
            else:
                self.problems.append(Problem(
                    "warning", "rare_residue_class",
                    f"Residue class {cls!r} labels only {n} of {total:,} residues "
                    f"({where_list(list(wheres))}): check it is not a typing error; a class "
                    "this rare is hard to learn.", wheres))
        return typos

    def rename_classes(self, clean: pd.DataFrame, label_names: list[str]
                       ) -> tuple[pd.DataFrame, list[str]] | None:
        """Words for the classes (``class_names``), in the classes' order; None with the error
        recorded when a code is not a class or a name is taken by another class."""
        mapping = dict(self.opts.class_names)
        unknown = sorted(set(mapping) - set(label_names))
        if unknown:
            self.problems.append(Problem(
                "error", "unknown_class_name",
                f"Class names: {', '.join(map(repr, unknown))} is not a class of this file (its "
                f"classes: {', '.join(map(repr, label_names))}). Name those classes instead."))
            return None
        renamed = [mapping.get(name, name) for name in label_names]
        if len(set(renamed)) < len(renamed):
            self.problems.append(Problem(
                "error", "duplicate_class_name",
                f"Class names: two classes would both be called "
                f"{next(n for n in renamed if renamed.count(n) > 1)!r}. Give each its own."))
            return None
        clean = clean.copy()
        clean["label"] = clean["label"].map(lambda v: mapping.get(v, v))
        return clean, renamed


def rl_sorted(names: set[str]) -> list[str]:
    return _sorted_classes(names)


def validate(raw: RawTable, options: IngestOptions | None = None) -> ValidationResult:
    """Check every row; apply the requested fixes; return the problems and a clean dataset."""
    check = _Check(raw, options or IngestOptions())
    check.problems.extend(raw.problems)
    check.sequences()
    if check.refused:
        return check.result()
    task = check.labels()
    if task is None:
        return check.result()
    check.task = task
    check.residue_task = task if task.per_residue else None
    check.given_splits()
    check.truncate()
    check.duplicates()
    if check.pairs:
        check.reversed_pairs()
        check.problems.extend(pair_checks.self_pairs(check.df[check.usable()]))
    clean = check.clean_rows()
    if check.has_errors:
        return check.result()
    if clean.empty:
        check.problems.append(Problem("error", "no_rows",
                                      f"{raw.source}: no usable rows are left."))
        return check.result()
    classes = check.classes(clean, task)
    if classes is None:
        return check.result()
    clean, task, label_names = classes
    if check.opts.class_names and label_names and not task.per_residue:
        named = check.rename_classes(clean, label_names)
        if named is None:
            return check.result()
        clean, label_names = named
    columns = ["id", "sequence", "label", "split", "where"]
    if check.pairs:
        task = task.for_pairs()
        columns[2:2] = ["id_2", "sequence_2"]
        if task.is_classification and (rare := pair_checks.imbalance(clean["label"])):
            check.problems.append(rare)
    frame = clean[columns].reset_index(drop=True)
    name = Path(raw.source).name.split(".")[0] or "dataset"
    return check.result(Dataset(frame, task, label_names, name))


def load_dataset(path: str | os.PathLike[str], options: IngestOptions | None = None, *,
                 display_name: str | None = None, progress: Progress | None = None
                 ) -> ValidationResult:
    opts = options or IngestOptions()
    raw = read_raw(path, seq_col=opts.seq_col, label_col=opts.label_col,
                   display_name=display_name, progress=progress)
    return _validate_with_progress(raw, opts, progress)


def load_upload(data: bytes | BinaryIO, name: str, options: IngestOptions | None = None, *,
                progress: Progress | None = None) -> ValidationResult:
    """An upload: its bytes, or the open file (read as a stream, not copied)."""
    opts = options or IngestOptions()
    if isinstance(data, bytes):
        data = io.BytesIO(data)
    data.seek(0, io.SEEK_END)
    size = data.tell()
    data.seek(0)
    raw = read_stream(data, name, size=size, seq_col=opts.seq_col, label_col=opts.label_col,
                      progress=progress)
    return _validate_with_progress(raw, opts, progress)


def load_flip(sequences: Source, labels: Source, mask: Source | None = None,
              options: IngestOptions | None = None, *, progress: Progress | None = None
              ) -> ValidationResult:
    """The FLIP / biotrainer layout: sequences, per-residue labels (split in the headers) and
    an optional mask, checked like any dataset."""
    opts = options or IngestOptions()
    return _validate_with_progress(read_flip(sequences, labels, mask), opts, progress)


def load_pairs(pairs: Source, proteins: Source, options: IngestOptions | None = None, *,
               progress: Progress | None = None) -> ValidationResult:
    """The pairs-file + FASTA layout (``protein_1 protein_2 label`` and the proteins'
    sequences), checked like any dataset of pairs."""
    opts = options or IngestOptions()
    return _validate_with_progress(pair_checks.read_pair_list(pairs, proteins), opts, progress)


def _validate_with_progress(raw: RawTable, opts: IngestOptions,
                            progress: Progress | None) -> ValidationResult:
    if progress:
        progress(f"checking {len(raw.frame):,} rows", 1.0)
    return validate(raw, opts)


def validate_for_prediction(raw: RawTable, max_length: int = ESM2_MAX_RESIDUES
                            ) -> tuple[pd.DataFrame, list[Problem]]:
    """Sequences to predict: same sequence rules as training data, labels optional.

    Returns the clean rows (``id``, ``sequence``, ``label``, ``where``; pairs also ``id_2``
    and ``sequence_2``) and the problems; any error means nothing is predicted, so the user
    fixes the file once.
    """
    frame = raw.frame.copy()
    problems: list[Problem] = []
    columns = (("sequence", "the sequence"),) if not raw.pairs else (
        ("sequence", "the first partner's sequence"), ("sequence_2",
                                                       "the second partner's sequence"))
    if raw.pairs:
        for i in frame.index[frame["absent"].notna()]:
            problems.append(row_problem("missing_protein", frame.at[i, "where"],
                                        f"protein {frame.at[i, 'absent']} is not in the "
                                        "protein file."))
    for column, words in columns:
        frame[column] = frame[column].map(normalise_sequence)
        for i in frame.index:
            seq, where = frame.at[i, column], frame.at[i, "where"]
            if raw.pairs and frame.at[i, "absent"] is not None:
                continue
            if not seq:
                problems.append(row_problem("empty_sequence", where,
                                            f"{words} is empty. Fill it in or remove the row."))
            elif bad := invalid_characters(seq):
                problems.append(row_problem("invalid_characters", where,
                                            invalid_characters_text(bad) + "."))
        long = frame[column].str.len() > max_length
        if long.any():
            wheres = list(frame.loc[long, "where"])
            problems.append(Problem("warning", "truncated",
                                    f"{len(wheres)} sequence(s) longer than {max_length} "
                                    f"residues are truncated for prediction: "
                                    f"{where_list(wheres)}.", tuple(wheres)))
            frame.loc[long, column] = frame.loc[long, column].str[:max_length]
    keep = ["id", "sequence", "label", "where"]
    if raw.pairs:
        keep[1:1] = ["id_2", "sequence_2"]
    return frame[keep], problems
