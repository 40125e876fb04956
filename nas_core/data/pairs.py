"""Protein pairs: the pairs-file + FASTA layout (D-SCRIPT's: ``protein_1 protein_2 label``
and a FASTA of the proteins), and what only pairs get wrong — a pair listed twice with
different labels, A-B beside B-A, a protein paired with itself, one class far rarer than the
other. The checks return :class:`Problem` lists; the row-by-row validation calls them."""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable

import pandas as pd

from nas_core.data.dataset import Problem, label_text, where_list
from nas_core.data.flip import Source, open_source, records
from nas_core.data.reading import (
    LABEL_COLUMNS,
    PAIR_ID_COLUMNS,
    SPLIT_COLUMNS,
    DataFileError,
    RawTable,
    ReadLimits,
    gunzip,
)

# a class rarer than this share of the pairs is said (and average precision is the metric)
RARE_SHARE = 0.25
_HEADER_WORDS = frozenset({*(c for pair in PAIR_ID_COLUMNS for c in pair), *LABEL_COLUMNS,
                           *SPLIT_COLUMNS, "protein", "partner_1", "partner_2"})


def read_pair_list(pairs: Source, proteins: Source, *, limits: ReadLimits | None = None,
                   require_label: bool = True) -> RawTable:
    """A table of protein IDs (``protein_1 protein_2 label [split]``, tab, comma or space
    separated, with or without a header) and the FASTA holding those proteins, as one
    :class:`RawTable` of pairs. An ID missing from the FASTA is kept in ``absent`` for the
    validation to name row by row."""
    limits = limits or ReadLimits.from_env()
    fasta_name, fasta = records(proteins, "protein file", limits)
    lookup: dict[str, str] = {}
    for ident, seq in zip(fasta["id"], fasta["text"]):
        if ident is not None:
            lookup.setdefault(str(ident), seq)
    name, table = _pair_table(pairs, limits, set(lookup), require_label)
    if not len(table):
        raise DataFileError(f"{name}: no pairs found.")
    first = table.attrs["first_row"]

    def partner(column: str) -> list[str]:
        return ["" if v is None else lookup.get(v, "") for v in table[column]]

    def absent(i: int) -> str | None:
        missing = [f"'{table.at[i, c]}'" for c in ("protein_1", "protein_2")
                   if table.at[i, c] not in lookup]
        return " and ".join(missing) if missing else None

    frame = pd.DataFrame({
        "where": [f"row {first + i}" for i in range(len(table))],
        "id": table["protein_1"], "id_2": table["protein_2"],
        "sequence": partner("protein_1"), "sequence_2": partner("protein_2"),
        "label": table["label"], "split": table.get("split", [None] * len(table)),
        "absent": [absent(i) for i in range(len(table))],
    })
    frame.attrs["proteins"] = fasta_name
    return RawTable(frame, name, "pairs", "protein_1 + protein_2", "label")


def _pair_table(source: Source, limits: ReadLimits, known: set[str], require_label: bool
                ) -> tuple[str, pd.DataFrame]:
    """The pairs file as ``protein_1, protein_2, label[, split]`` text columns (None where
    empty); ``attrs['first_row']`` is the file row of the first pair."""
    name, stream, size = open_source(source)
    try:
        if size > limits.max_mb * 2**20:
            raise DataFileError(f"{name}: {size / 2**20:.0f} MB is more than the "
                                f"{limits.max_mb:.0f} MB a file may hold "
                                "(ESM_NAS_MAX_UPLOAD_MB).")
        data = stream.read()
    finally:
        if not isinstance(source, tuple):
            stream.close()
    if name.lower().endswith(".gz"):
        data = gunzip(data, name, limits.max_mb)
    text = data.decode("utf-8-sig", errors="replace")
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise DataFileError(f"{name}: the pairs file is empty.")
    if lines[0].lstrip().startswith(">"):
        raise DataFileError(f"{name}: this is a FASTA file; the pairs file lists two protein "
                            "IDs and a label per line (protein_1, protein_2, label).")
    if len(lines) > limits.max_rows + 1:
        raise DataFileError(f"{name}: more than {limits.max_rows:,} pairs (ESM_NAS_MAX_ROWS).")
    sep: str | None = "\t" if "\t" in lines[0] else "," if "," in lines[0] else None
    splitter: Callable[[str], list[str]] = ((lambda s: s.split(sep)) if sep
                                            else (lambda s: re.split(r"\s+", s.strip())))
    cells = [[c.strip() for c in splitter(line)] for line in lines]
    header = [c.lower() for c in cells[0]]
    first_ids_known = cells[0][0] in known or (len(cells[0]) > 1 and cells[0][1] in known)
    has_header = any(c in _HEADER_WORDS for c in header) or (
        not first_ids_known and not _looks_like_label(cells[0]))
    width = len(cells[0])
    bad = [i for i, row in enumerate(cells) if len(row) != width]
    if bad:
        raise DataFileError(
            f"{name}: row {bad[0] + 1} has {len(cells[bad[0]])} fields, the first row "
            f"{width}: every row needs the same columns (protein_1, protein_2, label).")
    if width < (3 if require_label else 2):
        raise DataFileError(f"{name}: each line needs two protein IDs and a label "
                            f"(protein_1, protein_2, label); the first line has {width} "
                            "field(s).")
    body = cells[1:] if has_header else cells
    frame = pd.DataFrame(body, columns=cells[0] if has_header else None, dtype=str)
    columns = [str(c) for c in frame.columns]
    lowered = [c.lower() for c in columns]
    ids = next(((lowered.index(a), lowered.index(b)) for a, b in PAIR_ID_COLUMNS
                if a in lowered and b in lowered), (0, 1))
    label = next((lowered.index(c) for c in LABEL_COLUMNS if c in lowered),
                 2 if width > 2 else None)
    split = next((lowered.index(c) for c in SPLIT_COLUMNS if c in lowered), None)
    out = pd.DataFrame({"protein_1": frame.iloc[:, ids[0]], "protein_2": frame.iloc[:, ids[1]],
                        "label": frame.iloc[:, label] if label is not None else None})
    if split is not None:
        out["split"] = frame.iloc[:, split]
    out = out.map(lambda v: None if v is None or v == "" else v)
    out.attrs["first_row"] = 2 if has_header else 1
    return name, out


