"""The FLIP / biotrainer layout of per-residue labels: a FASTA of sequences, a FASTA of label
strings with the same IDs (``>1abc-A SET=train VALIDATION=False``: the split is in the
header) and, optionally, a FASTA of masks (``0`` = ignore that residue's label).

The three files become one :class:`~nas_core.data.reading.RawTable` (one row per sequence,
its label string with ``-`` where the mask says to ignore a residue), which the usual
validation then checks row by row.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import BinaryIO

import pandas as pd

from nas_core.data.dataset import UNLABELLED, Problem, where_list
from nas_core.data.reading import DataFileError, RawTable, ReadLimits, read_stream

# an uploaded file (its name, its bytes or open file), or a path
Source = str | os.PathLike[str] | tuple[str, bytes | BinaryIO]
_SET = re.compile(r"(?:^|\s)SET\s*=\s*(\S+)", re.I)
_VALIDATION = re.compile(r"(?:^|\s)VALIDATION\s*=\s*(\S+)", re.I)


def open_source(source: Source) -> tuple[str, BinaryIO, int]:
    if isinstance(source, tuple):
        name, data = source
        stream: BinaryIO = io.BytesIO(data) if isinstance(data, bytes) else data
        stream.seek(0, io.SEEK_END)
        size = stream.tell()
        stream.seek(0)
        return name, stream, size
    path = Path(source)
    if not path.is_file():
        raise DataFileError(f"{path.name}: file not found.")
    return path.name, open(path, "rb"), path.stat().st_size


def records(source: Source, what: str, limits: ReadLimits) -> tuple[str, pd.DataFrame]:
    """(name, frame) of a FASTA file: ``where``, ``id`` and ``text`` per record."""
    name, stream, size = open_source(source)
    try:
        raw = read_stream(stream, name, size=size, require_label=False, limits=limits)
    finally:
        if not isinstance(source, tuple):
            stream.close()
    if raw.fmt != "fasta":
        raise DataFileError(f"{name}: the {what} must be a FASTA file (records starting with "
                            "'>ID'), as in FLIP / biotrainer.")
    frame = raw.frame.rename(columns={"sequence": "text"})
    return name, frame


def _headers(source: Source) -> dict[str, str]:
    """ID -> the whole header line (the split lives there; the reader keeps only the ID)."""
    name, stream, _ = open_source(source)
    try:
        text = io.TextIOWrapper(stream, encoding="utf-8", errors="replace")
        out: dict[str, str] = {}
        for line in text:
            if line.startswith(">"):
                header = line[1:].strip()
                out.setdefault(header.split()[0] if header.split() else "", header)
        return out
    finally:
        if not isinstance(source, tuple):
            stream.close()
        else:
            stream.seek(0)


def split_of(header: str) -> str | None:
    """FLIP's ``SET=train|test`` and ``VALIDATION=True|False`` as train / valid / test."""
    found = _SET.search(header)
    if not found:
        return None
    part = found.group(1).strip().lower()
    validation = _VALIDATION.search(header)
    if part == "train" and validation and validation.group(1).strip().lower() == "true":
        return "valid"
    return part


def _masked(label: str, mask: str) -> str:
    """The label with every residue whose mask is 0 marked as unlabelled (left as it is when
    its length is wrong: validation then says by how much)."""
    if re.search(r"[\s,]", label.strip()):  # per-residue numbers
        values = label.replace(",", " ").split()
        if len(values) != len(mask):
            return label
        return " ".join("nan" if m == "0" else v for v, m in zip(values, mask))
    if len(label) != len(mask):
        return label
    return "".join(UNLABELLED if m == "0" else c for c, m in zip(label, mask))


