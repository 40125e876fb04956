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
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, BinaryIO, TextIO

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
# a table of protein pairs: two sequence columns (SaprotHub's layout), optionally two IDs
PAIR_SEQUENCE_COLUMNS = (
    ("sequence_1", "sequence_2"), ("sequence1", "sequence2"), ("seq_1", "seq_2"),
    ("seq1", "seq2"), ("sequence_a", "sequence_b"), ("seq_a", "seq_b"),
    ("protein_1_sequence", "protein_2_sequence"), ("sequence_x", "sequence_y"),
)
PAIR_ID_COLUMNS = (
    ("id_1", "id_2"), ("id1", "id2"), ("protein_1", "protein_2"), ("protein1", "protein2"),
    ("name_1", "name_2"), ("id_a", "id_b"), ("protein_a", "protein_b"), ("interactor_a",
                                                                        "interactor_b"),
)
ID_COLUMNS = ("id", "name", "accession", "identifier", "entry", "seq_id")
TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".txt": None}
EXCEL_SUFFIXES = {".xlsx", ".xlsm"}
FASTA_SUFFIXES = {".fasta", ".fa", ".faa", ".fas"}
# what an upload widget accepts: every suffix above, and any of them gzipped
FASTA_UPLOAD_TYPES = sorted(s.lstrip(".") for s in (*FASTA_SUFFIXES, ".gz"))
UPLOAD_TYPES = sorted(s.lstrip(".") for s in (*TABLE_SUFFIXES, *EXCEL_SUFFIXES,
                                               *FASTA_SUFFIXES, ".gz"))
SUPPORTED = "CSV (.csv), TSV (.tsv), Excel (.xlsx) or FASTA (.fasta/.fa/.faa, optionally .gz)"
# key=value in a FASTA header; a quoted value may hold spaces (label="cell membrane")
_FASTA_KEYVALUE = re.compile(
    r"""(?:^|\s)(label|target|y|class|value|split)\s*[=:]\s*("[^"]*"|'[^']*'|\S+)""", re.I)


DELIMITERS = (",", ";", "\t", "|")
_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # a compound file: an encrypted or old workbook
_HEAD = 1 << 16  # what format, encoding and delimiter are judged on
_CHUNK_ROWS = 20_000


@dataclass(frozen=True)
class ReadLimits:
    """How much one file may hold. The lab sets them in the environment; past a limit reading
    stops at once (memory stays bounded by the limit) and says which limit and how to raise
    it."""

    max_mb: float = field(default=1024.0, metadata={
        "env": "ESM_NAS_MAX_UPLOAD_MB",
        "help": "Most megabytes a file may hold once decompressed (a .gz upload is inflated as "
                "a stream and stopped here)."})
    max_rows: int = field(default=100_000, metadata={
        "env": "ESM_NAS_MAX_ROWS",
        "help": "Most sequences (rows or FASTA records) one file may hold. The homology split "
                "aligns every sequence against every other: 50,000 sequences take about two "
                "minutes on two CPU cores."})

    @classmethod
    def from_env(cls) -> ReadLimits:
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = os.environ.get(f.metadata["env"])
            if raw is None:
                continue
            try:
                value = int(raw) if f.type in (int, "int") else float(raw)
            except ValueError:
                raise DataFileError(f"{f.metadata['env']}={raw!r} is not a number: set it to "
                                    f"a positive number ({f.metadata['help']})") from None
            if value <= 0:
                raise DataFileError(f"{f.metadata['env']} must be positive, not {raw}.")
            values[f.name] = value
        return cls(**values)


