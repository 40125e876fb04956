"""AppTest of the Data, Search, Results and Predict pages for protein pairs (a subset of the
shipped E. coli pairs): the pairs file and the FASTA dropped together, the split named, the
pair heads offered, the model predicting pairs, pairs listed by ID and a bait screened."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from nas_core.common.access import local_person
from nas_core.data.store import DatasetStore
from nas_core.search.config import SearchConfig
from tests.helpers import ROOT, open_page, pair_subset, shown, tiny_space

BROWSER = "c" * 32


def test_the_pairs_file_and_fasta_dropped_together_make_a_pair_dataset(workspace, tmp_path):
    pairs, proteins = pair_subset(tmp_path / "pairs")
    at = AppTest.from_file(str(ROOT / "app_pages" / "data.py"), default_timeout=120).run()
    files = [(proteins.name, proteins.read_bytes(), "text/plain"),
             (pairs.name, pairs.read_bytes(), "text/plain")]
    at.file_uploader(key="data_pairs_upload").set_value(files).run()
    assert not at.exception, at.exception
    # the real subset lists one pair both ways with two labels: said, with its fix
    errors = " ".join(shown(e.value) for e in at.error) + " ".join(
        shown(m.value) for m in at.markdown)
    if not at.success:
        assert "A-B and as B-A" in errors or "conflicting labels" in errors
        next(b for b in at.button if "conflicting" in b.label.lower()).click().run()
    assert "is ready and stored" in shown(at.success[0].value)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Task, per pair"] == "binary" and int(metrics["Pairs"].replace(",", "")) > 50
    captions = " ".join(shown(c.value) for c in at.caption)
    assert "Split: **both partners unseen**" in captions
    assert any("average precision" in shown(w.value) for w in at.warning)
    [record] = DatasetStore(workspace).list()
    assert record.task == "pair_binary" and record.pair_split == "both_unseen"
    # two FASTA files are not this layout: said, nothing read
    at.file_uploader(key="data_pairs_upload").set_value(
        [files[0], ("more.fasta", proteins.read_bytes(), "text/plain")]).run()
    assert any("one must be the proteins' FASTA" in shown(w.value) for w in at.warning)


@pytest.fixture
def finished_pairs(workspace, tiny_backbone, tmp_path):
    from nas_core.data.options import IngestOptions
    from nas_core.data.store import import_dataset
    from ui.engine import job_manager

    pairs, proteins = pair_subset(tmp_path / "pairs")
    store = DatasetStore(workspace)
    outcome = import_dataset(pairs, proteins=proteins, store=store, options=IngestOptions(
        fixes=frozenset({"drop_conflicts"})))
    assert outcome.stored is not None
    manager = job_manager(str(workspace))
    space = tiny_space(tiny_backbone, adaptations=("frozen",))
    job = manager.submit(SearchConfig("ppi", space, n_trials=2, ensemble_size=1),
                         outcome.stored.id, local_person(BROWSER, "alice"))
    assert manager.wait(job.id).state == "finished"
    return manager.get(job.id), pairs, proteins


def test_search_results_and_predict_for_a_pair_dataset(finished_pairs):
    _, pairs, proteins = finished_pairs
    at = open_page("app_pages/search.py", BROWSER)  # the pair heads offered, DARTS not
    assert not at.exception
    assert "darts" not in at.selectbox(key="search_sampler").options
    assert any(m.label == "Pair heads" for m in at.multiselect)
    assert any(m.label == "Class weighting" for m in at.multiselect)
    at = open_page("app_pages/results.py", BROWSER)
    assert not at.exception
    text = " ".join(shown(m.value) for m in at.markdown)
    assert "Split: both partners unseen." in text and "resample proteins" in text
    at = open_page("app_pages/predict.py", BROWSER)
    at.radio(key="predict_mode").set_value("listed").run()
    at.file_uploader(key="predict_upload").set_value((pairs.name, pairs.read_bytes(),
                                                      "text/plain"))
    at.file_uploader(key="predict_proteins").set_value((proteins.name, proteins.read_bytes(),
                                                        "text/plain"))
    at.button(key="predict_go").click().run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert {"id", "id_2", "unlike_training", "unlike_training_2", "p_1.0"} <= set(table.columns)
    assert any("unlike_training_2" in shown(c.value) for c in at.caption)
    bait = proteins.read_text().splitlines()[0][1:]
    at.radio(key="predict_mode").set_value("screen").run()
    at.text_input(key="predict_bait").set_value(bait)
    at.file_uploader(key="predict_upload").set_value((proteins.name, proteins.read_bytes(),
                                                      "text/plain"))
    at.button(key="predict_go").click().run()
    assert not at.exception, at.exception
    ranked = at.dataframe[0].value
    assert list(ranked["rank"][:3]) == [1, 2, 3] and ranked["p_1.0"].is_monotonic_decreasing
    # a single-sequence file is refused by a pair model, with what to give instead
    at.radio(key="predict_mode").set_value("table").run()
    at.file_uploader(key="predict_upload").set_value((proteins.name, proteins.read_bytes(),
                                                      "text/plain"))
    at.button(key="predict_go").click().run()
    assert any("predicts for pairs of proteins" in shown(m.value) for m in at.markdown)


def test_test_these_next_ranks_candidate_pairs_listed_by_id(finished_pairs):
    _, pairs, proteins = finished_pairs
    at = open_page("app_pages/suggest.py", BROWSER)
    assert not at.exception, at.exception
    assert any("pairs of proteins" in shown(c.value) for c in at.caption)
    at.file_uploader(key="suggest_upload").set_value((pairs.name, pairs.read_bytes(),
                                                      "text/plain"))
    at.file_uploader(key="suggest_proteins").set_value((proteins.name, proteins.read_bytes(),
                                                        "text/plain"))
    at.number_input(key="suggest_batch").set_value(5)
    at.button(key="suggest_go").click().run()
    assert not at.exception, at.exception
    frame = at.dataframe[0].value
    assert len(frame) == 5 and {"id_2", "sequence_2", "nearest_train_identity_2"} <= set(
        frame.columns)
    assert not any(b.key == "suggest_next_round" for b in at.button)
