"""Input that used to be wrongly accepted, crash, or take the server down (issue 16, items
6 and 9-14): each gets a specific message, bounded memory, and no traceback."""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

import nas_core.data.splits as splits_mod
from nas_core.data.homology import HomologyError
from nas_core.data.options import IngestOptions
from nas_core.data.reading import DataFileError, gunzip, read_bytes
from nas_core.data.store import import_dataset
from nas_core.data.validation import load_upload
from tests.helpers import ROOT

PEPTIDES = ["MKTAYIAKQRQISFVKSHFSRQ", "GLFDIVKKVVGALGSL", "KWKLFKKIEKVGQNIRDG",
            "FLPLIGRVLSGIL", "GIGKFLHSAKKFGKAFVGEIMNS", "ILPWKWPWWPWRR", "RRWQWRMKKLG",
            "VDKGSYLPRPTPPRPIYNRN", "LLGDFFRKSKEKIGKEFKRIVQRIKDFLRNLVPRTES", "FKCRRWQWRMKKLGA",
            "ALWKTMLKKLGTMALHAGKAALGAAADTISQGTQ", "GWGSFFKKAAHVGKHVGKAALTHYL"]


def table(rows: list[tuple[str, str]], sep: str = ",") -> bytes:
    return ("\n".join([f"sequence{sep}label"] + [f"{s}{sep}{v}" for s, v in rows]) +
            "\n").encode()


def codes(result) -> set[str]:
    return {p.code for p in result.problems}


# 6 -------------------------------------------------------------------------------------
def test_a_gzip_bomb_stops_at_the_limit_with_bounded_memory():
    bomb = gzip.compress(b"A" * (40 * 2**20))  # 40 MB of one letter: about 40 kB on disk
    assert len(bomb) < 200_000
    tracemalloc.start()
    with pytest.raises(DataFileError, match=r"decompresses to more than 4 MB"):
        gunzip(bomb, "bomb.csv.gz", limit_mb=4)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 16 * 2**20, f"peak {peak / 2**20:.0f} MB for a 4 MB limit"


def test_the_limit_applies_to_uploads(monkeypatch):
    monkeypatch.setenv("ESM_NAS_MAX_UPLOAD_MB", "0.01")
    data = gzip.compress(table([(p, "1") for p in PEPTIDES] * 40))
    with pytest.raises(DataFileError, match="ESM_NAS_MAX_UPLOAD_MB"):
        read_bytes(data, "big.csv.gz")
    small = gzip.compress(table([(p, "1") for p in PEPTIDES[:3]]))
    assert len(read_bytes(small, "small.csv.gz").frame) == 3


# 9 -------------------------------------------------------------------------------------
@pytest.mark.parametrize("token", ["NA", "None", "nan", "null", "n/a"])
def test_missing_value_words_are_missing_labels_not_classes(token):
    rows = [(p, "AMP" if i % 2 else "TM") for i, p in enumerate(PEPTIDES)]
    rows[3] = (rows[3][0], token)
    result = load_upload(table(rows), "na.csv", IngestOptions(min_class_size=1))
    assert "missing_label" in codes(result)
    message = next(p.message for p in result.problems if p.code == "missing_label")
    assert message.startswith("row 5:") and repr(token) in message
    fixed = load_upload(table(rows), "na.csv", IngestOptions(min_class_size=1,
                                                              fixes=frozenset({"drop_unlabelled"})))
    assert fixed.ok and fixed.dataset is not None
    assert set(fixed.dataset.label_names or []) == {"AMP", "TM"}


def test_one_word_in_a_numeric_column_keeps_it_a_regression():
    rows = [(p + "A" * i, f"{1.3 + 0.17 * i:.3f}") for i, p in enumerate(PEPTIDES * 2)]
    rows[7] = (rows[7][0], "high")
    result = load_upload(table(rows), "gfp.csv")
    assert "non_numeric_label" in codes(result)
    assert result.dataset is None and not {"rare_class", "single_class"} & codes(result)
    assert "non_finite_label" not in codes(result)  # one message for one problem
    assert any(p.message.startswith("row 9: the label 'high' is not a number")
               for p in result.problems)


