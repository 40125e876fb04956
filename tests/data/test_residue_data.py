"""Per-residue labels: the FLIP / biotrainer layout, label strings and value lists in tables,
and every problem a user can run into, with the row or ID and what to do."""

from __future__ import annotations

import numpy as np
import pytest

from nas_core.data.dataset import IGNORE_INDEX
from nas_core.data.flip import read_flip, sort_uploads
from nas_core.data.options import IngestOptions, SplitOptions
from nas_core.data.reading import DataFileError, read_bytes
from nas_core.data.splits import assign_splits
from nas_core.data.store import DatasetStore, import_dataset
from nas_core.data.validation import load_flip, validate
from tests.helpers import SS


def _fasta(records: dict[str, str], headers: dict[str, str] | None = None) -> bytes:
    return "".join(f">{i}{(' ' + headers[i]) if headers and i in headers else ''}\n{s}\n"
                   for i, s in records.items()).encode()


def _errors(result) -> list[str]:
    return [p.message for p in result.errors]


def test_the_shipped_flip_files_become_a_per_residue_dataset():
    result = load_flip(SS / "sequences.fasta", SS / "labels.fasta", SS / "mask.fasta")
    assert result.ok, result.problems
    dataset = result.dataset
    assert dataset.task == "residue_classification" and dataset.label_names == ["C", "E", "H"]
    assert dataset.summary().splits == {"train": 360, "valid": 40, "test": 100}
    first = dataset.frame.iloc[0]
    mask = (SS / "mask.fasta").read_text().split("\n")[1]
    label = (SS / "labels.fasta").read_text().split("\n")[1]
    assert len(first["label"]) == len(first["sequence"]) == len(mask)
    # a residue whose mask is 0 is unlabelled, the others keep their class
    assert all((c == "-") == (m == "0") for c, m in zip(first["label"], mask))
    assert all(c == raw for c, raw, m in zip(first["label"], label, mask) if m == "1")
    targets = dataset.label_index(dataset.frame["label"].iloc[:1])[0]
    assert targets.dtype == np.int64 and (targets == IGNORE_INDEX).sum() == mask.count("0")


def test_label_strings_in_a_table_and_every_row_problem():
    csv = (b"id,sequence,label\n"
           b"a,MKVLAAGIW,HHHEEECCC\n"
           b"b,MKVLAA,HHHEEECCC\n"
           b"c,MKVLAAGIWK,HHHE?ECCC-\n"
           b"d,MKVLAAGIWKK,-----------\n"
           b"e,MKVLAAGIWKKP,HHHEE-CCCCCC\n")
    result = validate(read_bytes(csv, "ss.csv"))
    errors = _errors(result)
    assert any(e.startswith("row 3: the label has 9 characters but the sequence has 6 "
                            "residues (3 too many)") for e in errors), errors
    assert any(e.startswith("row 4:") and "'?'" in e and "not classes" in e for e in errors)
    assert any(e.startswith("row 5: no residue of this protein has a label") for e in errors)
    assert result.offered_fixes == {
        "drop_unlabelled": "Drop the rows with a missing or unusable label (3 rows)"}
    fixed = validate(read_bytes(csv, "ss.csv"),
                     IngestOptions(fixes=frozenset({"drop_unlabelled"}), min_class_size=1))
    assert fixed.ok and fixed.dataset.task == "residue_classification"
    assert list(fixed.dataset.frame["id"]) == ["a", "e"]


