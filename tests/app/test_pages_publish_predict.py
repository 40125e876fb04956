"""AppTest of the Predict page and of the publish form on the Results page."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from nas_core.common.access import local_person
from nas_core.publishing.config import PublishConfig
from nas_core.publishing.hub import publish
from nas_core.publishing.predict import Predictor
from nas_core.search.config import SearchConfig
from nas_core.search.space import SearchSpace
from tests.fakehub import FakeHub
from tests.helpers import ASSETS, form_field, has_form_field, open_page, shown, store_example

BROWSER = "a" * 32


@pytest.fixture
def finished_job(workspace, tiny_backbone):
    from ui.engine import job_manager

    stored = store_example(as_name="amp.csv")
    manager = job_manager(str(workspace))
    space = SearchSpace(backbones=(str(tiny_backbone),), max_epochs_range=(2, 2),
                        batch_sizes=(32,))
    job = manager.submit(SearchConfig("pp", space, n_trials=2), stored.id,
                         local_person(BROWSER, "alice"))
    assert manager.wait(job.id).state == "finished"
    return manager.get(job.id)


def app(page: str, browser: str = BROWSER) -> AppTest:
    return open_page(page, browser)


def publish_button(at: AppTest):
    """The publish form's submit button (the Compress form follows it on the page)."""
    return next(b for b in at.button if b.label in ("Publish", "Retry"))


def test_predict_page_pasted_sequences_and_bad_input(finished_job):
    at = app("app_pages/predict.py")
    at.text_area(key="predict_text").set_value(
        "pep1,GLFDIIKKIAESF\npep2,AAGAATVLLVIVLLAGSYLAVLA\nKWKLFKKIEKVGQNIRDG\n")
    at.button(key="predict_go").click().run()
    assert not at.exception
    assert "3 prediction(s)" in shown(at.success[0].value)
    table = at.dataframe[0].value
    assert table["id"].tolist()[:2] == ["pep1", "pep2"]
    assert set(table["prediction"]) <= {"AMP", "TM"}
    assert ((table["p_AMP"] + table["p_TM"]).round(5) == 1.0).all()
    assert at.get("download_button")
    at.run()  # a rerun (sorting, downloading) keeps the result
    assert "3 prediction(s)" in shown(at.success[0].value)
    at.text_area(key="predict_text").set_value("MKVLA\nMK1V\n")
    at.button(key="predict_go").click().run()
    assert "cannot be used; nothing was predicted" in shown(at.error[0].value)
    assert any("line 2: invalid character(s) '1'" in shown(m.value) for m in at.markdown)


def test_predict_page_upload_with_labels_reports_metrics(finished_job):
    at = app("app_pages/predict.py")
    at.file_uploader(key="predict_upload").set_value(
        ("more.csv", (ASSETS / "amp_vs_transmembrane.csv").read_bytes(), "text/csv"))
    at.button(key="predict_go").click().run()
    assert not at.exception
    assert "412 prediction(s)" in shown(at.success[0].value)
    captions = [shown(c.value) for c in at.caption]
    (against,) = [c for c in captions if "Against the labels in your file" in c]
    assert "ROC-AUC" in against and "roc_auc" not in against  # words, not keys (issue 31)
    assert any("unlike_training" in c for c in captions)  # novelty flag explained
    assert any("split-conformal" in c for c in captions)
    table = at.dataframe[0].value
    assert {"nearest_train_identity", "unlike_training", "set_90%"} <= set(table.columns)


def test_only_the_owner_sees_the_publish_form(finished_job):
    """Typing the owner's name in another browser gives no right to publish their model."""
    at = app("app_pages/results.py", browser="b" * 32)
    assert not has_form_field(at.text_input, "publish", "repo")
    assert any("Only alice, who ran this search, or an admin" in shown(c.value)
               for c in at.caption)


def test_publish_form_bad_name_rejected_token_then_success(finished_job, monkeypatch):
    with FakeHub() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.delenv("HF_TOKEN", raising=False)
        at = app("app_pages/results.py")
        form = at.get("form")[0].proto.form
        assert form.enter_to_submit is False  # Enter in the token box does not publish
        # a name that says what the model is; the token's account is the namespace
        assert form_field(at.text_input, "publish", "repo").value == \
            "amp-esm2-classifier"
        # nobody chose a licence for the user
        assert form_field(at.selectbox, "publish", "license").value == ""
        form_field(at.selectbox, "publish", "license").set_value("cc-by-4.0")
        form_field(at.text_input, "publish", "repo").set_value("bad--name")
        form_field(at.text_input, "publish", "token").set_value(hub.token)
        publish_button(at).click().run()  # the form's submit button
        assert any("'--'" in shown(e.value) for e in at.error)
        assert not hub.requests  # nothing was sent
        form_field(at.text_input, "publish", "repo").set_value("peptides")
        form_field(at.text_input, "publish", "token").set_value("hf_not_a_valid_token")
        publish_button(at).click().run()
        assert any("rejected this token" in shown(e.value) for e in at.error)
        assert publish_button(at).label == "Retry"
        form_field(at.text_input, "publish", "token").set_value(hub.token)
        publish_button(at).click().run()
        assert not at.exception
        assert any(f"{hub.url}/alice/peptides" in shown(s.value) for s in at.success)
        assert "model.safetensors" in hub.repos["alice/peptides"].files
        card = hub.repos["alice/peptides"].files["README.md"].decode()
        assert "license: cc-by-4.0" in card
        # with the server's token the default name carries its account
        monkeypatch.setenv("HF_TOKEN", hub.token)
        again = app("app_pages/results.py")
        assert form_field(again.text_input, "publish", "repo").value == \
            "alice/amp-esm2-classifier"


