from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.helpers import ROOT, shown


def _page() -> AppTest:
    return AppTest.from_file(str(ROOT / "app_pages" / "data.py"), default_timeout=60)


def test_example_dataset_is_validated_charted_and_stored(workspace):
    at = _page().run()
    assert not at.exception
    at.button[0].click().run()  # "Use the example dataset"
    assert not at.exception
    assert "is ready and stored" in shown(at.success[0].value)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Sequences"] == "412" and metrics["Task"] == "binary"
    assert len(at.get("vega_lite_chart")) == 3  # lengths, labels, test identity to train
    assert any("Homology-aware split at 50% identity" in shown(i.value) for i in at.info)
    assert any("recommended" in shown(c.value) for c in at.caption)
    stored = list((workspace / "datasets").glob("*/data.csv"))
    assert len(stored) == 1
    # a reload (a fresh session) still lists it
    again = _page().run()
    assert "amp_vs_transmembrane" in again.dataframe[0].value["name"].tolist()


@pytest.mark.slow  # over 20 s on two cores
def test_conflicts_are_explained_and_fixed_in_one_click(workspace):
    at = _page().run()
    at.selectbox(key="data_example").set_value("amp_vs_uniprot").run()
    at.button[0].click().run()
    assert "22 problem(s) must be fixed" in shown(at.error[0].value)
    fix = [b for b in at.button if b.label.startswith("Drop the 22 conflicting")]
    assert fix
    fix[0].click().run()
    assert not at.exception
    assert any("dropped 22 sequence(s)" in shown(s.value) for s in at.success)
    assert {m.label: m.value for m in at.metric}["Sequences"] == "4620"


def test_bad_upload_gets_row_level_errors_and_nothing_is_stored(workspace):
    at = _page().run()
    content = b"sequence,label\nMKV1,a\n" + b"".join(
        f"MKV{'A' * i},{'ab'[i % 2]}\n".encode() for i in range(12))
    at.file_uploader[0].set_value(("mine.csv", content, "text/csv")).run()
    assert not at.exception
    assert "1 problem(s)" in shown(at.error[0].value)
    assert any("row 2: invalid character(s) '1'" in shown(m.value) for m in at.markdown)
    assert not list((workspace / "datasets").glob("*/data.csv"))
    at.file_uploader[0].set_value(("junk.csv", b"\x00\x01\x02binary", "text/csv")).run()
    assert "binary file" in shown(at.error[0].value)


def test_an_upload_is_ingested_once_not_on_every_rerun(workspace, monkeypatch):
    import nas_core.data.store as store_mod

    calls = []
    real = store_mod.import_dataset
    monkeypatch.setattr(store_mod, "import_dataset",
                        lambda *a, **k: calls.append(k["name"]) or real(*a, **k))
    content = b"sequence,label\n" + b"".join(
        f"MKV{'A' * i}LG,{'ab'[i % 2]}\n".encode() for i in range(30))
    at = _page().run()
    at.file_uploader[0].set_value(("mine.csv", content, "text/csv")).run()
    assert "is ready and stored" in shown(at.success[0].value)
    at.selectbox(key="data_example").set_value("amp_vs_uniprot").run()  # unrelated to it
    at.run()
    assert calls == ["mine.csv"]
    assert "is ready and stored" in shown(at.success[0].value)
    at.radio(key="data_split_method").set_value("random").run()  # a new choice: read again
    assert calls == ["mine.csv", "mine.csv"]


def test_the_row_limit_is_explained_on_the_page(workspace, monkeypatch):
    monkeypatch.setenv("ESM_NAS_MAX_ROWS", "10")
    content = b"sequence,label\n" + b"".join(
        f"MKV{'A' * i}LG,{'ab'[i % 2]}\n".encode() for i in range(30))
    at = _page().run()
    at.file_uploader[0].set_value(("many.csv", content, "text/csv")).run()
    assert not at.exception
    message = shown(at.error[0].value)
    assert "more than 10 sequences" in message and "ESM_NAS_MAX_ROWS" in message
    assert not list((workspace / "datasets").glob("*/data.csv"))


def test_the_columns_found_are_shown_and_a_second_upload_gets_its_own_name(workspace):
    content = b"name,peptide,activity\n" + b"".join(
        f"p{i},MKV{'A' * i}LG,{'ab'[i % 2]}\n".encode() for i in range(30))
    at = _page().run()
    assert at.text_input(key="data_seq_col").placeholder == "found automatically"
    at.file_uploader[0].set_value(("screen.csv", content, "text/csv")).run()
    assert not at.exception
    assert at.text_input(key="data_seq_col").placeholder == "peptide (found)"
    assert at.text_input(key="data_label_col").placeholder == "activity (found)"
    assert any("column **peptide** and the labels from **activity**" in shown(c.value)
               for c in at.caption)
    # a new version of the file under the same name is another dataset, not "screen" too
    at.file_uploader[0].set_value(("screen.csv", content + b"p99,MKVWWLG,a\n",
                                   "text/csv")).run()
    assert not at.exception
    names = at.dataframe[-1].value["name"].tolist()
    assert len(names) == 2 and "screen" in names
    other = next(n for n in names if n != "screen")
    assert other.startswith("screen 20")  # the date it was stored


def test_more_problems_than_shown_come_as_a_download_not_a_command(workspace):
    content = b"sequence,label\n" + b"".join(
        f"MKV{i}A,{'ab'[i % 2]}\n".encode() for i in range(60))  # a digit in every row
    at = _page().run()
    at.file_uploader[0].set_value(("digits.csv", content, "text/csv")).run()
    assert not at.exception
    assert "60 problem(s)" in shown(at.error[0].value)
    # the same problem on several rows is one line naming them (issue 31, item 10)
    lines = [line for m in at.markdown for line in shown(m.value).splitlines()
             if "invalid character" in line]
    assert len(lines) < 60 and any("row 3, row 13 (2 rows): invalid character(s) '1'" in line
                                   for line in lines), lines
    assert not any("python -m" in shown(c.value) for c in at.caption)
    assert at.get("download_button")  # all 60, one per row, to fix the file


def test_classes_coded_as_numbers_are_named_on_the_page(workspace):
    content = b"sequence,label\n" + b"".join(
        f"MKV{'A' * i}LG,{i % 2}\n".encode() for i in range(30))
    at = _page().run()
    at.file_uploader[0].set_value(("sumo.csv", content, "text/csv")).run()
    assert at.text_input(key="data_class_0").value == "0"
    at.text_input(key="data_class_0").set_value("unmodified")
    at.text_input(key="data_class_1").set_value("SUMOylated")
    next(b for b in at.button if b.label == "Use these names").click().run()
    assert not at.exception, at.exception
    assert any("**unmodified**" in shown(c.value) and "**SUMOylated**" in shown(c.value)
               for c in at.caption)
    stored = at.dataframe[-1].value
    assert "unmodified, SUMOylated" in stored["classes"].tolist()
    # the form shows the file's codes with the names given, ready to change again
    assert at.text_input(key="data_class_1").label == "Class 1"
    assert at.text_input(key="data_class_1").value == "SUMOylated"
    at.text_input(key="data_class_1").set_value("unmodified")  # two classes, one name
    next(b for b in at.button if b.label == "Use these names").click().run()
    assert not at.exception
    assert any("no two classes with one name" in shown(e.value) for e in at.error)