def test_per_residue_values_and_their_problems():
    csv = (b"id,sequence,label\n"
           b'a,MKVLA,"0.1 0.2 nan 0.3 1"\n'
           b'b,MKVLAA,"0.1,0.2,0.5,0.3,1,2"\n'
           b'c,MKVLAAG,"0.1 0.2 nan 0.3 1"\n'
           b'd,MKVLAAGI,"0.1 0.2 nan 0.3 1 2 x 4"\n')
    result = validate(read_bytes(csv, "disorder.csv"))
    errors = _errors(result)
    assert "row 4: the label has 5 numbers but the sequence has 7 residues (2 too few)" in \
        errors[0]
    assert errors[1].startswith("row 5: 1 per-residue value(s) are not numbers ('x')")
    ok = validate(read_bytes(csv, "disorder.csv"),
                  IngestOptions(fixes=frozenset({"drop_unlabelled"})))
    assert ok.ok and ok.dataset.task == "residue_regression"
    values = ok.dataset.label_index(ok.dataset.frame["label"])
    np.testing.assert_allclose(values[1], [0.1, 0.2, 0.5, 0.3, 1, 2])
    assert np.isnan(values[0][2])
    assert ok.dataset.summary().n_labelled_residues == 10


def test_a_class_too_rare_for_every_split_is_named_and_can_be_masked():
    rng = np.random.default_rng(0)
    rows = [f"p{i},{''.join(rng.choice(list('ACDEFGHIKLMNPQRSTVWY'), 10))},"
            f"{'H' * (i + 1)}{'E' * (9 - i)}" for i in range(8)]
    rows.append("q,MKVLAAGIWK,HHHHHEEEBB")
    csv = ("id,sequence,label\n" + "\n".join(rows) + "\n").encode()
    result = validate(read_bytes(csv, "x.csv"))
    (error,) = result.errors
    assert error.code == "rare_class" and "Residue class 'B' occurs in only 1 protein(s) " \
        "(row 10)" in error.message and "mark its residues as unlabelled" in error.message
    fixed = validate(read_bytes(csv, "x.csv"),
                     IngestOptions(fixes=frozenset({"drop_rare_classes"})))
    assert fixed.ok and fixed.dataset.label_names == ["E", "H"]
    assert fixed.dataset.frame["label"].iloc[-1] == "HHHHHEEE--"


def test_mismatched_ids_and_masks_between_the_files():
    seqs = _fasta({"a": "MKVLAAGIW", "b": "MKVLAA", "c": "MKVLAAGIWK"})
    labels = _fasta({"a": "HHHEEECCC", "c": "HHHEEECCCE", "z": "HHH"},
                    {"a": "SET=train VALIDATION=False", "c": "SET=test", "z": "SET=train"})
    mask = _fasta({"a": "111111000", "c": "11111"})
    result = load_flip(("seqs.fasta", seqs), ("labels.fasta", labels), ("mask.fasta", mask))
    messages = [str(p) for p in result.problems]
    assert any("labels.fasta: 1 label record(s) have no sequence with the same ID in "
               "seqs.fasta and are ignored: z" in m for m in messages), messages
    assert any("seqs.fasta: 1 sequence(s) have no label record with the same ID in "
               "labels.fasta: b" in m for m in messages)
    assert any("record 3 (>c): the mask in mask.fasta has 5 characters for 10 residues" in m
               for m in messages)
    assert {p.where[0] for p in result.errors if p.code == "missing_label"} == {
        "record 2 (>b)", "record 3 (>c)"}


def test_uploaded_files_are_told_apart_and_a_wrong_set_is_refused():
    seqs = _fasta({"a": "MKVLAAGIW"})
    labels = _fasta({"a": "HHHEEECCC"}, {"a": "SET=train VALIDATION=True"})
    mask = _fasta({"a": "111111000"})
    s, lab, m = sort_uploads([("m.fa", mask), ("l.fa", labels), ("s.fa", seqs)])
    assert (s[0], lab[0], m and m[0]) == ("s.fa", "l.fa", "m.fa")
    with pytest.raises(DataFileError, match="which file holds the labels"):
        sort_uploads([("s.fa", seqs), ("t.fa", seqs)])
    with pytest.raises(DataFileError, match="2 or 3 FASTA files"):
        sort_uploads([("s.fa", seqs)])


