"""Reading labelled sequences from CSV, TSV, Excel and FASTA files into one raw table.

Nothing here judges the content: it only turns a file into rows with a location the user
recognises ("row 7", "record 3 (>P12345)"). File-level problems (binary junk, wrong encoding,
no sequence column) raise :class:`DataFileError` with a message that says what to do.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from nas_core.data.dataset import Problem

SEQUENCE_COLUMNS = (
    "sequence", "seq", "sequences", "aa_seq", "aa_sequence", "protein_sequence", "protein",
    "peptide", "peptide_sequence", "primary",
)


LABEL_COLUMNS = (
    "label", "labels", "target", "y", "class", "value", "activity", "score", "fluorescence",
    "stability", "localization", "localisation",
)


SPLIT_COLUMNS = ("split", "set", "subset", "partition")
ID_COLUMNS = ("id", "name", "accession", "identifier", "entry", "seq_id")
TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".txt": None}
EXCEL_SUFFIXES = {".xlsx", ".xlsm"}
FASTA_SUFFIXES = {".fasta", ".fa", ".faa", ".fas"}
SUPPORTED = "CSV (.csv), TSV (.tsv), Excel (.xlsx) or FASTA (.fasta/.fa/.faa, optionally .gz)"
_FASTA_KEYVALUE = re.compile(r"(?:^|\s)(label|target|y|class|value|split)\s*[=:]\s*(\S+)", re.I)


# The most an upload may hold once decompressed (a gzip bomb stops here, not in memory).
MAX_UNCOMPRESSED_MB = float(os.environ.get("ESM_NAS_MAX_UPLOAD_MB", "1024"))
DELIMITERS = (",", ";", "\t", "|")


class DataFileError(ValueError):
    """The whole file cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class RawTable:
    """Rows as read, before any validation.

    ``frame`` has the columns ``where`` (location text), ``id``, ``sequence``, ``label`` and
    ``split``; missing values are ``None``.
    """

    frame: pd.DataFrame
    source: str
    fmt: str
    seq_col: str
    label_col: str | None
    problems: tuple[Problem, ...] = ()  # what reading noticed (duplicate IDs, 2nd label column)


def read_raw(
    path: str | os.PathLike[str],
    *,
    seq_col: str | None = None,
    label_col: str | None = None,
    require_label: bool = True,
    display_name: str | None = None,
) -> RawTable:
    """Read ``path`` (any supported format) into a :class:`RawTable`."""
    path = Path(path)
    name = display_name or path.name
    if not path.exists():
        raise DataFileError(f"{name}: file not found.")
    data = path.read_bytes()
    return read_bytes(data, name, seq_col=seq_col, label_col=label_col,
                      require_label=require_label)


def read_bytes(
    data: bytes,
    name: str,
    *,
    seq_col: str | None = None,
    label_col: str | None = None,
    require_label: bool = True,
) -> RawTable:
    """Like :func:`read_raw` for an upload held in memory; ``name`` decides the format."""
    suffixes = [s.lower() for s in Path(name).suffixes]
    if suffixes and suffixes[-1] == ".gz":
        data = gunzip(data, name)
        suffixes = suffixes[:-1]
    suffix = suffixes[-1] if suffixes else ""
    if not data.strip():
        raise DataFileError(f"{name}: the file is empty. Upload a file with a header row and "
                            "one sequence per row, or a FASTA file.")
    if suffix in EXCEL_SUFFIXES:
        frame = _read_excel(data, name)
        return _from_frame(frame, name, "excel", seq_col, label_col, require_label, header_row=1)
    if suffix == ".xls":
        raise DataFileError(f"{name}: old Excel 97 (.xls) files are not supported. In Excel, "
                            "use File > Save As > Excel Workbook (.xlsx), or export a CSV.")
    text = _decode(data, name)
    looks_fasta = suffix not in TABLE_SUFFIXES and text.lstrip().startswith(">")
    if suffix in FASTA_SUFFIXES or looks_fasta:
        return _read_fasta(text, name, require_label)
    if suffix not in TABLE_SUFFIXES and suffix:
        raise DataFileError(f"{name}: unsupported file type '{suffix}'. Use {SUPPORTED}.")
    frame = _read_delimited(text, name, TABLE_SUFFIXES.get(suffix))
    return _from_frame(frame, name, "table", seq_col, label_col, require_label, header_row=1)


def gunzip(data: bytes, name: str, limit_mb: float | None = None) -> bytes:
    """Decompress in a stream, refusing more than ``limit_mb`` (default
    ``$ESM_NAS_MAX_UPLOAD_MB``, 1024) of uncompressed data: a small file that inflates to
    gigabytes is stopped after the limit, with memory bounded by it."""
    limit = int((MAX_UNCOMPRESSED_MB if limit_mb is None else limit_mb) * 2**20)
    out = bytearray()
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            while chunk := stream.read(min(2**20, limit + 1 - len(out))):
                out += chunk
                if len(out) > limit:
                    raise DataFileError(
                        f"{name}: decompresses to more than {limit / 2**20:g} MB, the limit for "
                        "one upload. Split the file, or ask the lab's administrator to raise "
                        "ESM_NAS_MAX_UPLOAD_MB.")
    except (OSError, EOFError) as exc:
        raise DataFileError(
            f"{name}: ends in .gz but is not a valid gzip file ({exc}). "
            "Upload the uncompressed file or re-compress it with gzip."
        ) from None
    return bytes(out)