class DataFileError(ValueError):
    """The whole file cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class RawTable:
    """Rows as read, before any validation.

    ``frame`` has the columns ``where`` (location text), ``id``, ``sequence``, ``label`` and
    ``split``; missing values are ``None``. A table of protein pairs also has ``sequence_2``
    and ``id_2`` (the second partner) and ``absent`` (an ID its protein file lacks, or None).
    """

    frame: pd.DataFrame
    source: str
    fmt: str
    seq_col: str
    label_col: str | None
    problems: tuple[Problem, ...] = ()  # what reading noticed (duplicate IDs, 2nd label column)

    @property
    def pairs(self) -> bool:
        """Each row is a pair of proteins (two sequences, one label)."""
        return "sequence_2" in self.frame


Progress = Callable[[str, float], None]


def read_raw(
    path: str | os.PathLike[str],
    *,
    seq_col: str | None = None,
    label_col: str | None = None,
    require_label: bool = True,
    display_name: str | None = None,
    progress: Progress | None = None,
    limits: ReadLimits | None = None,
) -> RawTable:
    """Read ``path`` (any supported format) into a :class:`RawTable`, as a stream."""
    path = Path(path)
    name = display_name or path.name
    if not path.is_file():
        raise DataFileError(f"{name}: file not found." if not path.exists() else
                            f"{name}: is a folder, not a file.")
    try:
        with open(path, "rb") as stream:
            return read_stream(stream, name, size=path.stat().st_size, seq_col=seq_col,
                               label_col=label_col, require_label=require_label,
                               progress=progress, limits=limits)
    except PermissionError:
        raise DataFileError(f"{name}: this file cannot be read (permission denied). Check "
                            "its permissions.") from None


def read_bytes(
    data: bytes,
    name: str,
    *,
    seq_col: str | None = None,
    label_col: str | None = None,
    require_label: bool = True,
) -> RawTable:
    """Like :func:`read_raw` for an upload held in memory; ``name`` decides the format."""
    return read_stream(io.BytesIO(data), name, size=len(data), seq_col=seq_col,
                       label_col=label_col, require_label=require_label)


def read_stream(
    stream: BinaryIO,
    name: str,
    *,
    size: int | None = None,
    seq_col: str | None = None,
    label_col: str | None = None,
    require_label: bool = True,
    progress: Progress | None = None,
    limits: ReadLimits | None = None,
) -> RawTable:
    """Read an open binary file (an upload, a path) in chunks, never holding more than the
    rows themselves; ``name`` decides the format, ``size`` (bytes) drives ``progress``."""
    limits = limits or ReadLimits.from_env()
    suffixes = [s.lower() for s in Path(name).suffixes]
    compressed = bool(suffixes) and suffixes[-1] == ".gz"
    if compressed:
        suffixes = suffixes[:-1]
    kind = suffixes[-1] if suffixes else ""
    if kind == ".xls":
        raise DataFileError(f"{name}: old Excel 97 (.xls) files are not supported. In Excel, "
                            "use File > Save As > Excel Workbook (.xlsx), or export a CSV.")
    counted = _Counted(stream)
    inner: BinaryIO = gzip.GzipFile(fileobj=counted) if compressed else counted  # type: ignore
    bounded = _Bounded(inner, name, limits.max_mb, compressed)
    if progress and size:
        said = [-1]

        def report() -> None:  # at most once per percent
            percent = min(100, 100 * counted.count // size)
            if percent != said[0]:
                said[0] = percent
                progress(f"reading {name}", percent / 100)

        bounded.on_read = report
    reader = io.BufferedReader(bounded, buffer_size=1 << 20)
    try:
        return _read_from(reader, name, kind, seq_col, label_col, require_label, limits)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        if not compressed:
            raise
        raise DataFileError(
            f"{name}: ends in .gz but is not a valid gzip file ({exc}). "
            "Upload the uncompressed file or re-compress it with gzip."
        ) from None


def _read_from(reader: io.BufferedReader[Any], name: str, suffix: str, seq_col: str | None,
               label_col: str | None, require_label: bool, limits: ReadLimits) -> RawTable:
    head = reader.peek(_HEAD)[:_HEAD]
    if not head.strip() and len(head) < _HEAD:
        raise DataFileError(f"{name}: the file is empty. Upload a file with a header row and "
                            "one sequence per row, or a FASTA file.")
    if suffix in EXCEL_SUFFIXES:
        frame = _read_excel(reader.read(), name, seq_col)
        if len(frame) > limits.max_rows:
            raise _too_many_rows(name, limits)
        return _from_frame(frame, name, "excel", seq_col, label_col, require_label, header_row=1)
    encoding = _encoding(head, name)
    text = io.TextIOWrapper(reader, encoding=encoding)
    head_text = head.decode(encoding, errors="ignore")
    looks_fasta = suffix not in TABLE_SUFFIXES and head_text.lstrip().startswith(">")
    try:
        if suffix in FASTA_SUFFIXES or looks_fasta:
            return _read_fasta(text, name, require_label, limits.max_rows)
        if suffix not in TABLE_SUFFIXES and suffix:
            raise DataFileError(f"{name}: unsupported file type '{suffix}'. Use {SUPPORTED}.")
        frame = _read_delimited(text, head_text, name, TABLE_SUFFIXES.get(suffix), limits)
    except UnicodeDecodeError as exc:
        at = max(0, reader.tell() - len(exc.object) + exc.start)
        raise DataFileError(
            f"{name}: the file is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at position "
            f"{at}). Save it as 'CSV UTF-8' in Excel, or convert it with "
            "`iconv -f latin1 -t utf-8`."
        ) from None
    return _from_frame(frame, name, "table", seq_col, label_col, require_label, header_row=1)


def gunzip(data: bytes, name: str, limit_mb: float | None = None) -> bytes:
    """Decompress in a stream, refusing more than ``limit_mb`` (default
    ``$ESM_NAS_MAX_UPLOAD_MB``, 1024) of uncompressed data: a small file that inflates to
    gigabytes is stopped after the limit, with memory bounded by it."""
    limit = ReadLimits.from_env().max_mb if limit_mb is None else limit_mb
    with gzip.GzipFile(fileobj=io.BytesIO(data)) as inner:
        try:
            return _Bounded(inner, name, limit, True).readall()  # type: ignore[arg-type]
        except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
            raise DataFileError(
                f"{name}: ends in .gz but is not a valid gzip file ({exc}). "
                "Upload the uncompressed file or re-compress it with gzip."
            ) from None


class _Counted(io.RawIOBase):
    """The bytes read so far from the file itself (compressed, for a .gz): the progress."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw, self.count = raw, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.raw.read(len(buffer))
        buffer[:len(data)] = data
        self.count += len(data)
        return len(data)


