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

from nas_core.datastore import DatasetStore, import_dataset
from nas_core.space import SearchSpace
from nas_core.storage import Heartbeat, fail_reasons, make_storage, public_url, register
from nas_core.study import SearchConfig, counted_trials, open_study
from tests.conftest import ASSETS, ROOT
from tests.pgserver import PASSWORD

FAST_HEARTBEAT = Heartbeat(interval=1, grace=4)


@pytest.fixture
def stored(workspace):
    return import_dataset(ASSETS / "amp_vs_transmembrane.csv", name="amp_vs_transmembrane.csv",
                          store=DatasetStore()).stored


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
    from nas_core.cli import main

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