def read_flip(sequences: Source, labels: Source, mask: Source | None = None, *,
              limits: ReadLimits | None = None) -> RawTable:
    """One row per sequence with its label string (masked) and its split.

    Sequences without a label record keep an empty label (validation reports each and offers
    to drop them); label records without a sequence are listed in a warning and ignored."""
    limits = limits or ReadLimits.from_env()
    seq_name, seqs = records(sequences, "sequence file", limits)
    label_name, labs = records(labels, "label file", limits)
    headers = _headers(labels)
    problems: list[Problem] = []
    labels_of = _labels_of_each(labs)
    seq_ids = set(seqs["id"])
    orphans = [str(i) for i in labs["id"] if i not in seq_ids]
    if orphans:
        problems.append(Problem(
            "warning", "label_without_sequence",
            f"{label_name}: {len(orphans)} label record(s) have no sequence with the same ID in "
            f"{seq_name} and are ignored: {where_list(orphans)}. Check that both files come "
            "from the same data set."))
    missing = [str(i) for i in seqs["id"] if i not in labels_of]
    if missing:
        problems.append(Problem(
            "warning", "sequence_without_label",
            f"{seq_name}: {len(missing)} sequence(s) have no label record with the same ID in "
            f"{label_name}: {where_list(missing)}. Each is listed below as a missing label."))
    masks: dict[str, str] = {}
    mask_name = None
    if mask is not None:
        mask_name, mframe = records(mask, "mask file", limits)
        masks = _first_of_each(mframe)
    rows = []
    for where, ident, seq, label in (
            (w, i, q, lab) for w, i, q in zip(seqs["where"], seqs["id"], seqs["text"])
            # an ID whose label records disagree gives one row per label: validation then
            # refuses the conflict and offers the same fixes as for conflicting duplicates
            for lab in labels_of.get(i, [None])):
        text = str(label).strip() if label is not None else None
        if text is not None and mask_name is not None:
            m = masks.get(ident)
            if m is None:
                problems.append(Problem(
                    "warning", "no_mask", f"{where}: no mask record with this ID in "
                    f"{mask_name}; every residue's label is used.", (where,)))
            elif (odd := sorted(set(m) - {"0", "1"})) or len(m) != len(
                    "".join(str(seq).split())):
                problems.append(Problem(
                    "warning", "bad_mask",
                    f"{where}: the mask in {mask_name} has {len(m)} characters for "
                    f"{len(''.join(str(seq).split()))} residues"
                    + (f" and characters other than 0 and 1 ({', '.join(odd)})" if odd else "")
                    + ": its labels are not used (listed below as missing). Give one 0 or 1 "
                    "per residue.", (where,)))
                text = None
            else:
                text = _masked(text, m)
        rows.append({"where": where, "id": ident, "sequence": seq, "label": text,
                     "split": split_of(headers.get(str(ident), ""))})
    frame = pd.DataFrame(rows, columns=["where", "id", "sequence", "label", "split"])
    source = f"{seq_name} + {label_name}" + (f" + {mask_name}" if mask_name else "")
    return RawTable(frame, source, "flip", "sequence", "label",
                    tuple(problems) + _duplicates(labs, label_name))


def _first_of_each(frame: pd.DataFrame) -> dict[str, str]:
    """ID -> text of its first record (a repeated mask is warned about, see _duplicates)."""
    out: dict[str, str] = {}
    for ident, text in zip(frame["id"], frame["text"]):
        out.setdefault(ident, text)
    return out


def _labels_of_each(frame: pd.DataFrame) -> dict[str, list[str]]:
    """ID -> the distinct label texts of its records, in file order."""
    out: dict[str, list[str]] = {}
    for ident, text in zip(frame["id"], frame["text"]):
        texts = out.setdefault(ident, [])
        if str(text).strip() not in (str(t).strip() for t in texts):
            texts.append(text)
    return out


def _duplicates(frame: pd.DataFrame, name: str) -> tuple[Problem, ...]:
    """A warning for IDs repeated with the same label (kept once); repeated with different
    labels, they are a conflict that validation refuses."""
    texts = frame.assign(text=frame["text"].map(lambda t: str(t).strip()))
    same = texts[texts.duplicated(["id", "text"])]["id"]
    if same.empty:
        return ()
    return (Problem("warning", "duplicate_ids",
                    f"{name}: {same.nunique()} ID(s) appear more than once with the same label "
                    f"({where_list(sorted(set(map(str, same))))}); each is used once."),)


def sort_uploads(files: list[tuple[str, bytes]]) -> tuple[tuple[str, bytes], tuple[str, bytes],
                                                          tuple[str, bytes] | None]:
    """Which of two or three uploaded FASTA files holds the sequences, the labels and the
    mask: labels carry ``SET=`` in their headers, a mask holds only 0 and 1."""
    if len(files) not in (2, 3):
        raise DataFileError(f"upload the FLIP layout as 2 or 3 FASTA files together (sequences, "
                            f"labels, optionally a mask), not {len(files)}.")
    labels = [f for f in files if _SET.search(_first_header(f[1]))]
    masks = [f for f in files if f not in labels and _only_01(f[1])]
    rest = [f for f in files if f not in labels and f not in masks]
    if len(labels) != 1:
        raise DataFileError(
            "could not tell which file holds the labels: exactly one of them needs headers like "
            "'>ID SET=train VALIDATION=False' (FLIP / biotrainer). Files: "
            + ", ".join(name for name, _ in files) + ".")
    if len(rest) != 1 or len(masks) > 1:
        raise DataFileError(
            "could not tell the sequence file from the mask file: the mask holds only 0 and 1 "
            "per residue, the sequences amino-acid letters. Files: "
            + ", ".join(name for name, _ in files) + ".")
    return rest[0], labels[0], masks[0] if masks else None


def _first_header(data: bytes) -> str:
    for line in data[:65536].decode("utf-8", errors="replace").splitlines():
        if line.startswith(">"):
            return line[1:]
    return ""


def _only_01(data: bytes) -> bool:
    body = [line for line in data[:65536].decode("utf-8", errors="replace").splitlines()
            if line and not line.startswith(">")]
    return bool(body) and all(set(line.strip()) <= {"0", "1"} for line in body)
