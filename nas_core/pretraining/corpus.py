"""An unlabelled protein corpus, read with bounded memory: FASTA (optionally gzipped) streamed
record by record, or a table's sequence column. Residues are kept once, as ESM-2 token ids in
one ``uint8`` array with offsets (42 M residues take 42 MB, not two copies as Python strings);
exact duplicates are dropped; every refusal says what is wrong and what to do."""

from __future__ import annotations

import gzip
import hashlib
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nas_core.backbones.registry import ESM2_VOCAB
from nas_core.data.reading import DataFileError, read_raw

FASTA_SUFFIXES = (".fasta", ".fa", ".faa", ".fas", ".fasta.gz", ".fa.gz", ".faa.gz", ".fas.gz")
AMINO_ACIDS = "LAGVSERTIDPKQNFYMHWC"  # the 20 standard residues, in ESM-2's token order
RESIDUES = AMINO_ACIDS + "XBUZO"
NUCLEOTIDES = frozenset("ACGTUN")
MIN_LENGTH = 10  # shorter records carry next to no context for a masked residue
GZIP_RATIO = 100  # protein FASTA compresses about 3:1; far more is not a protein file
GZIP_CHECKED_AFTER = 64 * 2**20  # decompressed bytes before the ratio is judged
_TABLE = np.full(256, 255, dtype=np.uint8)
for _residue in RESIDUES:
    _TABLE[ord(_residue)] = ESM2_VOCAB.index(_residue)
    _TABLE[ord(_residue.lower())] = ESM2_VOCAB.index(_residue)


_LETTERS = np.array([ord(t) if len(t) == 1 else ord("X") for t in ESM2_VOCAB], dtype=np.uint8)


class CorpusError(ValueError):
    """The file cannot be a pretraining corpus; the message says why and what to do."""


@dataclass
class Corpus:
    """Distinct protein sequences as token ids (``tokens[offsets[i]:offsets[i + 1]]``)."""

    tokens: np.ndarray  # uint8 residue token ids, every sequence one after another
    offsets: np.ndarray  # int64, one more than there are sequences
    ids: list[str]
    source: str
    fingerprint: str  # sha256 over the distinct sequences in file order
    dropped: dict[str, int] = field(default_factory=dict)  # why sequences were left out

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_residues(self) -> int:
        return int(self.offsets[-1])

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def sequence(self, i: int) -> np.ndarray:
        return self.tokens[self.offsets[i]: self.offsets[i + 1]]

    def text(self, i: int) -> str:
        return _LETTERS[self.sequence(i)].tobytes().decode("ascii")

    def subset(self, rows: np.ndarray) -> Corpus:
        """The sequences ``rows`` (in that order), as a corpus of their own."""
        lengths = self.lengths()[rows]
        offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
        tokens = np.concatenate([self.sequence(int(i)) for i in rows]) if len(rows) else \
            np.zeros(0, dtype=np.uint8)
        return Corpus(tokens, offsets, [self.ids[int(i)] for i in rows], self.source,
                      self.fingerprint)

    def residue_counts(self) -> np.ndarray:
        """How often each token id occurs (the unigram model the perplexity is compared to)."""
        return np.bincount(self.tokens, minlength=len(ESM2_VOCAB)).astype(np.int64)


def read_corpus(path: str | Path, *, max_residues: int = 10**9, ignore_labels: bool = False,
                progress: Callable[[str, float], None] | None = None) -> Corpus:
    """Read ``path`` (FASTA, FASTA.gz, CSV, TSV or Excel) into a :class:`Corpus`.

    Refused with the reason: an empty file, nucleotides instead of residues, a labelled table
    (unless ``ignore_labels``: its sequences are then used and the labels ignored), a gzip
    that inflates like no protein file does, more than ``max_residues`` residues."""
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"{path} does not exist: give a FASTA (.fasta, .fa, .faa, "
                          "optionally .gz), CSV, TSV or Excel file of protein sequences.")
    name = path.name.lower()
    if name.endswith(FASTA_SUFFIXES):
        records = _fasta_records(path)
    else:
        records = _table_records(path, ignore_labels)
    builder = _Builder(path.name, max_residues)
    for i, (record_id, sequence) in enumerate(records):
        builder.add(record_id, sequence)
        if progress and i % 20000 == 0:
            progress(f"read {i:,} sequences", 0.0)
    return builder.finish()


def _fasta_records(path: Path) -> Iterator[tuple[str, str]]:
    """(id, sequence) per FASTA record, streamed; a gzip is checked as it inflates."""
    raw: Any = path.open("rb")
    if path.name.lower().endswith(".gz"):
        raw = io.BufferedReader(_GuardedGzip(raw, path.stat().st_size, path.name))
    text = io.TextIOWrapper(raw, encoding="ascii", errors="replace")
    with text:
        header: str | None = None
        pieces: list[str] = []
        first = True
        for line in text:
            line = line.strip()
            if first and line and not line.startswith(">"):
                raise CorpusError(f"{path.name} is named like a FASTA file but does not start "
                                  "with a '>' header line: is it a table? Save it as .csv or "
                                  ".tsv, or add FASTA headers.")
            first = first and not line
            if line.startswith(">"):
                if header is not None:
                    yield header, "".join(pieces)
                header, pieces = line[1:].split(maxsplit=1)[0] if len(line) > 1 else "", []
            elif line:
                pieces.append(line)
        if header is not None:
            yield header, "".join(pieces)