def test_proteins_never_straddle_splits_and_the_store_keeps_them(tmp_path):
    result = load_flip(SS / "sequences.fasta", SS / "labels.fasta", SS / "mask.fasta")
    frame = result.dataset.frame.head(120).assign(split=None)
    dataset = type(result.dataset)(frame, result.dataset.task, result.dataset.label_names)
    split, _ = assign_splits(dataset, SplitOptions(method="random"))
    assert split.frame["split"].notna().all()
    assert (split.frame["label"].str.len() == split.frame["sequence"].str.len()).all()
    stored = DatasetStore(tmp_path).save(split, source="ss")
    again = DatasetStore(tmp_path).load(stored.id)
    assert again.task == "residue_classification"
    assert list(again.frame["label"]) == list(split.frame["label"])


def test_import_dataset_reads_the_flip_layout_as_uploads(tmp_path):
    files = [(name, (SS / name).read_bytes()) for name in
             ("labels.fasta", "sequences.fasta", "mask.fasta")]
    outcome = import_dataset(files, store=DatasetStore(tmp_path))
    assert outcome.ok and outcome.stored is not None
    assert outcome.dataset.task == "residue_classification"
    assert outcome.stored.name == "sequences"


def test_short_peptides_with_numbers_stay_one_label_per_sequence():
    """Tripeptides measured as '1.5' or '100': three characters for three residues, but a
    measurement, not three residue classes."""
    rng = np.random.default_rng(1)
    rows = [f"{''.join(rng.choice(list('ACDEFGHIKLMNPQRSTVWY'), 3))},{rng.uniform(0, 9):.1f}"
            for _ in range(40)]
    result = validate(read_bytes(("sequence,label\n" + "\n".join(rows) + "\n").encode(),
                                 "bitter.csv"), IngestOptions(fixes=frozenset({
                                     "drop_conflicts"})))
    assert result.dataset is not None and result.dataset.task == "regression"


def test_per_residue_values_that_never_change_are_refused():
    rng = np.random.default_rng(2)
    rows = []
    for _ in range(12):
        seq = "".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), 8))
        rows.append(f'{seq},"{" ".join(["1.0"] * 8)}"')
    result = validate(read_bytes(("sequence,label\n" + "\n".join(rows) + "\n").encode(),
                                 "flat.csv"), IngestOptions(task="residue_regression"))
    (error,) = result.errors
    assert error.code == "constant_label" and "Every residue has the same value" in \
        error.message


def test_a_label_id_repeated_with_other_labels_is_a_conflict_not_a_guess():
    """Two label records of one protein that disagree are refused with the conflict fixes
    (they were once settled by file order; issue 30, item 8); repeated with the same label,
    the protein is used once."""
    seqs = _fasta({"a": "MKVLAAGIW", "b": "MKVLAAGIR"})
    labels = (b">a SET=train\nHHHEEECCC\n>a SET=train\nCCCCCCCCC\n"
              b">b SET=train\nHHHHHHCCC\n>b SET=train\nHHHHHHCCC\n")
    raw = read_flip(("s.fasta", seqs), ("l.fasta", labels))
    assert raw.frame["label"].tolist() == ["HHHEEECCC", "CCCCCCCCC", "HHHHHHCCC"]
    assert any("more than once with the same label (b)" in p.message for p in raw.problems)
    result = validate(raw, IngestOptions(min_class_size=1))
    assert not result.ok and "conflicting_labels" in {p.code for p in result.errors}
    assert "drop_conflicts" in result.offered_fixes
    fixed = validate(raw, IngestOptions(min_class_size=1, fixes=frozenset({"drop_conflicts"})))
    assert fixed.ok and fixed.dataset is not None
    assert fixed.dataset.frame["id"].tolist() == ["b"]


