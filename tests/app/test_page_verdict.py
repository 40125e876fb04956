"""Issue 31, items 7 and 8, as a visitor sees them: a model that should not be used says so
first on Results and in Predict, and a search without an ensemble offers no ensemble (it
offered an empty 22-byte zip and a publish form)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from nas_core.common.access import local_person
from nas_core.data.store import DatasetStore
from nas_core.search.config import SearchConfig
from tests.helpers import has_form_field, open_page, shown, split_example, tiny_space

BROWSER = "v" * 32


def test_a_useless_model_says_so_and_a_lone_trial_offers_no_ensemble(workspace,
                                                                      tiny_backbone):
    from ui.engine import job_manager

    data = split_example()
    frame = data.frame.copy()
    frame["label"] = np.random.default_rng(1).permutation(frame["label"].to_numpy())
    stored = DatasetStore().save(replace(data, frame=frame), source="shuffled.csv",
                                 name="shuffled")
    manager = job_manager(str(workspace))
    job = manager.submit(SearchConfig("lone", tiny_space(tiny_backbone, epochs=1),
                                      n_trials=1), stored.id, local_person(BROWSER, "alice"))
    assert manager.wait(job.id).state == "finished"

    at = open_page("app_pages/results.py", BROWSER)
    first = shown(at.error[0].value)  # the first message on the page
    assert first.startswith("This model"), first
    assert any("What to try next" in shown(m.value) and "Search longer" in shown(m.value)
               for m in at.markdown)
    # one finished trial: no ensemble section, download or publish form; one line says why
    assert not any(h.value == "Ensemble of the best architectures" for h in at.subheader)
    assert not any(b.label == "Download the ensemble (zip)" for b in at.get("download_button"))
    assert not has_form_field(at.text_input, "publish_ensemble", "repo")
    assert any("No ensemble: fewer than two finished trials" in shown(c.value)
               for c in at.caption)

    at = open_page("app_pages/predict.py", BROWSER)
    at.text_area(key="predict_text").set_value("pep1,GLFDIIKKIAESF\n")
    at.button(key="predict_go").click().run()
    assert not at.exception
    assert shown(at.error[0].value) == first  # the same verdict beside the predictions