def _not_a_table(text: str, name: str) -> None:
    """Files that are something else saved under a table's name say what they are."""
    head = text.lstrip()[:512].lower()
    if head.startswith(("<!doctype html", "<html")) or "<html" in head[:200]:
        raise DataFileError(f"{name}: this is a web page (HTML), not a table: a browser saved "
                            "the page instead of the file. Download the file itself (CSV, "
                            "TSV, Excel or FASTA) and upload that.")
    if head.startswith("<?xml"):
        raise DataFileError(f"{name}: this is an XML file, not a table. Export the data as "
                            f"{SUPPORTED}.")
    if head.startswith(("{", "[")):
        try:
            json.loads(text)
        except ValueError:
            return
        raise DataFileError(f"{name}: this is a JSON file, not a table. Export it as CSV (one "
                            "row per sequence, a 'sequence' and a 'label' column).")


def sniff_delimiter(text: str, default: str | None) -> str:
    """The header line's delimiter: Excel in many European locales writes ';' into .csv."""
    first = text.lstrip().splitlines()[0] if text.strip() else ""
    counts = {d: first.count(d) for d in DELIMITERS}
    best = max(counts, key=lambda d: counts[d])
    if default and counts.get(default, 0) >= counts[best]:
        return default
    return best if counts[best] else (default or ",")


def _decode(data: bytes, name: str) -> str:
    binary = DataFileError(f"{name}: this is a binary file, not text. Upload {SUPPORTED}.")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError:
            raise binary from None
    elif b"\x00" in data[:4096]:
        raise binary
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise DataFileError(
                f"{name}: the file is not UTF-8 text (byte 0x{data[exc.start]:02x} at position "
                f"{exc.start}). Save it as 'CSV UTF-8' in Excel, or convert it with "
                "`iconv -f latin1 -t utf-8`."
            ) from None
    sample = text[:4096]
    controls = sum(1 for ch in sample if ord(ch) < 32 and ch not in "\t\n\r")
    if controls > max(2, len(sample) // 100):
        raise binary
    return text


def _read_delimited(text: str, name: str, sep: str | None) -> pd.DataFrame:
    _not_a_table(text, name)
    sep = sniff_delimiter(text, sep)
    try:
        frame = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False,
                            skipinitialspace=True, skip_blank_lines=True)
    except pd.errors.ParserError as exc:
        raise DataFileError(f"{name}: could not read the table: {exc}. Check that every row has "
                            "the same number of columns as the header.") from None
    except pd.errors.EmptyDataError:
        raise DataFileError(f"{name}: the file is empty.") from None
    return frame


def _read_excel(data: bytes, name: str) -> pd.DataFrame:
    try:
        frame = pd.read_excel(io.BytesIO(data), dtype=str, keep_default_na=False,
                              engine="openpyxl")
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise DataFileError(f"{name}: not a readable Excel workbook ({exc}). Open it in Excel and "
                            "save it again as .xlsx, or export a CSV.") from None
    return frame


def _pick(columns: list[str], wanted: str | None, candidates: tuple[str, ...], what: str,
          name: str) -> str | None:
    lowered = {c.strip().lower(): c for c in columns}
    if wanted is not None:
        if wanted in columns:
            return wanted
        if wanted.strip().lower() in lowered:
            return lowered[wanted.strip().lower()]
        raise DataFileError(f"{name}: there is no column '{wanted}' for the {what}. "
                            f"Columns found: {', '.join(map(str, columns))}.")
    for cand in candidates:
        if cand in lowered:
            return lowered[cand]
    return None