def _looks_like_label(row: list[str]) -> bool:
    """A first line whose IDs are unknown but whose third field is a number: data."""
    try:
        float(row[2])
    except (ValueError, IndexError):
        return False
    return True


def pair_keys(first: pd.Series, second: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(ordered, unordered) keys of each pair: A-B and B-A share the unordered one."""
    ordered = first + "\x00" + second
    unordered = pd.Series([a + "\x00" + b if a <= b else b + "\x00" + a
                           for a, b in zip(first, second)], index=first.index)
    return ordered, unordered


def self_pairs(frame: pd.DataFrame) -> list[Problem]:
    """Rows pairing a protein with itself: kept (homodimers are real), but said."""
    same = frame["sequence"] == frame["sequence_2"]
    if not same.any():
        return []
    wheres = [str(w) for w in frame.loc[same, "where"]]
    return [Problem(
        "warning", "self_pairs",
        f"{len(wheres)} pair(s) put a protein with itself ({where_list(wheres)}): kept, as a "
        "homodimer is a real interaction; check those rows if they were not meant.",
        tuple(wheres))]


def reversed_pairs(frame: pd.DataFrame) -> tuple[list[int], list[Problem]]:
    """Pairs listed both as A-B and as B-A. With the same label the second listing is
    dropped (the task is symmetric: the order of the partners means nothing); with
    different labels it is an error, because order then seems to matter (bait and prey)."""
    ordered, unordered = pair_keys(frame["sequence"], frame["sequence_2"])
    drop: list[int] = []
    conflicts: list[Problem] = []
    for _, group in frame.groupby(unordered, sort=False):
        if ordered[group.index].nunique() < 2:
            continue
        labels = set(map(label_text, group["label"]))
        wheres = tuple(str(w) for w in group["where"])
        if len(labels) == 1:
            drop.extend(group.index[ordered[group.index] != ordered[group.index[0]]])
            continue
        conflicts.append(Problem(
            "error", "reversed_conflict",
            f"{where_list(list(wheres))}: the same two proteins are listed as A-B and as B-A "
            f"with different labels ({', '.join(sorted(labels)[:4])}). Pairs are read as "
            "symmetric (A with B is B with A): keep one label per pair, or drop them.",
            wheres, "drop_conflicts"))
    notes = []
    if drop:
        dropped = [str(w) for w in frame.loc[drop, "where"]]
        notes.append(Problem(
            "warning", "reversed_pairs",
            f"{len(drop)} pair(s) are listed a second time as B-A with the same label; the "
            f"task is symmetric (A with B is B with A), so each is used once: "
            f"{where_list(dropped)}.", tuple(dropped)))
    return drop, conflicts + notes


def imbalance(labels: pd.Series) -> Problem | None:
    """One class far rarer than the others: said, with the metric that survives it."""
    counts = labels.map(label_text).value_counts()
    if len(counts) < 2 or counts.iloc[-1] / counts.sum() >= RARE_SHARE:
        return None
    rare, share = counts.index[-1], counts.iloc[-1] / counts.sum()
    return Problem(
        "warning", "imbalanced_pairs",
        f"Class {rare!r} is rare: {counts.iloc[-1]:,} of {counts.sum():,} pairs "
        f"({share:.0%}), as in most interaction data (few pairs interact). Accuracy would "
        "reward predicting the common class, so the search optimises average precision "
        "(AUPR) and may weigh the classes by inverse frequency; ROC-AUC and MCC are shown "
        "beside it.")


def sniff_pairs_upload(files: list[tuple[str, bytes]]
                       ) -> tuple[tuple[str, bytes], tuple[str, bytes]] | None:
    """(pairs file, protein FASTA) when two uploads are that layout, else None."""
    if len(files) != 2:
        return None
    fasta = [f for f in files if _is_fasta(f[1], f[0])]
    if len(fasta) != 1:
        return None
    table = next(f for f in files if f is not fasta[0])
    return table, fasta[0]


def _is_fasta(data: bytes, name: str) -> bool:
    """Judged on the first bytes (inflated when gzip): a FASTA starts with '>'."""
    if name.lower().endswith(".gz"):
        try:
            data = zlib.decompressobj(31).decompress(data[: 1 << 16], 4096)
        except zlib.error:
            return False
    return data[:4096].lstrip().startswith(b">")
