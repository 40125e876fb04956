"""AppTest of the Compress section of the Results page and of a Compress job on Monitor."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from nas_core.common.access import local_person
from nas_core.compression.config import CompressConfig
from nas_core.runtime.launch import finalisable
from nas_core.search.config import SearchConfig
from tests.helpers import ROOT, form_field, shown, store_example, tiny_space

BROWSER = "c" * 32


@pytest.fixture
def trained_job(workspace, tiny_backbone):
    from ui.engine import job_manager

    stored = store_example(as_name="amp.csv")
    manager = job_manager(str(workspace))
    space = tiny_space(tiny_backbone, epochs=2, adaptations=("full",), layers_range=(3, 3),
                       poolings=("mean",))
    job = manager.submit(SearchConfig("cmp", space, n_trials=1), stored.id,
                         local_person(BROWSER, "carol"))
    assert manager.wait(job.id).state == "finished"
    return manager, manager.get(job.id)


def results_page(browser: str = BROWSER) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.session_state["browser_id"] = browser
    at.session_state["user_name"] = "carol"
    at.run()
    at.switch_page("app_pages/results.py").run()
    assert not at.exception, at.exception
    return at


def test_compress_button_runs_a_job_and_shows_the_curve(trained_job):
    manager, job = trained_job
    at = results_page()
    charts_before = len(at.get("vega_lite_chart"))
    button = next(b for b in at.button if b.label == "Compress")
    assert not button.disabled
    at.multiselect(key=f"compress_targets_{job.id}").set_value([0.5])
    button.click().run()
    assert not at.exception, at.exception
    runs = manager.compressions(job.id)
    assert len(runs) == 1 and runs[0].config["compress"]["targets"] == [0.5]
    finished = manager.wait(runs[0].id, timeout=300)
    assert finished.state == "finished", finished.error
    at.run()
    assert not at.exception, at.exception
    assert len(at.get("vega_lite_chart")) == charts_before + 2  # vs size, vs speed
    table = next(d.value for d in at.dataframe if "sequences/s" in d.value.columns)
    assert table["model"].tolist()[0] == "chosen model (uncompressed)"
    assert len(table) == 3  # the reference, the pruned variant, the depth-only cut
    assert table["parameters"].iloc[1] <= table["parameters"].iloc[0] * 0.5  # pruned
    assert table["layers"].iloc[2] < 3  # the depth-only cut nearest to half
    point = at.selectbox(key=f"compress_point_{runs[0].id}")
    assert "heads and width pruned" in point.format_func(point.value)
    assert form_field(at.text_input, "publish_compressed", "repo").value.endswith("pct")
    # the job's curves on Monitor, drawn from its own study
    at.switch_page("app_pages/monitor.py").run()
    at.selectbox(key="monitor_job").set_value(runs[0].id).run()
    assert not at.exception, at.exception
    assert at.get("vega_lite_chart")
    assert any("pruned to" in str(v) for d in at.dataframe for v in d.value.to_numpy().ravel())


def test_another_person_cannot_start_compress(trained_job):
    at = results_page(browser="d" * 32)
    button = next(b for b in at.button if b.label == "Compress")
    assert button.disabled


def test_a_frozen_model_is_not_offered_compress(workspace, tiny_backbone):
    from ui.engine import job_manager

    stored = store_example(as_name="amp.csv")
    manager = job_manager(str(workspace))
    space = tiny_space(tiny_backbone, epochs=1, adaptations=("frozen",))
    job = manager.submit(SearchConfig("frz", space, n_trials=1), stored.id,
                         local_person(BROWSER, "carol"))
    assert manager.wait(job.id).state == "finished"
    at = results_page()
    assert not any(b.label == "Compress" for b in at.button)
    assert any("frozen backbone" in shown(i.value) for i in at.info)


def test_compress_jobs_are_guarded_and_never_taken_for_a_search(trained_job):
    manager, job = trained_job
    carol = local_person(BROWSER, "carol")
    queued = manager.submit_compress(job.id, CompressConfig(targets=(0.5,)), carol)
    manager.cancel(queued.id, carol)
    stopped = manager.wait(queued.id, timeout=300)
    assert stopped.state == "cancelled"
    assert finalisable(stopped) == 0  # Results offers no "Test and export" for it
    with pytest.raises(ValueError, match="no trials to retry"):
        manager.retry_failed(stopped.id, carol)
    again = manager.submit_compress(job.id, CompressConfig(), carol)
    with pytest.raises(ValueError, match="already queued or running"):
        manager.submit_compress(job.id, CompressConfig(), carol)
    manager.cancel(again.id, carol)
    manager.wait(again.id, timeout=300)
    with pytest.raises(PermissionError):
        manager.submit_compress(job.id, CompressConfig(), local_person("e" * 32, "eve"))