def binding_sites(n: int = 60, seed: int = 3) -> list[tuple[str, str]]:
    """Proteins with FLIP binding-site style labels: digit classes, most residues '0'."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        length = int(rng.integers(40, 90))
        seq = "".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), length))
        label = "".join(rng.choice(list("0004"), length))
        rows.append((seq, "0" + label[1:]))  # every label starts with a leading zero
    return rows


@pytest.mark.parametrize("layout", ["table", "flip"])
def test_digit_class_strings_round_trip_through_the_store(tmp_path, layout):
    """Per-residue labels such as '0000400' (FLIP's binding sites) are text: stored and read
    back, they keep their leading zeros and still match their sequences (they once came back
    as numbers, so the stored dataset could not be searched)."""
    rows = binding_sites()
    if layout == "table":
        table = "sequence,label\n" + "".join(f"{s},{lab}\n" for s, lab in rows)
        files: list[tuple[str, bytes]] | bytes = table.encode()
        outcome = import_dataset(files, name="sites.csv", store=DatasetStore(tmp_path))
    else:
        seqs = "".join(f">p{i}\n{s}\n" for i, (s, _) in enumerate(rows))
        labels = "".join(f">p{i} SET={'test' if i % 5 == 0 else 'train'}\n{lab}\n"
                         for i, (_, lab) in enumerate(rows))
        outcome = import_dataset([("sequences.fasta", seqs.encode()),
                                  ("labels.fasta", labels.encode())],
                                 store=DatasetStore(tmp_path))
    assert outcome.ok and outcome.stored is not None, outcome.result.problems
    assert outcome.dataset.task == "residue_classification"
    again = DatasetStore(tmp_path).load(outcome.stored.id)  # checks the fingerprint too
    assert list(again.frame["label"]) == list(outcome.dataset.frame["label"])
    assert all(lab.startswith("0") for lab in again.frame["label"])
    assert (again.frame["label"].str.len() == again.frame["sequence"].str.len()).all()


def test_class_codes_that_look_like_numbers_stay_codes(tmp_path):
    rng = np.random.default_rng(0)
    codes = ["007", "010", "100"]
    table = "sequence,label\n" + "".join(
        f"{''.join(rng.choice(list('ACDEFGHIKLMNPQRSTVWY'), 30))},{codes[i % 3]}\n"
        for i in range(90))
    outcome = import_dataset(table.encode(), name="codes.csv", store=DatasetStore(tmp_path))
    assert outcome.ok and outcome.stored is not None, outcome.result.problems
    assert sorted(outcome.dataset.label_names or []) == codes
    again = DatasetStore(tmp_path).load(outcome.stored.id)
    assert sorted(set(again.frame["label"])) == codes


def test_a_stray_character_among_digit_classes_is_flagged_as_a_typing_error():
    """An N typed among 0/1/2/4 in six proteins (six residues of 15,000) passed the rare-class
    rule (it is in five proteins or more) and became a class; now it is an error naming it,
    with the fix that marks those residues unlabelled."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(300):
        label = list("".join(rng.choice(list("0124"), 50)))
        if i % 50 == 7:
            label[10] = "N"
        rows.append(f"p{i},{''.join(rng.choice(list('ACDEFGHIKLMNPQRSTVWY'), 50))},"
                    f"{''.join(label)}")
    csv = ("id,sequence,label\n" + "\n".join(rows) + "\n").encode()
    result = validate(read_bytes(csv, "sites.csv"))
    (error,) = result.errors
    assert error.code == "typo_class" and error.fix == "drop_rare_classes"
    assert "Residue class 'N' labels only 6 of 15,000 residues" in error.message
    assert "a typing error?" in error.message and len(error.where) == 6
    fixed = validate(read_bytes(csv, "sites.csv"),
                     IngestOptions(fixes=frozenset({"drop_rare_classes"})))
    assert fixed.ok and fixed.dataset.label_names == ["0", "1", "2", "4"]
    assert sum(t.count("-") for t in fixed.dataset.frame["label"]) == 6
