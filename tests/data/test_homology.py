"""Homology-aware splits, nearest-training identity, confidence intervals, novelty flags and
conformal uncertainty, on real sequences from the shipped data."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import parasail
import pytest

from nas_core.data import homology
from nas_core.data.options import IngestOptions, SplitOptions
from nas_core.data.splits import assign_splits
from nas_core.data.validation import load_dataset
from tests.helpers import ASSETS, ROOT, mutate

AMINO = "ACDEFGHIKLMNPQRSTVWY"


def uniprot_dataset():
    options = IngestOptions(fixes=frozenset({"drop_conflicts"}))
    return load_dataset(ASSETS / "amp_vs_uniprot.csv", options).dataset


@pytest.mark.slow
def test_no_cluster_spans_two_splits_on_real_homologs():
    dataset = uniprot_dataset()  # antimicrobial peptides with many near-identical variants
    out, notes = assign_splits(dataset, SplitOptions(method="homology", seed=1))
    assert notes[0].code == "homology_split" and "50% identity" in notes[0].message
    frame = out.frame
    hits = homology.all_hits(list(frame["sequence"]))
    labels = homology.clusters(len(frame), hits, 0.5)
    spans = pd.DataFrame({"cluster": labels, "split": frame["split"].to_numpy()}).groupby(
        "cluster")["split"].nunique()
    assert (spans == 1).all()
    assert np.bincount(labels).max() > 50  # real families, not only singletons
    held_out = frame[frame["split"] != "train"]["nearest_train_identity"]
    assert held_out.max() < 0.5  # nothing at or above the threshold crosses the line
    for split, share in (("test", 0.1), ("valid", 0.1)):
        assert abs((frame["split"] == split).mean() - share) < 0.02
        positive = (out.part(split)["label"] == out.label_names[0]).mean()
        assert abs(positive - (frame["label"] == out.label_names[0]).mean()) < 0.05
    # the random split of the same data leaks: many test peptides are near-copies
    leaky, notes = assign_splits(dataset, SplitOptions(method="random", seed=1))
    assert (leaky.part("test")["nearest_train_identity"] >= 0.9).mean() > 0.2
    assert notes[-1].code == "test_near_duplicates"


def direct_identity(a: str, b: str) -> float:
    """Smith-Waterman (BLOSUM62, gap 11/1, as MMseqs2 scores) with traceback by parasail:
    identical residues over the longer length."""
    result = parasail.sw_trace_striped_32(a, b, 11, 1, parasail.blosum62)
    cigar = result.traceback
    same = sum(x == y for x, y in zip(cigar.query, cigar.ref) if x != "-" and y != "-")
    return same / max(len(a), len(b))


def test_nearest_identity_matches_a_direct_computation():
    frame = load_dataset(ASSETS / "amp_vs_transmembrane.csv").dataset.frame
    frame = frame[frame["sequence"].str.len() >= 20].reset_index(drop=True)
    train = list(frame["sequence"][:40])
    rng = np.random.default_rng(0)
    queries = [mutate(train[0], [3]), mutate(train[5], [2, 9, 15]), train[7][:-4],
               mutate(train[11], list(range(0, len(train[11]), 3))),
               *frame["sequence"][40:52],
               "".join(rng.choice(list(AMINO), 200))]
    fast = homology.nearest_identity(queries, train)
    direct = np.array([max(direct_identity(q, t) for t in train) for q in queries])
    assert fast[0] == pytest.approx((len(train[0]) - 1) / len(train[0]))
    assert fast[2] == pytest.approx((len(train[7]) - 4) / len(train[7]))  # a fragment
    related = direct >= 0.5
    assert related.sum() >= 4
    assert np.abs(fast[related] - direct[related]).max() <= 0.05
    assert fast[-1] < 0.3 and direct[-1] < 0.3  # unrelated


def test_a_family_of_variants_cannot_be_split_by_homology_and_says_so():
    dataset = load_dataset(ASSETS / "gfp_fluorescence.csv").dataset
    dataset.frame = dataset.frame.iloc[:150].reset_index(drop=True)
    dataset.frame["split"] = None
    out, notes = assign_splits(dataset, SplitOptions(method="homology"))
    codes = [n.code for n in notes]
    assert codes[:2] == ["homology_impossible", "random_split"]
    assert "variants of one protein" in notes[0].message
    assert "test_near_duplicates" in codes  # and the leakage is reported, not hidden


@pytest.mark.slow
def test_split_command_writes_split_and_identity(tmp_path):
    out = tmp_path / "split.csv"
    done = subprocess.run([sys.executable, "-m", "nas_core", "split",
                           str(ASSETS / "amp_vs_transmembrane.csv"), "--method", "homology",
                           "--out", str(out)], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "aligning 412 sequences all against all (MMseqs2)" in done.stderr  # progress
    frame = pd.read_csv(out)
    assert {"split", "nearest_train_identity"} <= set(frame.columns)
    assert frame.loc[frame["split"] == "test", "nearest_train_identity"].max() < 0.5
    assert frame.loc[frame["split"] == "train", "nearest_train_identity"].isna().all()
    done = subprocess.run([sys.executable, "-m", "nas_core", "split",
                           str(ASSETS / "amp_vs_transmembrane.csv"), "--split", "column",
                           "--out", str(out)], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2 and "needs a 'split' column" in done.stdout
