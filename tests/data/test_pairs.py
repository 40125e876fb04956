"""Protein pairs: both layouts read, every pair problem named with its row and fix, and
splits that say which proteins the test shares with training (asserted, not assumed)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from nas_core.common.tasks import Task
from nas_core.data import homology
from nas_core.data.options import IngestOptions, SplitOptions
from nas_core.data.pair_splits import proteins_of
from nas_core.data.store import DatasetStore, import_dataset, load_stored
from nas_core.data.validation import load_dataset, load_pairs
from tests.helpers import pair_subset

A = "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILSRVGDGTQDNLSGAEKAVQVKVKALPDAQFEVVHSLAKWKRQTLGQ"
B = "MSEALKILNNIRTLRAQARECTLETLEEMLEKLEVVVNERREEESAAAAEVEERTRKLQQYREMLIADGIDPNELLNSLAAV"
C = "MAKGIREKIKLVSSAGTGHFYTTTKNKRTKPEKLELKKFDPVVRQHVIYKEAKIKGGSWDDELRRQIEEAL"
D = "MKKDIHPKYEEITASCSCGNVMKIRSTVGHDLNLDVCSKCHPFFTGKQRDVATGGRVDRFNKRFNIPGSKPLTE"


def messages(result) -> str:
    return "\n".join(p.message for p in result.problems)


@pytest.fixture(scope="module")
def subset(tmp_path_factory):
    return pair_subset(tmp_path_factory.mktemp("pairs"))


def test_a_table_with_two_sequence_columns_is_a_pair_dataset(tmp_path):
    rows = ["id_1,id_2,sequence_1,sequence_2,label"]
    pairs = [(A, B), (A, C), (B, D), (C, D), (A, D), (B, C)]
    for k in range(6):
        for i, (x, y) in enumerate(pairs):
            rows.append(f"p{k}{i},q{k}{i},{x[:60 - k]},{y[: 60 - i]},{(i + k) % 2}")
    path = tmp_path / "pairs.csv"
    path.write_text("\n".join(rows) + "\n")
    result = load_dataset(path)
    assert result.ok, messages(result)
    dataset = result.dataset
    assert dataset.task is Task.PAIR_BINARY and dataset.pairs
    assert list(dataset.frame.columns[:5]) == ["id", "id_2", "sequence_2", "sequence", "label"] \
        or {"id", "id_2", "sequence", "sequence_2", "label"} <= set(dataset.frame.columns)
    assert dataset.frame["id_2"].iloc[0] == "q00"
    summary = dataset.summary()
    assert summary.n_sequences == 36 and summary.n_proteins == len(
        set(dataset.frame["sequence"]) | set(dataset.frame["sequence_2"]))
    # an affinity per pair: pair regression
    path.write_text("\n".join(rows[:1] + [r.rsplit(",", 1)[0] + f",{0.5 * i:.2f}"
                                            for i, r in enumerate(rows[1:])]) + "\n")
    assert load_dataset(path).dataset.task is Task.PAIR_REGRESSION


def test_the_pairs_file_and_fasta_layout_reads_with_or_without_a_header(subset, tmp_path):
    pairs, proteins = subset
    result = load_pairs(pairs, proteins)
    assert result.dataset is not None or result.errors, messages(result)
    frame = (result.dataset.frame if result.dataset is not None else None)
    headed = tmp_path / "headed.csv"
    lines = pairs.read_text().splitlines()
    headed.write_text("protein_1,protein_2,label\n" + "\n".join(
        line.replace("\t", ",") for line in lines) + "\n")
    again = load_pairs(headed, proteins)
    assert [p.code for p in again.problems] == [p.code for p in result.problems]
    if frame is not None:
        assert again.dataset.frame["id"].tolist() == frame["id"].tolist()
    assert {p.code for p in result.problems} >= {"duplicates_dropped"}  # the real file's


def test_each_pair_problem_is_named_with_its_row_and_fix(tmp_path):
    proteins = tmp_path / "proteins.fasta"
    proteins.write_text(f">a\n{A}\n>b\n{B}\n>c\n{C}\n>d\n{D}\n")
    rows = ["a\tb\t1", "a\tzz9\t0",  # row 2: zz9 is not in the FASTA
            "c\td\t0", "c\td\t1",  # the same pair, two labels
            "b\ta\t1",  # B-A beside A-B, same label: dropped, symmetric
            "a\tc\t0", "c\ta\t1",  # A-C and C-A with different labels
            "d\td\t0"]  # a protein with itself
    path = tmp_path / "pairs.tsv"
    path.write_text("\n".join(rows) + "\n")
    result = load_pairs(path, proteins)
    text = messages(result)
    assert "row 2: protein 'zz9' is not in proteins.fasta" in text
    assert result.offered_fixes["drop_missing_proteins"]
    assert "row 3, row 4: the identical pair" in text and "conflicting labels 0, 1" in text
    assert "row 6, row 7: the same two proteins are listed as A-B and as B-A" in text
    assert "listed a second time as B-A with the same label; the task is symmetric" in text
    assert "row 8" in text and "a protein with itself" in text
    fixed = load_pairs(path, proteins, IngestOptions(
        fixes=frozenset({"drop_missing_proteins", "drop_conflicts"}), min_class_size=1))
    assert fixed.dataset is not None, messages(fixed)
    kept = fixed.dataset.frame
    assert sorted(kept["where"]) == ["row 1", "row 8"]


def test_extreme_imbalance_is_said_with_the_metric_that_survives_it(subset):
    result = load_pairs(*subset)
    rare = next(p for p in result.problems if p.code == "imbalanced_pairs")
    assert re.search(r"of [\d,]+ pairs \(\d\d%\)", rare.message)
    assert "average precision" in rare.message
    assert Task.PAIR_BINARY.default_metric == "average_precision"


def _split(subset, kind: str, method: str = "homology"):
    outcome = import_dataset(subset[0], proteins=subset[1], options=IngestOptions(
        fixes=frozenset({"drop_conflicts"})), split_options=SplitOptions(pairs=kind,
                                                                      method=method))
    assert outcome.ok, messages(outcome.result)
    return outcome


def test_both_unseen_keeps_every_test_protein_and_its_homologs_out_of_training(subset):
    outcome = _split(subset, "both_unseen")
    dataset = outcome.dataset
    assert dataset.pair_split == "both_unseen"
    train, test = dataset.part("train"), dataset.part("test")
    train_proteins, _ = proteins_of(train)
    test_proteins, _ = proteins_of(test)
    assert not set(train_proteins) & set(test_proteins)
    identity = homology.default_identity(train_proteins + test_proteins)
    nearest = homology.nearest_identity(test_proteins, train_proteins)
    assert nearest.max() < identity  # no homolog above the threshold either
    assert (test[["nearest_train_identity", "nearest_train_identity_2"]] < identity).all().all()
    note = next(n for n in outcome.notes if n.code == "pair_split")
    assert "Both partners unseen" in note.message and "were dropped" in note.message


def test_one_unseen_and_random_splits_say_what_they_share(subset):
    one = _split(subset, "one_unseen").dataset
    test = one.part("test")
    seen = (test[["nearest_train_identity", "nearest_train_identity_2"]] >= 1.0).sum(axis=1)
    # one training protein and one new one (or two new ones, where the training-side
    # protein lost all its training pairs to the split), never two seen ones
    assert (seen <= 1).all() and (seen == 1).mean() > 0.5
    random = _split(subset, "random")
    assert random.dataset.pair_split == "random"
    assert any(n.code == "random_pair_split" for n in random.notes)
    shared = random.dataset.part("test")[["nearest_train_identity",
                                          "nearest_train_identity_2"]]
    assert (shared >= 1.0).to_numpy().mean() > 0.3  # the leak a random split hides


def test_a_stored_pair_dataset_reads_back_the_same(subset, tmp_path):
    dataset = _split(subset, "both_unseen").dataset
    record = DatasetStore(tmp_path).save(dataset, source="pairs.tsv")
    back = load_stored(record)
    assert back.pair_split == "both_unseen" and back.task is Task.PAIR_BINARY
    assert back.fingerprint == dataset.fingerprint
    assert back.summary().pair_split == "both_unseen"
    assert np.allclose(back.part("test")["nearest_train_identity_2"],
                       dataset.part("test")["nearest_train_identity_2"])