@pytest.mark.parametrize("value, hint", [("2,5", "decimal comma: write it as 2.5"),
                                         ("30%", "percentage")])
def test_numbers_in_formats_we_do_not_read_say_how_to_write_them(value, hint):
    rows = [(p + "A" * i, f"{1.3 + 0.17 * i:.3f}") for i, p in enumerate(PEPTIDES * 2)]
    rows[2] = (rows[2][0], value)
    result = load_upload(table(rows, sep=";"), "gfp.csv")  # as Excel writes it in Europe
    assert any(p.code == "non_numeric_label" and p.message.startswith("row 4:") and
               hint in p.message for p in result.problems), result.problems


# 10 ------------------------------------------------------------------------------------
def test_labels_whose_statistics_overflow_are_refused_with_the_row():
    rows = [(p + "A" * i, f"{1.3 + 0.17 * i:.3f}") for i, p in enumerate(PEPTIDES * 2)]
    rows[5] = (rows[5][0], "1e308")
    rows[6] = (rows[6][0], "-1e308")
    result = load_upload(table(rows), "huge.csv")
    assert not result.ok
    wheres = [p.where for p in result.problems if p.code == "label_overflow"]
    assert wheres == [("row 7",), ("row 8",)]
    fixed = load_upload(table(rows), "huge.csv", IngestOptions(fixes=frozenset(
        {"drop_unlabelled"})))
    assert fixed.ok and fixed.dataset is not None
    assert all(abs(v) < 100 for v in fixed.dataset.frame["label"])


# 11 ------------------------------------------------------------------------------------
def test_a_second_label_column_duplicate_ids_and_formulas_are_warned():
    text = "sequence,label,label\n" + "".join(
        f"{p},{'AMP' if i % 2 else 'TM'},x\n" for i, p in enumerate(PEPTIDES))
    result = load_upload(text.encode(), "two.csv", IngestOptions(min_class_size=1))
    assert "second_label_column" in codes(result) and result.ok
    fasta = "".join(f">P{i % 5} label={i % 2}\n{p}\n" for i, p in enumerate(PEPTIDES))
    result = load_upload(fasta.encode(), "dup.fasta", IngestOptions(min_class_size=1))
    assert "duplicate_ids" in codes(result)
    rows = [(p, "=HYPERLINK(\"x\")" if i == 0 else ("AMP" if i % 2 else "TM"))
            for i, p in enumerate(PEPTIDES)]
    result = load_upload(table(rows), "formula.csv", IngestOptions(min_class_size=1))
    warning = next(p for p in result.problems if p.code == "formula_label")
    assert warning.where == ("row 2",)


# 12 ------------------------------------------------------------------------------------
def test_a_semicolon_separated_csv_is_read_as_two_columns():
    rows = [(p + "A" * i, f"{1.3 + 0.17 * i:.3f}") for i, p in enumerate(PEPTIDES * 2)]
    raw = read_bytes(table(rows, sep=";"), "excel-de.csv")
    assert raw.seq_col == "sequence" and raw.label_col == "label"
    result = load_upload(table(rows, sep=";"), "excel-de.csv")
    assert result.ok and result.dataset is not None and result.dataset.task == "regression"


# 13 ------------------------------------------------------------------------------------
DNA = ["ATGGCTAGCTAGGATCCGATCGATCGTAGCTAGCTAGCATGCATG",
       "ATGCCCGGGTTTAAACCCGGGTTTAAACCCGGGTTTAAACCCGGG"]


