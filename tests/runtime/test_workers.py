"""Workers on a shared PostgreSQL study store: global budget, SIGKILL, bad inputs, Monitor."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState

from nas_core.cli import main
from nas_core.common.access import Person
from nas_core.data.store import DatasetStore
from nas_core.search.budget import counted_trials
from nas_core.search.config import Heartbeat, SearchConfig
from nas_core.search.space import SearchSpace
from nas_core.search.storage import (
    configured_url,
    fail_reasons,
    make_storage,
    public_url,
    register,
)
from nas_core.search.study import open_study
from tests.helpers import ASSETS, ROOT, store_example
from tests.pgserver import PASSWORD, PostgresServer

pytestmark = [pytest.mark.slow]

FAST_HEARTBEAT = Heartbeat(interval=1, grace=4)


@pytest.fixture
def stored(workspace):
    return store_example(as_name="amp_vs_transmembrane.csv")


def create_study(name, url, stored, backbone, n_trials=6, epochs=2) -> optuna.Study:
    """The study as the app or `search` leaves it: configured, its budget queued."""
    # LoRA runs the backbone: a trial lasts seconds, long enough for two workers to overlap
    space = SearchSpace(backbones=(str(backbone),), max_epochs_range=(epochs, epochs),
                        batch_sizes=(16,), adaptations=("lora",), lr_range=(1e-3, 1e-2))
    config = SearchConfig(name, space, n_trials=n_trials, pruner="none", patience=epochs)
    dataset = DatasetStore().load(stored.id)
    return open_study(config, dataset, storage=register(url), dataset_path=stored.path,
                      heartbeat=FAST_HEARTBEAT)


def start_worker(url, study, workspace, *extra) -> subprocess.Popen:
    env = {**os.environ, "ESM_NAS_STORAGE": url, "ESM_NAS_HOME": str(workspace),
           "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "nas_core", "worker", "--study", study, "--device", "cpu",
         "--heartbeat-interval", "1", "--grace-period", "4", *extra],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(process: subprocess.Popen, timeout: float = 300) -> str:
    out, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, out
    return out


def test_two_workers_share_an_exact_global_budget(workspace, tiny_backbone, stored, pg_url):
    study = create_study("two", pg_url, stored, tiny_backbone)
    assert len(study.get_trials(states=(TrialState.WAITING,))) == 6
    workers = [start_worker(pg_url, "two", workspace) for _ in range(2)]
    outputs = [finish(w) for w in workers]
    trials = study.get_trials()
    assert len(trials) == 6 and all(t.state == TrialState.COMPLETE for t in trials)
    numbers = [t.number for t in trials]
    assert sorted(numbers) == list(range(6))  # no duplicate, none missing
    by_worker = {w.pid: [t.number for t in trials if t.user_attrs["pid"] == w.pid]
                 for w in workers}
    assert all(by_worker.values()), by_worker  # both contributed
    assert sum(map(len, by_worker.values())) == 6
    assert all("budget reached" in out for out in outputs)
    assert PASSWORD not in "".join(outputs)  # the URL is printed without its password
    assert {t.user_attrs["device"] for t in trials} == {"cpu"}
    # the search's results, where the weights are (here: the shared workspace)
    env = {**os.environ, "ESM_NAS_STORAGE": pg_url, "ESM_NAS_HOME": str(workspace)}
    done = subprocess.run([sys.executable, "-m", "nas_core", "finalise", "--study", "two",
                           "--out", str(workspace / "final")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (workspace / "final" / "best_model" / "model.safetensors").is_file()
    assert f"trial {study.best_trial.number}:" in done.stdout


def test_sigkill_mid_trial_requeues_the_trial_and_keeps_the_rest(workspace, tiny_backbone,
                                                                  stored, pg_url):
    study = create_study("kill", pg_url, stored, tiny_backbone, n_trials=6, epochs=4)
    victim = start_worker(pg_url, "kill", workspace)
    survivor = start_worker(pg_url, "kill", workspace)

    def victim_mid_trial():
        for t in study.get_trials(states=(TrialState.RUNNING,)):
            if t.user_attrs.get("pid") == victim.pid and 1 <= len(t.user_attrs.get(
                    "history", [])) < 4:
                return t
        return None

    deadline = time.monotonic() + 240
    while (killed := victim_mid_trial()) is None:
        assert victim.poll() is None and time.monotonic() < deadline, "victim never ran a trial"
        time.sleep(0.1)
    before = {t.number: (t.values, t.user_attrs["pid"])
              for t in study.get_trials(states=(TrialState.COMPLETE,))}
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    out = finish(survivor, timeout=400)
    trials = {t.number: t for t in study.get_trials()}
    dead = trials[killed.number]
    assert dead.state == TrialState.FAIL
    retries = [t for t in trials.values() if t.user_attrs.get("retry_of") == killed.number]
    reason = fail_reasons(list(trials.values()))[killed.number]
    assert f"(pid {victim.pid}) stopped sending heartbeats" in reason
    assert f"run again as trial {retries[0].number}" in reason
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].params == dead.params and retries[0].user_attrs["pid"] == survivor.pid
    assert len(counted_trials(study)) == 6  # the budget is still reached, exactly
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    for number, (values, pid) in before.items():  # nothing completed was lost or redone
        assert trials[number].values == values and trials[number].user_attrs["pid"] == pid
    assert "budget reached" in out


def test_worker_refuses_other_data_unknown_study_and_says_when_the_db_is_gone(
        workspace, tiny_backbone, stored, pg_url, postgres, tmp_path, capsys):
    create_study("guarded", pg_url, stored, tiny_backbone, n_trials=1)
    other = tmp_path / "data.csv"
    frame = DatasetStore().load(stored.id).frame.iloc[:-5]
    frame.to_csv(other, index=False)
    os.environ["ESM_NAS_STORAGE"] = pg_url
    try:
        assert main(["worker", "--study", "guarded", "--data", str(other)]) == 2
        err = capsys.readouterr().err
        assert "not the one study 'guarded' was started on" in err and "fingerprint" in err
        assert main(["worker", "--study", "nope"]) == 2
        err = capsys.readouterr().err
        assert "no study 'nope'" in err and "studies there: guarded" in err
        dead = pg_url.replace(f":{postgres.port}/", ":1/")
        assert main(["worker", "--study", "guarded", "--storage", dead,
                     "--db-wait", "1"]) == 1
        err = capsys.readouterr().err
        assert "cannot reach the study database" in err and PASSWORD not in err
        assert "start the worker again" in err
    finally:
        del os.environ["ESM_NAS_STORAGE"]
    study = optuna.load_study(study_name="guarded", storage=make_storage(register(pg_url)))
    assert not study.get_trials(states=(TrialState.COMPLETE, TrialState.RUNNING))


def test_public_url_never_carries_the_password(pg_url):
    public = register(pg_url)
    assert PASSWORD not in public and public.startswith("postgresql://esmnas@127.0.0.1:")
    assert public_url(public) == public
    store = make_storage(public)  # the registered credentials are found again
    assert optuna.get_all_study_names(store) == []


def test_worker_reconnects_after_a_database_outage(workspace, tiny_backbone, stored):
    server = PostgresServer().start()  # its own server: this test stops it
    try:
        study = create_study("outage", server.url, stored, tiny_backbone, n_trials=4, epochs=3)
        worker = start_worker(server.url, "outage", workspace, "--db-wait", "60")
        deadline = time.monotonic() + 240
        while not counted_trials(study):
            assert worker.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        server.outage(seconds=3)
        out = finish(worker, timeout=400)
        assert "budget reached" in out
        # rides the outage out: the running trial's writes wait (before: it was lost and the
        # worker reconnected)
        assert "waiting for the study database" in out and "answers again" in out
        study = optuna.load_study(study_name="outage", storage=make_storage(register(
            server.url)))
        assert len(counted_trials(study)) == 4
        assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    finally:
        server.stop()


def test_monitor_shows_the_postgresql_study_with_every_worker(workspace, tiny_backbone, stored,
                                                              pg_url, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from ui.engine import job_manager

    monkeypatch.setenv("ESM_NAS_STORAGE", pg_url)  # a lab server's setting
    manager = job_manager(str(workspace))
    assert manager.storage == public_url(pg_url) and PASSWORD not in manager.storage
    study = create_study("lab", pg_url, stored, tiny_backbone, n_trials=6, epochs=4)
    helper = start_worker(pg_url, "lab", workspace)  # a second machine joining

    def helper_running() -> bool:
        return any(t.user_attrs.get("pid") == helper.pid
                   for t in study.get_trials(states=(TrialState.RUNNING, TrialState.COMPLETE)))

    deadline = time.monotonic() + 240
    while not helper_running():
        assert helper.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    config = SearchConfig.from_dict(study.user_attrs["search_config"])
    job = manager.submit(config, stored.id, Person("alice"))  # the app's own job on the same study
    assert manager.wait(job.id, timeout=400).state == "finished", manager.get(job.id).error
    finish(helper)
    assert len(counted_trials(study)) == 6

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state["user_name"] = "alice"
    at.run().switch_page("app_pages/monitor.py").run()
    assert not at.exception, at.exception
    assert at.dataframe[0].value["trials"].tolist() == ["6/6"]
    trials = at.dataframe[1].value
    assert len(trials) == 6 and set(trials["device"]) == {"cpu"}
    assert trials["worker"].str.contains(f"pid {helper.pid}").any()
    assert trials["worker"].str.contains(f"pid {os.getpid()}").any()
    assert len(at.get("vega_lite_chart")) >= 3  # loss and MAE curves, best so far
    page = " ".join(str(e.value) for e in at.markdown) + " ".join(
        str(e.value) for e in at.caption)
    assert PASSWORD not in page
    at.switch_page("app_pages/search.py").run()
    captions = " ".join(c.value for c in at.caption)
    assert public_url(pg_url) in captions and PASSWORD not in captions


def test_search_with_two_local_workers_on_sqlite(workspace, tiny_backbone, tmp_path):
    """`search --workers N` on one machine: the extra worker is a `worker` process; the default
    SQLite store serves both; the budget stays exact and the best trial is finalised."""
    import json

    env = {**os.environ, "ESM_NAS_HOME": str(workspace), "OMP_NUM_THREADS": "1"}
    env.pop("ESM_NAS_STORAGE", None)
    out = subprocess.run(
        [sys.executable, "-m", "nas_core", "search", str(ASSETS / "amp_vs_transmembrane.csv"),
         "--backbone", str(tiny_backbone), "--adaptation", "lora", "--max-epochs", "4",
         "--trials", "6", "--pruner", "none", "--patience", "4", "--study", "local2",
         "--device", "cpu", "--workers", "2", "--out", str(tmp_path / "out")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 workers: cpu, cpu" in out.stdout
    study = optuna.load_study(study_name="local2",
                              storage=make_storage(configured_url(workspace)))
    trials = study.get_trials()
    assert len(trials) == 6 and len(counted_trials(study)) == 6
    assert len({t.user_attrs["pid"] for t in trials}) == 2  # both processes ran trials
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["n_trials"] == 6 and report["best"]["test"]["roc_auc"] is not None


def test_the_search_rides_out_a_database_outage_and_keeps_its_running_trial(tmp_path,
                                                                            tiny_backbone):
    """Issue 30, item 3: PostgreSQL stopped for a while in the middle of a trial ended
    `search` with hundreds of lines of tracebacks and lost the trial. Now the trial keeps
    training, its writes wait for the database, and the search finishes."""
    server = PostgresServer().start()  # its own server: this test stops it
    try:
        env = {**os.environ, "ESM_NAS_HOME": str(tmp_path / "ws"), "OMP_NUM_THREADS": "1"}
        search = subprocess.Popen(
            [sys.executable, "-m", "nas_core", "search", str(ASSETS / "amp_vs_transmembrane.csv"),
             "--backbone", str(tiny_backbone), "--adaptation", "lora", "--trials", "1",
             "--max-epochs", "5", "--pruner", "none", "--patience", "5", "--study", "outage",
             "--storage", server.url, "--out", str(tmp_path / "out")],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        storage = make_storage(register(server.url))

        def trial_mid_way():
            try:
                study = optuna.load_study(study_name="outage", storage=storage)
            except KeyError:
                return None
            return next((t for t in study.get_trials(states=(TrialState.RUNNING,))
                         if 1 <= len(t.user_attrs.get("history", [])) <= 3), None)

        deadline = time.monotonic() + 240
        while (running := trial_mid_way()) is None:
            assert search.poll() is None and time.monotonic() < deadline, search.stdout.read()
            time.sleep(0.2)
        server.outage(seconds=8)
        out = finish(search, timeout=400)
        assert "Traceback" not in out and "UnboundLocalError" not in out
        assert "waiting for the study database" in out and "answers again" in out
        study = optuna.load_study(study_name="outage", storage=storage)
        kept = study.trials[running.number]
        assert kept.state == TrialState.COMPLETE and "retry_of" not in kept.user_attrs
        assert [t.state for t in study.trials] == [TrialState.COMPLETE]
        assert (tmp_path / "out" / "report.json").is_file()
    finally:
        server.stop()
