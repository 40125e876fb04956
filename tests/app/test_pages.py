"""The app's pages through Streamlit's AppTest, from the real entry point (app.py)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from optuna.trial import TrialState
from streamlit.testing.v1 import AppTest

from nas_core.common.access import Person
from tests.helpers import (
    ASSETS,
    ROOT,
    keyed,
    measured_search_page,
    shown,
    store_example,
    study_of,
)


@pytest.fixture
def stored(workspace):
    store_example(as_name="amp_vs_transmembrane.csv")
    return workspace


def app(user: str | None = "alice") -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    if user:
        at.session_state["user_name"] = user
    return at.run()


def manager(workspace):
    from ui.engine import job_manager

    return job_manager(str(workspace))


def start_search(at: AppTest, trials: int, study: str, adaptations=None) -> None:
    measured_search_page(at)
    assert not at.exception
    if adaptations:
        keyed(at.multiselect, "adv_", "_adaptations").set_value(adaptations)
    keyed(at.number_input, "search_trials_").set_value(trials)
    dataset_id = at.session_state["search_dataset_id"]
    at.text_input(key=f"search_study_{dataset_id}").set_value(study)
    at.run()
    at.button(key="search_start").click().run()
    assert not at.exception, at.exception


def wait_until(predicate, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_home_and_navigation(workspace):
    at = app()
    assert not at.exception
    assert "Find the best protein language model" in shown(at.markdown[0].value)


def test_search_monitor_results(stored):
    at = app()
    start_search(at, 2, "page-e2e")
    assert "is running" in shown(at.success[0].value)
    # no ESM-2 checkpoint is cached here: the default is the backbone pretrained here
    assert "pretrained here" in at.multiselect(key="search_backbones").format_func(
        at.multiselect(key="search_backbones").value[0])
    jobs = manager(stored).jobs()
    assert len(jobs) == 1 and jobs[0].owner_name == "alice"
    assert jobs[0].owner.startswith("local:")  # this browser, not the typed name
    assert manager(stored).wait(jobs[0].id).state == "finished"
    at.switch_page("app_pages/monitor.py").run()
    assert not at.exception
    table = at.dataframe[0].value
    assert table["state"].tolist() == ["finished"] and table["trials"].tolist() == ["2/2"]
    assert len(at.get("vega_lite_chart")) >= 3  # loss, MAE, best so far
    trials = at.dataframe[1].value
    assert len(trials) == 2
    # words, not field names, in the table a person reads
    assert {"trial", "validation ROC-AUC", "parameters", "time (s)"} <= set(trials.columns)
    assert not {"n_parameters", "duration_s", "roc_auc"} & set(trials.columns)
    assert any("MAE: mean absolute difference" in shown(c.value) for c in at.caption)
    at.switch_page("app_pages/results.py").run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert "Held-out test ROC-AUC" in metrics and metrics["Trials complete"] == "2 / 2"
    assert any("1 minus the probability given to the true class" in shown(c.value)
               for c in at.caption)  # what MAE means on a classification task
    assert "ROC-AUC 95% CI" in at.dataframe[0].value.columns
    assert any("Best architecture" in shown(m.value) for m in at.markdown)
    # reliability diagram, identity histogram, confusion matrix
    assert len(at.get("vega_lite_chart")) == 3
    assert [s.value for s in at.subheader[:2]] == ["Can the probabilities be trusted?",
                                                   "How new are the test proteins?"]
    assert any(m.label == "Calibration error (ECE), held-out test" for m in at.metric)
    assert at.get("download_button")


@pytest.mark.slow
def test_cancel_resume_and_owner_rights(stored):
    at = app()
    start_search(at, 12, "page-cancel", adaptations=["lora"])  # trials of seconds
    job = manager(stored).jobs()[0]
    study = study_of(job, stored)
    wait_until(lambda: len(study.get_trials(states=(TrialState.COMPLETE,))) >= 2)
    other = app(user="alice")  # another browser typing the owner's name gains nothing
    other.switch_page("app_pages/monitor.py").run()
    assert other.button(key="monitor_cancel").disabled
    assert any("only they or an admin can cancel" in shown(c.value) for c in other.caption)
    with pytest.raises(PermissionError, match="only alice, who owns this job"):
        manager(stored).cancel(job.id, Person("local:" + "0" * 32, "alice"))
    at.switch_page("app_pages/monitor.py").run()
    at.button(key="monitor_cancel").click().run()
    assert not at.exception
    # the click is acknowledged at once, before the trial has stopped
    assert at.dataframe[0].value["state"].tolist() in (["cancelling"], ["cancelled"])
    assert any("Cancelling" in shown(i.value) for i in at.info) or \
        manager(stored).get(job.id).state == "cancelled"
    assert manager(stored).wait(job.id).state == "cancelled"
    at.run()
    assert at.dataframe[0].value["state"].tolist() == ["cancelled"]
    assert any("test the best of them once" in shown(i.value) for i in at.info)
    # the finished trials are not thrown away: Monitor opens Results on this search (issue
    # 31, item 6), which tests and exports the best of them
    at.button(key="monitor_finalise").click().run()
    assert not at.exception
    assert any("page-cancel** stopped (cancelled)" in shown(i.value) for i in at.info)
    assert not at.metric  # no other search's numbers while this one has none
    at.switch_page("app_pages/results.py").run()  # (AppTest's next run is the page it opened)
    assert any("page-cancel** stopped (cancelled)" in shown(i.value) for i in at.info)
    other.switch_page("app_pages/results.py").run()
    assert other.button(key=f"results_finalise_{job.id}").disabled  # not the owner
    at.button(key=f"results_finalise_{job.id}").click().run()
    assert not at.exception, at.exception
    report = job.report()
    assert report is not None and "budget was not spent" in (report.budget_note or "")
    assert any("budget was not spent" in shown(w.value) for w in at.warning)
    assert "budget was not spent" in (Path(report.best.model_dir) / "README.md").read_text()
    assert at.metric[0].label.startswith("Held-out test")
    # resuming spends the rest of the budget and tests again at the end
    at.switch_page("app_pages/monitor.py").run()
    at.button(key="monitor_resume").click().run()
    assert manager(stored).wait(job.id).state == "finished"
    at.run()
    assert at.dataframe[0].value["state"].tolist() == ["finished"]
    assert job.report().budget_note is None


def test_a_job_without_trials_offers_nothing_to_resume_or_retry(stored):
    at = app()
    start_search(at, 4, "page-busy", adaptations=["lora"])
    start_search(at, 2, "page-never")
    never = next(j for j in manager(stored).jobs() if j.study_name == "page-never")
    user = Person(never.owner, never.owner_name)
    assert manager(stored).cancel(never.id, user).state == "cancelled"  # still queued
    at.switch_page("app_pages/monitor.py").run()
    at.selectbox(key="monitor_job").set_value(never.id).run()
    assert at.button(key="monitor_resume").disabled
    assert at.button(key="monitor_retry").disabled
    assert any("start a new search" in shown(i.value) for i in at.info)
    for job in manager(stored).jobs():
        manager(stored).wait(job.id)


def test_queue_holds_the_second_job(stored):
    at = app()
    start_search(at, 4, "page-first", adaptations=["lora"])
    start_search(at, 2, "page-second")
    assert "queued (position 1)" in shown(at.success[0].value)
    at.switch_page("app_pages/monitor.py").run()
    states = dict(zip(at.dataframe[0].value["study"], at.dataframe[0].value["state"]))
    assert states["page-second"] == "queued (#1 in queue)"
    for job in manager(stored).jobs():
        assert manager(stored).wait(job.id).state == "finished"


def test_search_page_refuses_bad_input(stored):
    at = app(user=None)
    at.switch_page("app_pages/search.py").run()
    assert at.button(key="search_start").disabled
    assert any("Enter your name" in shown(w.value) for w in at.warning)
    at.multiselect(key="search_backbones").set_value([]).run()
    assert any("at least one backbone" in shown(w.value) for w in at.warning)


def test_oidc_login_gates_the_instance(workspace):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.secrets["auth"] = {"redirect_uri": "http://localhost:8501/oauth2callback",
                          "cookie_secret": "x" * 32, "client_id": "lab",
                          "client_secret": "s",
                          "server_metadata_url": "https://idp.example/.well-known/"
                          "openid-configuration"}
    at.run()
    assert not at.exception
    assert at.button(key="sign_in").label == "Sign in"
    assert not at.text_input  # no name box, no page: the instance is closed until sign-in
    assert "sign in with your institutional account" in shown(at.markdown[0].value)


def test_search_page_offers_every_strategy_with_the_benchmark_advice(stored):
    at = app()
    at.switch_page("app_pages/search.py").run()
    assert not at.exception
    strategy = at.selectbox(key="search_sampler")
    assert {"rl", "darts"} <= set(strategy.options) or {
        "reinforcement learning (REINFORCE controller)",
        "gradient-based one-shot (DARTS)"} <= set(strategy.options)
    captions = " ".join(shown(c.value) for c in at.caption)
    assert "benchmarks/STRATEGIES.md" in captions and "reached the best validation" in captions
    strategy.set_value("darts").run()
    assert not at.exception


def test_the_dataset_choice_and_study_name_follow_the_user(workspace):
    """Issue 17, item 6: the study is named after the dataset chosen, and the choice survives
    a visit to another page."""
    from nas_core.data.options import SplitOptions
    from nas_core.data.store import DatasetStore, import_dataset

    first = store_example(as_name="first.csv")
    rows = (ASSETS / "amp_vs_transmembrane.csv").read_text().splitlines()
    other = workspace.parent / "second.csv"
    other.write_text("\n".join(rows[:300]) + "\n")  # other content: stored apart, newest
    assert import_dataset(other, store=DatasetStore(),
                          split_options=SplitOptions(method="random")).ok
    at = app()
    at.switch_page("app_pages/search.py").run()
    box = at.selectbox(key="search_dataset")
    assert box.options[0].startswith("second")
    box.set_value(first).run()
    assert at.session_state["search_dataset_id"] == first.id
    assert at.text_input(key=f"search_study_{first.id}").value.startswith("first-")
    at.switch_page("app_pages/data.py").run()
    at.switch_page("app_pages/search.py").run()
    assert not at.exception
    assert at.selectbox(key="search_dataset").value.id == first.id
    assert at.text_input(key=f"search_study_{first.id}").value.startswith("first-")


def test_the_search_page_estimates_from_this_machine(stored):
    """Issue 31, item 1: the page draws at once with a rough estimate, measures this machine
    in the background (it took 25 s before the page appeared), then shows the measured one."""
    at = app()
    at.switch_page("app_pages/search.py").run()
    assert not at.exception
    assert any("Estimated run time on this machine" in shown(i.value) for i in at.info)
    assert any("Measuring how fast this machine trains" in shown(c.value) for c in at.caption)
    from ui.engine import measurements

    wait_until(lambda: not measurements()._running, timeout=120)
    at.run()
    assert not any("Measuring how fast" in shown(c.value) for c in at.caption)
    assert any("chosen from this machine's measured speed to finish within 5 min"
               in shown(c.value) for c in at.caption)
    assert (stored / "throughput.json").is_file()  # remembered for the next visit
    assert not any("Studies are stored in" in shown(c.value) for c in at.caption) or \
        at.expander  # server paths sit in the administrator's expander


def test_monitor_says_when_a_search_waits_for_its_study_database(workspace, monkeypatch):
    """Issue 30, item 3: while a search of this server rides out a database outage, Monitor
    says so (the search keeps training; its writes wait)."""
    import time as clock

    import nas_core.search.storage as storage

    monkeypatch.setattr(storage, "_OUTAGE", [storage.Outage(clock.time() - 42,
                                                            "connection refused", 300.0)])
    at = app()
    at.switch_page("app_pages/monitor.py").run()
    assert not at.exception
    (warning,) = [w.value for w in at.warning if "Waiting for the study database" in w.value]
    assert "connection refused" in shown(warning) and "up to 300 s" in shown(warning)
    monkeypatch.setattr(storage, "_OUTAGE", [])
    at.run()
    assert not [w for w in at.warning if "Waiting for the study database" in w.value]