def test_nucleotide_sequences_are_refused_not_a_traceback(tmp_path, workspace):
    rows = [(DNA[i % 2][i:] + DNA[(i + 1) % 2][:i], str(i % 2)) for i in range(20)]
    path = tmp_path / "dna.csv"
    path.write_bytes(table(rows))
    outcome = import_dataset(path)
    assert not outcome.ok
    assert "nucleotide_sequences" in codes(outcome.result)
    done = subprocess.run([sys.executable, "-m", "nas_core", "validate", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stdout + done.stderr
    assert "looks like DNA" in done.stdout


def test_a_failing_homology_search_becomes_a_message(tmp_path, monkeypatch, workspace):
    def broken(*args, **kwargs):
        raise HomologyError("MMseqs2 failed: Error: Search died")

    monkeypatch.setattr(splits_mod.homology, "all_hits", broken)
    rows = [(p, "AMP" if i % 2 else "TM") for i, p in enumerate(PEPTIDES * 2)]
    path = tmp_path / "p.csv"
    path.write_bytes(table(rows))
    outcome = import_dataset(path)
    problem = next(p for p in outcome.result.problems if p.code == "homology_failed")
    assert "Search died" in problem.message and "random split" in problem.message


# 14 ------------------------------------------------------------------------------------
@pytest.mark.parametrize("content, says", [
    (b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body></body></html>\n",
     "web page (HTML)"),
    (json.dumps([{"sequence": "MKT", "label": 1}]).encode(), "JSON file"),
])
def test_a_web_page_or_json_saved_as_csv_says_what_it_is(content, says):
    with pytest.raises(DataFileError, match=re.escape(says)):
        read_bytes(content, "data.csv")


def test_dna_rows_among_proteins_are_named_one_by_one_with_a_fix(tmp_path):
    """A quarter of the rows in DNA once trained as protein (issue 30, item 5)."""
    rng = np.random.default_rng(4)
    proteins = ["".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), 40)) for _ in range(30)]
    genes = ["".join(rng.choice(list("ACGT"), 60)) for _ in range(10)]
    rows = [(s, str(i % 2)) for i, s in enumerate(proteins + genes)]
    path = tmp_path / "mixed.csv"
    path.write_bytes(table(rows))
    outcome = import_dataset(path)
    found = [p for p in outcome.result.problems if p.code == "nucleotide_sequence"]
    assert not outcome.ok and len(found) == 10
    assert found[0].fix == "drop_nucleotides" and "looks like DNA or RNA" in found[0].message
    assert "drop_nucleotides" in outcome.result.offered_fixes
    fixed = import_dataset(path, options=IngestOptions(fixes=frozenset({"drop_nucleotides"})))
    assert fixed.ok and fixed.dataset is not None and len(fixed.dataset.frame) == 30
    peptides = [("GAGAGAGAGAGA", "0"), ("GAGAGAGAGAGT", "1")] + rows[:30]
    path.write_bytes(table(peptides))  # short repeats of A/G/T residues stay proteins
    assert not any(p.code == "nucleotide_sequence"
                   for p in import_dataset(path).result.problems)


def test_messages_say_what_is_wrong_not_nan_or_conflict():
    """Issue 30, item 10: a FLIP label record without SET=, an empty split cell and a file of
    X residues each get their own words (they read 'split value nan' and 'conflicting
    labels')."""
    from nas_core.data.validation import load_flip

    seqs = b">a\nMKVLAAGIW\n>b\nMKVLAAGIR\n>c\nMKVLAAGIK\n"
    labels = b">a\nHHHEEECCC\n>b SET=train\nHHHHHHCCC\n>c SET=test\nCCCHHHCCC\n"
    flip = load_flip(("s.fasta", seqs), ("l.fasta", labels),
                     options=IngestOptions(min_class_size=1))
    (split,) = [p for p in flip.problems if p.code == "bad_split"]
    assert "no SET= in its header" in split.message and "nan" not in split.message
    rows = [(p, str(i % 2)) for i, p in enumerate(PEPTIDES[:12])]
    text = "sequence,label,split\n" + "".join(
        f"{s},{lab},{'train' if i % 3 else ''}\n" for i, (s, lab) in enumerate(rows))
    empty = load_upload(text.encode(), "t.csv", IngestOptions(min_class_size=1))
    assert all("nan" not in p.message for p in empty.problems)
    assert any("no split value" in p.message for p in empty.problems)
    unknown = load_upload(table([("X" * 10, str(i % 2)) for i in range(12)]), "x.csv",
                          IngestOptions(min_class_size=1))
    assert {p.code for p in unknown.problems} == {"unknown_residues"}


