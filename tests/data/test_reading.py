"""Every supported format parses real data to the same rows."""

from __future__ import annotations

import gzip

import pandas as pd
import pytest

from nas_core.data.options import IngestOptions
from nas_core.data.reading import _parse_header, read_bytes, read_raw
from nas_core.data.validation import load_dataset
from tests.helpers import ASSETS

PEPTIDES = pd.read_csv(ASSETS / "amp_vs_transmembrane.csv")


def _fasta(rows: pd.DataFrame, style: str) -> str:
    lines = []
    for i, (seq, label) in enumerate(zip(rows["sequence"], rows["label"])):
        header = f"pep{i} label={label}" if style == "keyvalue" else f"pep{i}|{label}"
        lines += [f">{header}", seq[:20], seq[20:]] if len(seq) > 20 else [f">{header}", seq]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("fmt", ["csv", "tsv", "xlsx", "fasta-kv", "fasta-pipe", "fa.gz",
                                 "csv-bom", "txt"])
def test_every_format_reads_the_same_rows(tmp_path, fmt):
    rows = pd.concat([PEPTIDES.head(30), PEPTIDES.tail(30)], ignore_index=True)
    if fmt in ("csv", "txt"):
        path = tmp_path / f"data.{fmt}"
        rows.to_csv(path, index=False)
    elif fmt == "csv-bom":
        path = tmp_path / "data.csv"
        path.write_bytes(b"\xef\xbb\xbf" + rows.to_csv(index=False).encode())
    elif fmt == "tsv":
        path = tmp_path / "data.tsv"
        rows.to_csv(path, index=False, sep="\t")
    elif fmt == "xlsx":
        path = tmp_path / "data.xlsx"
        rows.to_excel(path, index=False)
    elif fmt == "fasta-kv":
        path = tmp_path / "data.fasta"
        path.write_text(_fasta(rows, "keyvalue"))
    elif fmt == "fasta-pipe":
        path = tmp_path / "data.faa"
        path.write_text(_fasta(rows, "pipe"))
    else:
        path = tmp_path / "data.fa.gz"
        path.write_bytes(gzip.compress(_fasta(rows, "keyvalue").encode()))
    raw = read_raw(path)
    assert list(raw.frame["sequence"]) == list(rows["sequence"])
    assert list(raw.frame["label"]) == list(rows["label"])
    result = load_dataset(path)
    assert result.ok, result.problems
    assert result.dataset.task == "binary"
    assert result.dataset.label_names == ["AMP", "TM"]


def test_real_regression_file_with_split_column():
    result = load_dataset(ASSETS / "gfp_fluorescence.csv")
    assert result.ok
    frame = result.dataset.frame
    assert result.dataset.task == "regression"
    assert len(frame) == 500 and set(frame["split"]) == {"train", "valid"}
    assert frame["label"].between(1.2, 4.2).all()
    assert frame["id"].iloc[0] == "P00044"


def test_column_overrides_and_normalisation(tmp_path):
    path = tmp_path / "custom.csv"
    path.write_text("protein_id,aa,measured\nA,mk v*,1.5\nB,acde,2.5\nC,Kkkk,3.0\n")
    result = load_dataset(path, options=IngestOptions(
        seq_col="aa", label_col="measured", task="regression"))
    assert result.ok, result.problems
    assert list(result.dataset.frame["sequence"]) == ["MKV", "ACDE", "KKKK"]


@pytest.mark.parametrize("header,expected", [
    ("P12345 label=1", ("P12345", "1", None)),
    ("P12345 label=enzyme split=test", ("P12345", "enzyme", "test")),
    ("P12345|0", ("P12345", "0", None)),
    ("P12345|0|valid", ("P12345", "0", "valid")),
    ("sp|P69905|HBA_HUMAN Hemoglobin", ("P69905", None, None)),
    ("P12345 some description", ("P12345", None, None)),
])
def test_fasta_header_forms(header, expected):
    assert _parse_header(header) == expected


def test_quoted_header_values_keep_their_spaces():
    """label="cell membrane" is one label, not "cell" (issue 30, item 9)."""
    fasta = (">P1 label=\"cell membrane\" split=train\nMKVLAAGWWQ\n"
             ">P2 label='outer membrane' split=test\nMKVLAAGWWR\n"
             ">P3 label=nucleus\nMKVLAAGWWS\n")
    raw = read_bytes(fasta.encode(), "loc.fasta")
    assert list(raw.frame["label"]) == ["cell membrane", "outer membrane", "nucleus"]
    assert list(raw.frame["split"][:2]) == ["train", "test"]


def _workbook(sheets: dict[str, list[list[str]]]) -> bytes:
    import io

    import openpyxl

    book = openpyxl.Workbook()
    book.remove(book.active)
    for title, rows in sheets.items():
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_workbooks_password_protected_or_with_the_sequences_on_another_sheet():
    """Issue 30, item 10: an encrypted workbook is said to be one (not 'not a zip file'); the
    sheet with the sequences is found; when none has them, the sheets are named."""
    import io

    from msoffcrypto.format.ooxml import OOXMLFile

    from nas_core.data.reading import DataFileError

    rows = [["sequence", "label"], *([f"MKV{c}LAAGWW", "a" if i % 2 else "b"]
                                     for i, c in enumerate("ACDEFGHIKL"))]
    encrypted = io.BytesIO()
    OOXMLFile(io.BytesIO(_workbook({"data": rows}))).encrypt("secret", encrypted)
    with pytest.raises(DataFileError, match="password-protected"):
        read_bytes(encrypted.getvalue(), "locked.xlsx")
    second = read_bytes(_workbook({"notes": [["read me"], ["measured 2026"]], "data": rows}),
                        "two.xlsx")
    assert len(second.frame) == 10 and second.frame["sequence"][0] == "MKVALAAGWW"
    with pytest.raises(DataFileError, match=r"none of its 2 sheets \(notes, more\)"):
        read_bytes(_workbook({"notes": [["read me"]], "more": [["x"], ["y"]]}), "none.xlsx")