class _GuardedGzip(io.RawIOBase):
    """A gzip stream that gives up when it inflates far beyond what protein text does."""

    def __init__(self, raw, compressed: int, name: str) -> None:
        self._inner = gzip.GzipFile(fileobj=raw)
        self._raw, self._compressed, self._name, self._read = raw, max(compressed, 1), name, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        try:
            n = self._inner.readinto(buffer)
        except (OSError, EOFError) as exc:
            raise CorpusError(f"{self._name} is not a complete gzip file ({exc}): download "
                              "or compress it again.") from None
        self._read += n
        if self._read > GZIP_CHECKED_AFTER and self._read > GZIP_RATIO * self._compressed:
            raise CorpusError(
                f"{self._name} inflates to more than {GZIP_RATIO} times its size "
                f"({self._read / 2**20:,.0f} MB from {self._compressed / 2**20:,.1f} MB so "
                "far): protein FASTA compresses about 3:1, so this is not one. Check the file.")
        return n

    def close(self) -> None:
        self._inner.close()
        self._raw.close()
        super().close()


def _table_records(path: Path, ignore_labels: bool) -> Iterator[tuple[str, str]]:
    try:
        raw = read_raw(path, require_label=False)
    except DataFileError as exc:
        raise CorpusError(str(exc)) from None
    frame = raw.frame
    labelled = frame["label"].notna().any() if "label" in frame else False
    if labelled and not ignore_labels:
        raise CorpusError(
            f"{path.name} has a label column: pretraining learns from sequences alone. Use "
            "its sequences anyway (labels ignored: --ignore-labels), or give an unlabelled "
            "FASTA or a table with only a sequence column.")
    for record_id, sequence in zip(frame["id"], frame["sequence"]):
        yield str(record_id or ""), str(sequence or "")


class _Builder:
    """Collects distinct, valid sequences as token ids in one growing buffer."""

    def __init__(self, source: str, max_residues: int) -> None:
        self.source, self.max_residues = source, max_residues
        self.buffer = bytearray()
        self.offsets = [0]
        self.ids: list[str] = []
        self.seen: set[bytes] = set()
        self.digest = hashlib.sha256()
        self.dropped = {"duplicate": 0, "too short": 0, "unknown characters": 0,
                        "nucleotides": 0}
        self.examples: dict[str, list[str]] = {}

    def add(self, record_id: str, sequence: str) -> None:
        sequence = "".join(sequence.split()).rstrip("*")
        codes = _TABLE[np.frombuffer(sequence.encode("ascii", "replace"), dtype=np.uint8)]
        if len(codes) and set(sequence.upper()) <= NUCLEOTIDES:
            return self._drop("nucleotides", record_id)
        if (codes == 255).any():
            return self._drop("unknown characters", record_id)
        if len(codes) < MIN_LENGTH:
            return self._drop("too short", record_id)
        key = hashlib.blake2b(codes.tobytes(), digest_size=16).digest()
        if key in self.seen:
            return self._drop("duplicate", record_id)
        self.seen.add(key)
        if len(self.buffer) + len(codes) > self.max_residues:
            raise CorpusError(
                f"{self.source} holds more than {self.max_residues:,} residues: split it, or "
                "raise the limit (--max-residues) on a machine with the memory for it.")
        self.buffer += codes.tobytes()
        self.offsets.append(len(self.buffer))
        self.ids.append(record_id or f"record {len(self.ids) + 1}")
        self.digest.update(codes.tobytes())
        self.digest.update(b"\n")

    def _drop(self, why: str, record_id: str) -> None:
        self.dropped[why] += 1
        self.examples.setdefault(why, [])
        if len(self.examples[why]) < 3:
            self.examples[why].append(record_id or "(no id)")

    def finish(self) -> Corpus:
        kept = len(self.ids)
        if not kept:
            raise CorpusError(self._empty_message())
        nucleotides = self.dropped["nucleotides"]
        if nucleotides > kept:
            raise CorpusError(
                f"{self.source}: {nucleotides:,} of {nucleotides + kept:,} sequences are DNA or "
                f"RNA (only A, C, G, T, U, N; e.g. {', '.join(self.examples['nucleotides'])}). "
                "Pretraining needs protein sequences: translate them first.")
        return Corpus(np.frombuffer(bytes(self.buffer), dtype=np.uint8),
                      np.asarray(self.offsets, dtype=np.int64), self.ids, self.source,
                      self.digest.hexdigest(), {k: v for k, v in self.dropped.items() if v})

    def _empty_message(self) -> str:
        reasons = [f"{n:,} {why} (e.g. {', '.join(self.examples[why])})"
                   for why, n in self.dropped.items() if n]
        if not reasons:
            return (f"{self.source} holds no sequences: give a FASTA or a table with a "
                    "sequence column.")
        if self.dropped["nucleotides"] and not any(
                self.dropped[w] for w in ("unknown characters", "too short")):
            return (f"{self.source} holds DNA or RNA, not protein: translate the sequences "
                    "first.")
        return (f"{self.source}: no usable protein sequence; left out: " + "; ".join(reasons)
                + f". Sequences need the amino-acid letters ({RESIDUES}) and at least "
                f"{MIN_LENGTH} residues.")
