"""AppTest of the Data, Results and Predict pages for a per-residue dataset (the shipped FLIP
secondary-structure chains)."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from nas_core.common.access import local_person
from nas_core.data.store import DatasetStore
from nas_core.search.config import SearchConfig
from tests.helpers import ROOT, SS, keyed, open_page, residue_example, shown, tiny_space

BROWSER = "b" * 32


def app(page: str) -> AppTest:
    return open_page(page, BROWSER)


def test_the_flip_files_uploaded_together_make_a_per_residue_dataset(workspace):
    at = AppTest.from_file(str(ROOT / "app_pages" / "data.py"), default_timeout=120).run()
    files = [(name, (SS / name).read_bytes(), "application/octet-stream")
             for name in ("mask.fasta", "labels.fasta", "sequences.fasta")]
    at.file_uploader(key="data_flip_upload").set_value(files).run()
    assert not at.exception, at.exception
    # browsers send no folder: the dataset is named by the visitor, not "sequences" (issue 31)
    assert any("Name this dataset" in shown(i.value) for i in at.info)
    assert not DatasetStore(workspace).list()
    at.text_input(key="data_flip_name").set_value("ss3").run()
    assert "is ready and stored" in shown(at.success[0].value)
    assert "ss3" in shown(at.success[0].value)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Task, per residue"] == "classes" and metrics["Sequences"] == "500"
    assert metrics["Train / valid / test"] == "360 / 40 / 100"  # the split in the headers
    captions = [shown(c.value) for c in at.caption]
    assert any("labelled residues" in c and "Proteins stay whole" in c for c in captions)
    assert any(c.startswith("Classes: **C** ") and " residues (" in c for c in captions)
    assert not at.get("form")  # residue classes keep their codes: no naming form
    stored = DatasetStore(workspace).list()
    assert [(r.task, r.name) for r in stored] == [("residue_classification", "ss3")]
    # one file too few, or one too many: said, nothing read
    at.file_uploader(key="data_flip_upload").set_value(files[:1]).run()
    assert any("add the labels file" in shown(w.value) for w in at.warning)
    extra = files + [("more.fasta", (SS / "sequences.fasta").read_bytes(), "text/plain")]
    at.file_uploader(key="data_flip_upload").set_value(extra).run()
    assert any("remove the ones that do not belong" in shown(w.value) for w in at.warning)


def test_the_example_and_a_wrong_set_of_files(workspace):
    at = AppTest.from_file(str(ROOT / "app_pages" / "data.py"), default_timeout=120).run()
    at.selectbox(key="data_example").set_value("secondary_structure").run()
    at.button[0].click().run()
    assert not at.exception
    assert "secondary_structure" in shown(at.success[0].value)
    seqs = (SS / "sequences.fasta").read_bytes()
    at.text_input(key="data_flip_name").set_value("pair")
    at.file_uploader(key="data_flip_upload").set_value([("a.fasta", seqs, "text/plain"),
                                                        ("b.fasta", seqs, "text/plain")]).run()
    assert not at.exception
    assert "which file holds the labels" in shown(at.error[0].value)


@pytest.fixture
def residue_job(workspace, tiny_backbone):
    from ui.engine import job_manager

    stored = DatasetStore(workspace).save(residue_example(), source="ss.fasta", name="ss")
    manager = job_manager(str(workspace))
    space = tiny_space(tiny_backbone, adaptations=("frozen",))
    job = manager.submit(SearchConfig("ss-app", space, n_trials=2), stored.id,
                         local_person(BROWSER, "alice"))
    assert manager.wait(job.id).state == "finished"
    return manager.get(job.id)


@pytest.mark.slow
def test_results_and_predict_pages_for_a_per_residue_model(residue_job):
    at = app("app_pages/results.py")
    metrics = {m.label: m.value for m in at.metric}
    assert "Held-out test MCC" in metrics
    assert any("each labelled residue's predicted class" in shown(c.value) for c in at.caption)
    assert "Held-out proteins, residue by residue" in [s.value for s in at.subheader]
    assert len(at.multiselect(key="track_proteins").value) == 3
    # reliability, identity histogram, confusion matrix over residues, the track plot
    assert len(at.get("vega_lite_chart")) == 4
    at.multiselect(key="track_proteins").set_value([]).run()
    assert len(at.get("vega_lite_chart")) == 3
    assert any("per-residue model: Compress" in shown(i.value) for i in at.info)

    at = app("app_pages/predict.py")
    at.text_area(key="predict_text").set_value(">p1\nMKVLAAGIWKKPLLE\n>p2\nGLFDIIKKIAESF\n")
    at.button(key="predict_go").click().run()
    assert not at.exception, at.exception
    assert "Predictions for 2 sequence(s), one row per residue (28 rows)" in \
        shown(at.success[0].value)
    table = at.dataframe[0].value
    assert table["position"].tolist()[:3] == [1, 2, 3] and set(table["id"]) == {"p1", "p2"}
    assert "".join(table[table["id"] == "p2"]["residue"]) == "GLFDIIKKIAESF"
    assert set(table["prediction"]) <= {"C", "E", "H"}
    assert at.selectbox(key="predict_track").value == "p1"
    assert len(at.get("vega_lite_chart")) == 1


def test_the_search_page_offers_the_residue_dimensions_for_a_per_residue_dataset(workspace):
    DatasetStore(workspace).save(residue_example(), source="ss.fasta", name="ss")
    at = open_page("app_pages/search.py", BROWSER)
    keys = [w.key for w in at.multiselect if w.key.startswith("adv_")]
    for name, shown_here in (("residue_heads", True), ("class_weighting", True),
                             ("poolings", False), ("heads_kept", False)):
        assert any(k.endswith(f"_{name}") for k in keys) == shown_here, name
    heads = keyed(at.multiselect, "adv_", "_residue_heads")
    assert heads.value == ["dense", "conv"] and "neighbours" in heads.help
    keyed(at.multiselect, "adv_", "_residue_heads").set_value(["conv"]).run()
    assert not at.exception


def test_advanced_groups_every_setting_with_a_sentence(workspace):
    """Issue 31, item 11: the 20+ settings in groups (search strategy, backbone and size,
    adaptation, head, training), one sentence each; none left out of a group."""
    from ui.space_form import _CHOICES, _FLOAT_RANGES, _INT_RANGES, _LOG_RANGES, GROUPS

    grouped = {name for _, _, names in GROUPS for name in names}
    assert set(_CHOICES) | set(_INT_RANGES) | set(_FLOAT_RANGES) | set(_LOG_RANGES) <= grouped
    DatasetStore(workspace).save(residue_example(), source="ss.fasta", name="ss")
    at = open_page("app_pages/search.py", BROWSER)
    titles = [shown(m.value) for m in at.markdown]
    for title in ("Search strategy", "Backbone and size", "Adaptation", "Head", "Training"):
        assert f"**{title}**" in titles, titles
    assert sum(1 for c in at.caption if shown(c.value).startswith((
        "How the search chooses", "How much of each backbone", "How the backbone learns",
        "What turns the backbone", "How each architecture"))) == 5