def _from_frame(frame: pd.DataFrame, name: str, fmt: str, seq_col: str | None,
                label_col: str | None, require_label: bool, header_row: int) -> RawTable:
    frame = frame.rename(columns=lambda c: str(c).strip())
    columns = list(frame.columns)
    if not columns or len(frame) == 0:
        raise DataFileError(f"{name}: the table has a header but no rows.")
    seq = _pick(columns, seq_col, SEQUENCE_COLUMNS, "sequence", name)
    if seq is None:
        raise DataFileError(
            f"{name}: no sequence column found. Columns found: {', '.join(columns)}. Name the "
            "column 'sequence' or choose it (--seq-col in the CLI, 'Sequence column' in the app)."
        )
    label = _pick(columns, label_col, LABEL_COLUMNS, "label", name)
    if label is None and require_label:
        others = [c for c in columns if c != seq and c.lower() not in SPLIT_COLUMNS + ID_COLUMNS]
        if len(others) == 1:
            label = others[0]
        else:
            raise DataFileError(
                f"{name}: no label column found. Columns found: {', '.join(columns)}. Name the "
                "column 'label' or choose it (--label-col in the CLI, 'Label column' in the app)."
            )
    split = _pick(columns, None, SPLIT_COLUMNS, "split", name)
    ident = _pick(columns, None, ID_COLUMNS, "id", name)
    problems = []
    others = [c for c in columns if c != label and _base_name(c) in LABEL_COLUMNS]
    if label is not None and label_col is None and others:
        problems.append(Problem(
            "warning", "second_label_column",
            f"{name}: the labels are read from column '{label}'; column(s) "
            f"{', '.join(repr(c) for c in others)} look like labels too and are ignored. "
            "Choose the label column if that is not the one you meant."))

    def col(c: str | None) -> list[object]:
        if c is None:
            return [None] * len(frame)
        return [None if (v is None or (isinstance(v, str) and v.strip() == "")) else v
                for v in frame[c].tolist()]

    first = header_row + 1
    out = pd.DataFrame({
        "where": [f"row {first + i}" for i in range(len(frame))],
        "id": col(ident),
        "sequence": [("" if v is None else str(v)) for v in col(seq)],
        "label": col(label),
        "split": col(split),
    })
    return RawTable(out, name, fmt, seq, label, tuple(problems))


def _read_fasta(text: str, name: str, require_label: bool) -> RawTable:
    from Bio.SeqIO.FastaIO import SimpleFastaParser

    if not text.lstrip().startswith(">"):
        raise DataFileError(f"{name}: a FASTA file must start with a '>' header line.")
    rows = []
    try:
        records = list(SimpleFastaParser(io.StringIO(text)))
    except ValueError as exc:
        raise DataFileError(f"{name}: not a valid FASTA file ({exc}).") from None
    for i, (header, seq) in enumerate(records, start=1):
        ident, label, split = _parse_header(header)
        rows.append({
            "where": f"record {i} (>{ident})" if ident else f"record {i}",
            "id": ident or None,
            "sequence": seq,
            "label": label,
            "split": split,
        })
    frame = pd.DataFrame(rows, columns=["where", "id", "sequence", "label", "split"])
    if require_label and frame["label"].isna().all():
        raise DataFileError(
            f"{name}: no labels found in the FASTA headers. Write the label in each header as "
            "'>P12345 label=1' or '>P12345|1' (a split may follow as 'split=test')."
        )
    return RawTable(frame, name, "fasta", "sequence", "label", _duplicate_ids(frame, name))


def _duplicate_ids(frame: pd.DataFrame, name: str) -> tuple[Problem, ...]:
    ids = frame["id"].dropna()
    repeated = ids[ids.duplicated(keep=False)]
    if repeated.empty:
        return ()
    shown = ", ".join(sorted(set(map(str, repeated)))[:8])
    return (Problem("warning", "duplicate_ids",
                    f"{name}: {repeated.nunique()} record ID(s) appear more than once ({shown}): "
                    "predictions and reports cannot tell those records apart. Give each "
                    "record its own ID."),)


def _base_name(column: str) -> str:
    """'label.1' (pandas' name for a second 'label' column) -> 'label'."""
    return re.sub(r"\.\d+$", "", column.strip().lower())


def _parse_header(header: str) -> tuple[str, str | None, str | None]:
    """Parse '>ID label=1 split=test' or '>ID|1' (also '>ID|1|test')."""
    header = header.strip()
    found = {k.lower(): v for k, v in _FASTA_KEYVALUE.findall(header)}
    if found:
        ident = header.split()[0] if header.split() else ""
        if "=" in ident or ":" in ident:
            ident = ""
        label = next((found[k] for k in ("label", "target", "y", "class", "value") if k in found),
                     None)
        return ident, label, found.get("split")
    first = header.split()[0] if header else ""
    parts = first.split("|")
    if parts[0] in {"sp", "tr"} and len(parts) >= 2:  # UniProt header, carries no label
        return parts[1], None, None
    if len(parts) >= 2 and parts[1] != "":
        split = parts[2] if len(parts) >= 3 and parts[2].lower() in {
            "train", "valid", "validation", "val", "test"} else None
        return parts[0], parts[1], split
    return first, None, None


def read_pasted(text: str) -> RawTable:
    """Sequences pasted into a text box: FASTA, or one sequence per line (``id,sequence`` or
    ``id<TAB>sequence`` allowed)."""
    if not text.strip():
        raise DataFileError("nothing pasted: paste FASTA records or one sequence per line.")
    if text.lstrip().startswith(">"):
        return _read_fasta(text, "pasted text", require_label=False)
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        parts = re.split(r"[,\t]", line, maxsplit=1)
        ident, seq = (parts[0].strip(), parts[1]) if len(parts) == 2 else (None, parts[0])
        rows.append({"where": f"line {number}", "id": ident, "sequence": seq, "label": None,
                     "split": None})
    frame = pd.DataFrame(rows, columns=["where", "id", "sequence", "label", "split"])
    return RawTable(frame, "pasted text", "text", "sequence", None)