class _Bounded(io.RawIOBase):
    """Refuses to deliver more than ``limit_mb`` of (decompressed) bytes."""

    def __init__(self, raw: BinaryIO, name: str, limit_mb: float, compressed: bool) -> None:
        self.raw, self.name, self.compressed = raw, name, compressed
        self.limit_mb, self.limit, self.count = limit_mb, int(limit_mb * 2**20), 0
        self.on_read: Callable[[], None] | None = None

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.count

    def readinto(self, buffer) -> int:
        data = self.raw.read(min(len(buffer), self.limit + 1 - self.count))
        buffer[:len(data)] = data
        self.count += len(data)
        if self.count > self.limit:
            what = "decompresses to" if self.compressed else "holds"
            raise DataFileError(
                f"{self.name}: {what} more than {self.limit_mb:g} MB, the limit for one file on "
                "this instance; reading stopped there and nothing was stored. Split the file, "
                "or ask the lab's administrator to raise ESM_NAS_MAX_UPLOAD_MB.")
        if self.on_read:
            self.on_read()
        return len(data)


def _too_many_rows(name: str, limits: ReadLimits) -> DataFileError:
    return DataFileError(
        f"{name}: more than {limits.max_rows:,} sequences, the limit for one dataset on this "
        "instance; reading stopped there and nothing was stored. Keep a representative subset "
        "(or split the file), or ask the lab's administrator to raise ESM_NAS_MAX_ROWS.")


def _not_a_table(head: str, name: str) -> bool:
    """Files that are something else saved under a table's name say what they are; True when
    the file starts like JSON (only the whole file can tell)."""
    head = head.lstrip()[:512].lower()
    if head.startswith(("<!doctype html", "<html")) or "<html" in head[:200]:
        raise DataFileError(f"{name}: this is a web page (HTML), not a table: a browser saved "
                            "the page instead of the file. Download the file itself (CSV, "
                            "TSV, Excel or FASTA) and upload that.")
    if head.startswith("<?xml"):
        raise DataFileError(f"{name}: this is an XML file, not a table. Export the data as "
                            f"{SUPPORTED}.")
    return head.startswith(("{", "["))


def sniff_delimiter(text: str, default: str | None) -> str:
    """The header line's delimiter: Excel in many European locales writes ';' into .csv."""
    first = text.lstrip().splitlines()[0] if text.strip() else ""
    counts = {d: first.count(d) for d in DELIMITERS}
    best = max(counts, key=lambda d: counts[d])
    if default and counts.get(default, 0) >= counts[best]:
        return default
    return best if counts[best] else (default or ",")