def test_numbers_and_words_mixed_in_the_labels_are_not_silently_classes():
    """0, 1, yes and 2.5 read as four classes before; now the user is asked which it is,
    and choosing the task reads them as asked."""
    labels = ["0", "1", "yes", "2.5"] * 6
    rows = [(p + "A" * i, labels[i]) for i, p in enumerate(PEPTIDES * 2)]
    result = load_upload(table(rows), "mixed.csv", IngestOptions(min_class_size=1))
    assert result.dataset is None and codes(result) == {"mixed_labels"}
    (error,) = result.errors
    assert "mix numbers (0, 1, 2.5) and words (yes)" in error.message
    assert "choose the task yourself" in error.message
    assert error.where == ("row 4", "row 8", "row 12", "row 16", "row 20", "row 24")[
        :len(error.where)] and len(error.where) == len(rows) // 4
    chosen = load_upload(table(rows), "mixed.csv",
                         IngestOptions(min_class_size=1, task="multiclass"))
    assert chosen.ok and set(chosen.dataset.label_names or []) == {"0", "1", "yes", "2.5"}


def test_measurements_in_several_number_formats_are_read_as_numbers_when_asked():
    """1.5, 2,5, 30% and 1e3 became four classes; now it is an error with the fix that reads
    them as the numbers they are (a regression)."""
    labels = ["1.5", "2,5", "30%", "1e3"] * 6
    rows = [(p + "A" * i, labels[i]) for i, p in enumerate(PEPTIDES * 2)]
    result = load_upload(table(rows, sep=";"), "formats.csv", IngestOptions(min_class_size=1))
    assert result.dataset is None and codes(result) == {"number_formats"}
    (error,) = result.errors
    assert "measurements written in several formats" in error.message
    assert error.fix == "read_numbers" and "read_numbers" in result.offered_fixes
    fixed = load_upload(table(rows, sep=";"), "formats.csv",
                        IngestOptions(min_class_size=1, fixes=frozenset({"read_numbers"})))
    assert fixed.ok and fixed.dataset.task == "regression"
    assert sorted(set(fixed.dataset.frame["label"])) == [1.5, 2.5, 30.0, 1000.0]


def test_twenty_rows_with_the_same_problem_read_as_one_line(tmp_path, capsys):
    """Issue 31, item 10: twenty identical row messages become one line naming the rows, on
    the page and on the command line; different problems keep their own lines."""
    from nas_core.cli import main
    from nas_core.data.dataset import grouped_messages

    rows = [(p + "A" * i, "NA" if i < 20 else ("AMP" if i % 2 else "TM"))
            for i, p in enumerate(PEPTIDES * 4)]
    rows[25] = ("MKV1LAAGW", "TM")
    result = load_upload(table(rows), "many.csv", IngestOptions(min_class_size=1))
    lines = grouped_messages(result.errors)
    assert len(result.errors) == 21 and len(lines) == 2
    (missing,) = [line for line in lines if "the label is missing" in line]
    assert missing.startswith("row 2, row 3, row 4") and "and 12 more (20 rows): the label " \
        "is missing ('NA' means no value)" in missing
    assert any(line.startswith("row 27: invalid character(s) '1'") for line in lines)
    path = tmp_path / "many.csv"
    path.write_bytes(table(rows))
    assert main(["validate", str(path)]) == 2
    out = capsys.readouterr().out
    assert out.count("the label is missing") == 1 and "(20 rows)" in out