def test_predict_page_never_lends_the_servers_token_or_disk(finished_job, monkeypatch,
                                                            tmp_path):
    """Issue 16, item 3: Hub downloads use the visitor's own token, never the server's; local
    paths load only inside the workspace's results."""
    model_dir = Path(finished_job.out_dir) / "best_model"
    outside = tmp_path / "outside"
    shutil.copytree(model_dir, outside)  # a real model, but not one of this workspace
    with FakeHub() as hub:
        publish(model_dir, PublishConfig("secret"), token=hub.token, endpoint=hub.url)
        assert hub.repos["alice/secret"].private
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("HF_TOKEN", hub.token)  # the server's token could read the repo
        at = app("app_pages/predict.py")
        at.radio(key="predict_source").set_value("From the Hugging Face Hub").run()
        at.text_input(key="predict_repo").set_value("/etc").run()  # the form shows up
        at.text_area(key="predict_text").set_value("GLFDIIKKIAESF\n")
        datasets = Path(finished_job.out_dir).parent.parent / "datasets"
        for ref in ("/etc", "..", "../..", str(outside), str(datasets)):
            at.text_input(key="predict_repo").set_value(ref)
            at.button(key="predict_go").click().run()
            assert not at.exception
            assert at.error, ref
            assert "neither a model of this workspace" in shown(at.error[0].value), ref
        at.text_input(key="predict_repo").set_value("alice/secret")
        at.button(key="predict_go").click().run()
        assert "Could not fetch 'alice/secret'" in shown(at.error[0].value)
        assert "give your own Hub token" in shown(at.error[0].value)
        assert "401" not in shown(at.error[0].value)  # words, not the client's status line
        at.text_input(key="predict_token").set_value(hub.token)
        at.button(key="predict_go").click().run()
        # (a random-weight model's card says it loses to the reference: that verdict only)
        assert all(shown(e.value).startswith("This model") for e in at.error)
        assert "1 prediction(s)" in shown(at.success[0].value)
        # the next visitor, without a token, does not get the model from the server's cache
        at.text_input(key="predict_token").set_value("")
        at.button(key="predict_go").click().run()
        assert at.error and "Could not fetch 'alice/secret'" in shown(at.error[0].value)


def test_the_ensemble_is_shown_published_and_predicts_from_the_hub(finished_job, monkeypatch):
    with FakeHub() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.delenv("HF_TOKEN", raising=False)
        at = app("app_pages/results.py")
        assert any(h.value == "Ensemble of the best architectures" for h in at.subheader)
        members = next(d.value for d in at.dataframe if "architecture" in d.value)
        assert len(members) == 2 and "architecture" in members
        assert any("ensemble's own temperature, T =" in c.value for c in at.caption)
        assert form_field(at.text_input, "publish_ensemble", "repo").value == \
            "amp-esm2-classifier-ensemble"
        form_field(at.text_input, "publish_ensemble", "token").set_value(hub.token)
        [b for b in at.button if b.label == "Publish"][1].click().run()  # the second form
        assert not at.exception
        files = hub.repos["alice/amp-esm2-classifier-ensemble"].files
        assert "modeling_esm_nas.py" in files and "ensemble" in files["README.md"].decode()
        monkeypatch.setenv("HF_TOKEN", hub.token)  # a private repository: the CLI's rule
        predictor = Predictor("alice/amp-esm2-classifier-ensemble")
        assert predictor.ensemble and len(predictor.models) == 2
        frame = predictor.predict_sequences(["GLFDIIKKIAESFKKLL"])
        assert "uncertainty" in frame


def _two_models_page() -> None:
    import streamlit as st

    from ui.publish import publish_form

    which = st.radio("Model", ["first", "second"], key="which")
    publish_form(f"/results/{which}/best_model", f"{which}-model")


def test_the_publish_form_starts_afresh_for_another_model(monkeypatch):
    """Issue 31, item 3: the form kept the repository name typed for the search shown before,
    so a model could be published under another model's name."""
    monkeypatch.delenv("HF_TOKEN", raising=False)
    at = AppTest.from_function(_two_models_page, default_timeout=60).run()
    assert form_field(at.text_input, "publish", "repo").value == "first-model"
    form_field(at.text_input, "publish", "repo").set_value("lab/my-first").run()
    form_field(at.checkbox, "publish", "private").uncheck().run()
    at.radio(key="which").set_value("second").run()
    assert not at.exception
    assert form_field(at.text_input, "publish", "repo").value == "second-model"
    assert form_field(at.checkbox, "publish", "private").value is True
    at.radio(key="which").set_value("first").run()
    # each model its default
    assert form_field(at.text_input, "publish", "repo").value == "first-model"
