"""Validation: a corpus of bad files, each with its specific, actionable message."""

from __future__ import annotations

import io
import random

import pandas as pd
import pytest

from nas_core.data.options import IngestOptions, parse_class_names
from nas_core.data.reading import DataFileError
from nas_core.data.validation import infer_task, load_dataset
from tests.helpers import ASSETS

GOOD = ["MKVLAAGIVALLLAAGCSS", "GLFDIIKKIAESF", "KWKLFKKIEKVGQNIRDG", "FLPLIGRVLSGIL",
        "ACDEFGHIKLMNPQRSTVWY", "GIGKFLHSAKKFGKAFVGEIMNS", "ILPWKWPWWPWRR", "RRWQWRMKKLG"]


def _rows(n: int = 12, labels=("a", "b")) -> list[tuple[str, str]]:
    return [(GOOD[i % len(GOOD)] + "A" * (i // len(GOOD)), labels[i % len(labels)])
            for i in range(n)]


def _csv(rows, header="sequence,label") -> bytes:
    return (header + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n").encode()


def _xlsx_bytes() -> bytes:
    buf = io.BytesIO()
    pd.DataFrame(_rows(12), columns=["sequence", "label"]).to_excel(buf, index=False)
    return buf.getvalue()


# (file name, content, options, expected fragment of the message, where it must point)
FILE_ERRORS = [
    ("empty.csv", b"", {}, "the file is empty"),
    ("blank.csv", b"\n\n  \n", {}, "the file is empty"),
    ("junk.csv", random.Random(1).randbytes(2000), {},
     "binary file"),
    ("latin1.csv", "sequence,label\nMKV,prot\u00e9ine\n".encode("latin-1"), {}, "not UTF-8"),
    ("noseq.csv", b"name,label\nx,1\ny,0\n", {}, "no sequence column found"),
    ("nolabel.csv", b"sequence,organism,ph\nMKV,human,7\nMKA,mouse,6\n", {},
     "no label column found"),
    ("header_only.csv", b"sequence,label\n", {}, "header but no rows"),
    ("ragged.csv", b"sequence,label\nMKV,1\nMKA,0,extra,more\n", {}, "could not read the table"),
    ("labels.fasta", b">p1\nMKV\n>p2\nMKA\n", {}, "no labels found in the FASTA headers"),
    ("noheader.fasta", b"MKVLLA\nGGHT\n", {}, "must start with a '>'"),
    ("broken.xlsx", b"PK\x03\x04 this is not really a workbook", {},
     "not a readable Excel workbook"),
    ("old.xls", b"\xd0\xcf\x11\xe0 old excel", {}, "Excel 97 (.xls)"),
    ("bad.csv.gz", b"not gzip at all", {}, "not a valid gzip file"),
    ("report.pdf", b"%PDF-1.4 ...", {}, "unsupported file type '.pdf'"),
    ("cols.csv", _csv(_rows()), {"seq_col": "aa_sequence"}, "no column 'aa_sequence'"),
]

ROW_ERRORS = [
    ("invalid_chars.csv", _csv(_rows() + [("MKV1#Z", "a")]), {}, "invalid character(s) '#', '1'",
     "row 14", "drop_invalid"),
    ("empty_seq.csv", _csv(_rows() + [("", "a")]), {}, "the sequence is empty", "row 14",
     "drop_empty"),
    ("missing_label.csv", _csv(_rows() + [("MKVAAAW", "")]), {}, "the label is missing",
     "row 14", "drop_unlabelled"),
    ("text_label.csv", _csv([(s, 1.5 + i) for i, (s, _) in enumerate(_rows())] +
                            [("MKVAAAW", "high")]), {"task": "regression"},
     "'high' is not a number", "row 14", "drop_unlabelled"),
    ("nan_label.csv", _csv([(s, 1.5 + i) for i, (s, _) in enumerate(_rows())] +
                           [("MKVAAAW", "nan")]), {"task": "regression"},
     "the label is missing ('nan' means no value)", "row 14", "drop_unlabelled"),
    ("inf_label.csv", _csv([(s, 1.5 + i) for i, (s, _) in enumerate(_rows())] +
                           [("MKVAAAW", "inf")]), {"task": "regression"},
     "not a finite number", "row 14", "drop_unlabelled"),
    ("single_class.csv", _csv(_rows(labels=("a",))), {}, "at least two classes", None, None),
    ("rare_class.csv", _csv(_rows(12) + [("MKVAAAW", "c"), ("MKVAAAY", "c")]), {},
     "Class 'c' has only 2 example(s)", "row 14", "drop_rare_classes"),
    ("conflict.csv", _csv(_rows() + [(GOOD[0], "b")]), {}, "has conflicting labels a, b",
     "row 14", "drop_conflicts"),
    ("bad_split.csv", _csv([(s, lab, "train") for s, lab in _rows()] + [("MKVAAAW", "a", "foo")],
                           header="sequence,label,split"), {},
     "split value 'foo' is not one of train, valid, test", "row 14", "drop_bad_split"),
    ("constant.csv", _csv([(s, 2.0) for s, _ in _rows()]), {"task": "regression"},
     "same value", None, None),
    ("three_classes.csv", _csv(_rows(15, labels=("a", "b", "c"))), {"task": "binary"},
     "labels have 3 classes", None, None),
    ("bad_record.fasta", b">p1 label=1\nMKV\n>p2 label=0\nMK2V\n" + b"".join(
        f">q{i} label={i % 2}\nMKVAAA{'W' * i}\n".encode() for i in range(10)), {},
     "record 2 (>p2): invalid character(s) '2'", "record 2 (>p2)", "drop_invalid"),
]


@pytest.mark.parametrize("name,content,opts,message", FILE_ERRORS,
                         ids=[c[0] for c in FILE_ERRORS])
def test_unusable_file_gets_a_specific_message(tmp_path, name, content, opts, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataFileError) as info:
        load_dataset(path, IngestOptions(**opts))
    assert message in str(info.value)
    assert name in str(info.value)


@pytest.mark.parametrize("name,content,opts,message,where,fix", ROW_ERRORS,
                         ids=[c[0] for c in ROW_ERRORS])
def test_row_problem_names_row_problem_and_fix(tmp_path, name, content, opts, message, where,
                                              fix):
    path = tmp_path / name
    path.write_bytes(content)
    result = load_dataset(path, IngestOptions(**opts))
    assert not result.ok and result.dataset is None
    hits = [p for p in result.errors if message in p.message]
    assert hits, [p.message for p in result.errors]
    if where:
        assert any(where in p.where for p in hits)
    if fix:
        assert fix in result.offered_fixes
        fixed = load_dataset(path, IngestOptions(**opts, fixes=frozenset({fix})))
        assert fixed.ok, fixed.problems
        assert fixed.applied_fixes


def test_corpus_is_large_enough():
    assert len(FILE_ERRORS) + len(ROW_ERRORS) >= 20


def test_real_conflicts_are_found_and_fixed_in_one_step():
    result = load_dataset(ASSETS / "amp_vs_uniprot.csv")
    conflicts = [p for p in result.errors if p.code == "conflicting_labels"]
    assert len(conflicts) == 22
    assert result.offered_fixes == {
        "drop_conflicts": "Drop the 22 conflicting sequences (47 rows)"}
    fixed = load_dataset(ASSETS / "amp_vs_uniprot.csv",
                         IngestOptions(fixes=frozenset({"drop_conflicts"})))
    assert fixed.ok
    frame = fixed.dataset.frame
    assert frame["sequence"].is_unique
    conflicted = {p.message.split("sequence ")[1].split(" has")[0] for p in conflicts}
    assert not any(s in conflicted for s in frame["sequence"])
    dup = [p for p in fixed.warnings if p.code == "duplicates_dropped"]
    assert dup and "first copy is kept" in dup[0].message


def test_long_sequences_are_truncated_with_a_warning(tmp_path):
    rows = _rows(10) + [("M" + "A" * 1500, "a")]  # row 12 of the file
    path = tmp_path / "long.csv"
    path.write_bytes(_csv(rows))
    result = load_dataset(path)
    assert result.ok
    assert result.dataset.frame["sequence"].str.len().max() == 1022
    assert any(p.code == "truncated" and "row 12" in p.where for p in result.warnings)


def test_task_inference():
    assert infer_task(["0", "1", "1"]) == "binary"
    assert infer_task(["cyto", "nucleus", "membrane"]) == "multiclass"
    assert infer_task(["0", "1", "2", "3"]) == "multiclass"
    assert infer_task(["1.5", "2.25", "3.0"]) == "regression"
    assert infer_task([str(i) for i in range(30)]) == "regression"


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="task must be"):
        IngestOptions(task="clustering")
    with pytest.raises(ValueError, match="unknown fix"):
        IngestOptions(fixes=frozenset({"delete_everything"}))


def test_classes_coded_as_numbers_get_words(tmp_path):
    path = tmp_path / "sumo.csv"
    path.write_text("sequence,label\n" + "".join(
        f"MKV{'A' * i}LG,{i % 2}\n" for i in range(30)))
    named = load_dataset(path, IngestOptions(class_names=parse_class_names(
        "0=unmodified, 1=SUMOylated")))
    assert named.ok and named.dataset.label_names == ["unmodified", "SUMOylated"]
    assert set(named.dataset.frame["label"]) == {"unmodified", "SUMOylated"}
    wrong = load_dataset(path, IngestOptions(class_names=(("2", "other"),)))
    assert not wrong.ok and "'2' is not a class of this file (its classes: '0', '1')" in \
        wrong.errors[0].message
    clash = load_dataset(path, IngestOptions(class_names=(("0", "1"),)))
    assert not clash.ok and "would both be called '1'" in clash.errors[0].message
    with pytest.raises(ValueError, match="no two classes with one name"):
        IngestOptions(class_names=(("0", "x"), ("1", "x")))
    with pytest.raises(ValueError, match="'SUMOylated' is not CODE=NAME"):
        parse_class_names("0=unmodified,SUMOylated")