def _encoding(head: bytes, name: str) -> str:
    """The text encoding, judged on the first bytes; binary files are refused."""
    binary = DataFileError(f"{name}: this is a binary file, not text. Upload {SUPPORTED}.")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding = "utf-16"
    elif b"\x00" in head[:4096]:
        raise binary
    else:
        encoding = "utf-8-sig"
    sample = head[:4096].decode(encoding, errors="ignore")
    controls = sum(1 for ch in sample if ord(ch) < 32 and ch not in "\t\n\r")
    if controls > max(2, len(sample) // 100):
        raise binary
    return encoding


def _read_delimited(text: TextIO, head: str, name: str, sep: str | None,
                    limits: ReadLimits) -> pd.DataFrame:
    if _not_a_table(head, name):
        whole = text.read()
        try:
            json.loads(whole)
        except ValueError:
            text = io.StringIO(whole)  # not JSON after all: read it as a table
        else:
            raise DataFileError(f"{name}: this is a JSON file, not a table. Export it as CSV "
                                "(one row per sequence, a 'sequence' and a 'label' column).")
    sep = sniff_delimiter(head, sep)
    frames, n = [], 0
    try:
        chunks = pd.read_csv(text, sep=sep, dtype=str, keep_default_na=False,
                             skipinitialspace=True, skip_blank_lines=True, chunksize=_CHUNK_ROWS)
        for chunk in chunks:
            n += len(chunk)
            if n > limits.max_rows:
                raise _too_many_rows(name, limits)
            frames.append(chunk)
    except pd.errors.ParserError as exc:
        raise DataFileError(f"{name}: could not read the table: {exc}. Check that every row has "
                            "the same number of columns as the header.") from None
    except pd.errors.EmptyDataError:
        raise DataFileError(f"{name}: the file is empty.") from None
    if not frames:  # a header and no rows
        return pd.DataFrame(columns=chunks.orig_options.get("names") or [])
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def _read_excel(data: bytes, name: str, seq_col: str | None = None) -> pd.DataFrame:
    """The workbook's sheet with the sequences: the first one whose columns name a sequence
    column (``seq_col``, or one of :data:`SEQUENCE_COLUMNS`); the first sheet when none does
    and there is only one."""
    if data[:8] == _OLE2:
        raise DataFileError(
            f"{name}: this workbook is password-protected (or an old .xls): it cannot be read "
            "without the password. In Excel, remove the password (File > Info > Protect "
            "Workbook) and save it as .xlsx, or export a CSV.")
    try:
        sheets = pd.read_excel(io.BytesIO(data), dtype=str, keep_default_na=False,
                               engine="openpyxl", sheet_name=None)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise DataFileError(f"{name}: not a readable Excel workbook ({exc}). Open it in Excel and "
                            "save it again as .xlsx, or export a CSV.") from None
    wanted = {seq_col.strip().lower()} if seq_col else set(SEQUENCE_COLUMNS)
    for frame in sheets.values():
        if wanted & {str(c).strip().lower() for c in frame.columns}:
            return frame
    if len(sheets) > 1:
        raise DataFileError(
            f"{name}: none of its {len(sheets)} sheets ({', '.join(map(str, sheets))}) has a "
            "sequence column (a header such as 'sequence'). Put the sequences in a column "
            "with that header, or export the right sheet as a CSV.")
    return next(iter(sheets.values()))


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


CHEMISTRY_COLUMNS = ("smiles", "canonical_smiles", "isomeric_smiles", "inchi", "inchikey",
                     "mol", "molecule", "selfies")


def _from_frame(frame: pd.DataFrame, name: str, fmt: str, seq_col: str | None,
                label_col: str | None, require_label: bool, header_row: int) -> RawTable:
    frame = frame.rename(columns=lambda c: str(c).strip())
    columns = list(frame.columns)
    if not columns or len(frame) == 0:
        raise DataFileError(f"{name}: the table has a header but no rows.")
    pair = None if seq_col else _pair_columns(columns, PAIR_SEQUENCE_COLUMNS)
    if pair is not None:
        return _pairs_from_frame(frame, name, fmt, pair, label_col, header_row)
    seq = _pick(columns, seq_col, SEQUENCE_COLUMNS, "sequence", name)
    chemistry = [c for c in columns if c.lower() in CHEMISTRY_COLUMNS]
    if seq is None and chemistry:
        raise DataFileError(
            f"{name}: the column '{chemistry[0]}' holds chemical structures (small molecules), "
            "and no column holds protein sequences. ESM-NAS Studio learns from amino-acid "
            "sequences, one letter per residue: add them (a 'sequence' column), or use a "
            "chemistry model for small molecules.")
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


def _pair_columns(columns: list[str], candidates: tuple[tuple[str, str], ...]
                  ) -> tuple[str, str] | None:
    lowered = {c.strip().lower(): c for c in columns}
    for first, second in candidates:
        if first in lowered and second in lowered:
            return lowered[first], lowered[second]
    return None


def _cells(frame: pd.DataFrame, c: str | None) -> list[object]:
    if c is None:
        return [None] * len(frame)
    return [None if (v is None or (isinstance(v, str) and v.strip() == "")) else v
            for v in frame[c].tolist()]


def _pairs_from_frame(frame: pd.DataFrame, name: str, fmt: str, pair: tuple[str, str],
                      label_col: str | None, header_row: int) -> RawTable:
    """A table with both partners' sequences in columns: one row per pair."""
    columns = list(frame.columns)
    ids = _pair_columns(columns, PAIR_ID_COLUMNS) or (None, None)
    label = _pick(columns, label_col, LABEL_COLUMNS, "label", name)
    taken = {*pair, *ids}
    if label is None:
        others = [c for c in columns if c not in taken
                  and c.lower() not in SPLIT_COLUMNS + ID_COLUMNS]
        if len(others) != 1:
            raise DataFileError(
                f"{name}: two sequence columns ({pair[0]}, {pair[1]}) but no label column. "
                f"Columns found: {', '.join(columns)}. Name it 'label' or choose it "
                "(--label-col in the CLI, 'Label column' in the app).")
        label = others[0]
    split = _pick(columns, None, SPLIT_COLUMNS, "split", name)
    first = header_row + 1
    out = pd.DataFrame({
        "where": [f"row {first + i}" for i in range(len(frame))],
        "id": _cells(frame, ids[0]), "id_2": _cells(frame, ids[1]),
        "sequence": [("" if v is None else str(v)) for v in _cells(frame, pair[0])],
        "sequence_2": [("" if v is None else str(v)) for v in _cells(frame, pair[1])],
        "label": _cells(frame, label), "split": _cells(frame, split),
        "absent": [None] * len(frame),
    })
    return RawTable(out, name, fmt, f"{pair[0]} + {pair[1]}", label)


def _read_fasta(text: TextIO, name: str, require_label: bool,
                max_rows: int | None = None) -> RawTable:
    from Bio.SeqIO.FastaIO import SimpleFastaParser

    first = ""
    while not first.strip():
        first = text.readline()
        if not first:
            break
    if not first.lstrip().startswith(">"):
        raise DataFileError(f"{name}: a FASTA file must start with a '>' header line.")
    rows = []
    try:
        for i, (header, seq) in enumerate(SimpleFastaParser(_prepend(first, text)), start=1):
            if max_rows is not None and i > max_rows:
                raise _too_many_rows(name, ReadLimits(max_rows=max_rows))
            ident, label, split = _parse_header(header)
            rows.append({
                "where": f"record {i} (>{ident})" if ident else f"record {i}",
                "id": ident or None,
                "sequence": seq,
                "label": label,
                "split": split,
            })
    except ValueError as exc:
        if isinstance(exc, DataFileError):
            raise
        raise DataFileError(f"{name}: not a valid FASTA file ({exc}).") from None
    frame = pd.DataFrame(rows, columns=["where", "id", "sequence", "label", "split"])
    if require_label and frame["label"].isna().all():
        raise DataFileError(
            f"{name}: no labels found in the FASTA headers. Write the label in each header as "
            "'>P12345 label=1' or '>P12345|1' (a split may follow as 'split=test')."
        )
    return RawTable(frame, name, "fasta", "sequence", "label", _duplicate_ids(frame, name))


def _prepend(line: str, rest: TextIO):
    yield line
    yield from rest


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


def _unquoted(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def _parse_header(header: str) -> tuple[str, str | None, str | None]:
    """Parse '>ID label=1 split=test' or '>ID|1' (also '>ID|1|test')."""
    header = header.strip()
    found = {k.lower(): _unquoted(v) for k, v in _FASTA_KEYVALUE.findall(header)}
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
        return _read_fasta(io.StringIO(text), "pasted text", require_label=False)
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
