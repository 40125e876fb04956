"""AppTest of the 'Test these next' page: a ranked batch from a finished regression search's
ensemble, its messages, and the next round started from measurements."""

from __future__ import annotations

import pandas as pd
import pytest

from nas_core.common.access import local_person
from nas_core.data.options import SplitOptions
from nas_core.data.splits import assign_splits
from nas_core.data.store import DatasetStore
from nas_core.data.validation import load_dataset
from nas_core.search.config import SearchConfig
from tests.helpers import ASSETS, open_page, shown, tiny_space

BROWSER = "b" * 32


@pytest.fixture
def gfp_job(workspace, tiny_backbone, tmp_path):
    from ui.engine import job_manager

    frame = pd.read_csv(ASSETS / "gfp_fluorescence.csv").drop(columns="split")
    frame.iloc[:120].to_csv(tmp_path / "gfp.csv", index=False)
    dataset = assign_splits(load_dataset(tmp_path / "gfp.csv").dataset,
                            SplitOptions(method="random"))[0]
    stored = DatasetStore().save(dataset, source="gfp.csv", name="gfp")
    manager = job_manager(str(workspace))
    config = SearchConfig("gfp-page", tiny_space(tiny_backbone, epochs=1), n_trials=2,
                          pruner="none", ensemble_size=2)
    job = manager.submit(config, stored.id, local_person(BROWSER, "alice"))
    assert manager.wait(job.id).state == "finished"
    return manager, manager.get(job.id), frame


@pytest.mark.slow  # over 20 s on two cores
def test_the_page_ranks_pasted_candidates_and_starts_the_next_round(gfp_job):
    manager, job, frame = gfp_job
    at = open_page("app_pages/suggest.py", BROWSER)
    assert "ensemble of 2" in at.caption[1].value
    candidates = "\n".join(f"c{i},{s}" for i, s in enumerate(frame["sequence"].iloc[120:160]))
    at.text_area(key="suggest_text").set_value(candidates)
    at.number_input(key="suggest_batch").set_value(5)
    at.radio(key="suggest_rule").set_value("ucb")
    at.button(key="suggest_go").click().run()
    assert not at.exception and not at.error
    assert "5 candidate(s) to make and measure next" in shown(at.success[0].value)
    batch = at.dataframe[0].value
    assert list(batch["rank"]) == [1, 2, 3, 4, 5]
    assert set(batch["id"]) <= {f"c{i}" for i in range(40)}
    assert (batch["uncertainty"] > 0).all()
    at.run()  # a rerun keeps the batch
    assert at.dataframe[0].value.equals(batch)
    # a bad paste: the message, not a traceback
    at.text_area(key="suggest_text").set_value("MK1LV\n")
    at.button(key="suggest_go").click().run()
    assert "invalid character" in shown(at.error[0].value)
    # the measurements came back: the dataset grows and the search runs again
    measured = frame.iloc[120:130][["ID", "sequence", "label"]].to_csv(index=False).encode()
    at.file_uploader(key="suggest_measured").set_value(("measured.csv", measured, "text/csv"))
    at.run()
    at.button(key="suggest_next_round").click().run()
    assert not at.exception and not at.error
    assert "gfp-page-round2" in shown(at.success[-1].value)
    again = next(j for j in manager.jobs() if j.study_name == "gfp-page-round2")
    assert DatasetStore().get(again.dataset_id).parent["id"] == job.dataset_id
    manager.cancel(again.id, local_person(BROWSER, "alice"))


def test_a_classification_search_asks_which_class_to_find(workspace, tiny_backbone):
    from tests.helpers import store_example
    from ui.engine import job_manager

    stored = store_example(as_name="amp.csv")
    manager = job_manager(str(workspace))
    job = manager.submit(SearchConfig("amp-page", tiny_space(tiny_backbone), n_trials=1,
                                      ensemble_size=1), stored.id,
                         local_person(BROWSER, "alice"))
    assert manager.wait(job.id).state == "finished"
    at = open_page("app_pages/suggest.py", BROWSER)
    assert "no ensemble" in shown(at.warning[0].value)
    at.selectbox(key=f"suggest_class_{job.id}").set_value("AMP")
    at.text_area(key="suggest_text").set_value("GLFDIIKKIAESFKKLL\nKWKLFKKIEKVGQNIRDGW\n")
    at.button(key="suggest_go").click().run()
    assert not at.exception and not at.error
    batch = at.dataframe[0].value
    assert "p_AMP" in batch and len(batch) == 2
