"""Backup and restore of the lab instance's state: the PostgreSQL study store + workspace."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import optuna
import pandas as pd
import pytest

from nas_core.common.access import Person
from nas_core.data.store import DatasetStore
from nas_core.publishing.predict import Predictor
from nas_core.runtime.backup import backup, restore
from nas_core.runtime.jobs import JobManager
from nas_core.search.config import SearchConfig
from nas_core.search.space import SearchSpace
from nas_core.search.storage import configured_url, make_storage, register
from tests.helpers import ROOT, store_example
from tests.pgserver import PASSWORD


def cli(*args, env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nas_core", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def snapshot(url: str) -> dict:
    study = optuna.load_study(study_name="lab", storage=make_storage(register(url)))
    return {t.number: (t.state, t.values, t.params, t.user_attrs, t.intermediate_values)
            for t in study.get_trials()}


@pytest.mark.slow
def test_backup_then_restore_after_losing_database_and_workspace(workspace, tiny_backbone,
                                                                 postgres, pg_url, tmp_path):
    env = {**os.environ, "ESM_NAS_HOME": str(workspace), "ESM_NAS_STORAGE": pg_url}
    stored = store_example(as_name="amp_vs_transmembrane.csv")
    manager = JobManager(workspace, devices=["cpu"], storage=pg_url)
    space = SearchSpace(backbones=(str(tiny_backbone),), max_epochs_range=(2, 2),
                        adaptations=("frozen",))
    job = manager.submit(SearchConfig("lab", space, n_trials=3), stored.id, Person("alice"))
    assert manager.wait(job.id).state == "finished"
    before = snapshot(pg_url)
    predictions = pd.read_csv(os.path.join(job.out_dir, "test_predictions.csv"))

    out = cli("backup", str(tmp_path / "backup"), env=env)
    assert out.returncode == 0, out.stderr
    assert "backed up 1 studies" in out.stdout and PASSWORD not in out.stdout
    assert {p.name for p in (tmp_path / "backup").iterdir()} == {
        "manifest.json", "studies.dump", "jobs.db", "workspace.tar.gz"}
    assert PASSWORD not in (tmp_path / "backup" / "manifest.json").read_text()

    # the disaster: database and workspace gone
    database = pg_url.rsplit("/", 1)[1]
    postgres.drop_database(database)
    postgres.create_database(database)
    shutil.rmtree(workspace)

    out = cli("restore", str(tmp_path / "backup"), env=env)
    assert out.returncode == 0, out.stderr
    assert snapshot(pg_url) == before  # every trial, value, curve and attribute
    restored = JobManager(workspace, devices=["cpu"], storage=pg_url)
    assert [(j.id, j.state, j.owner) for j in restored.jobs()] == [(job.id, "finished",
                                                                     "alice")]
    model = Predictor(os.path.join(job.out_dir, "best_model"))  # weights came back too
    again = model.predict_sequences(list(predictions["sequence"]))
    probabilities = [c for c in predictions.columns if c.startswith("p_")]
    difference = again[probabilities].to_numpy() - predictions[probabilities].to_numpy()
    assert abs(difference).max() < 1e-5

    refused = cli("restore", str(tmp_path / "backup"), env=env)
    assert refused.returncode == 1 and "not empty" in refused.stderr
    damaged = tmp_path / "backup" / "workspace.tar.gz"
    damaged.write_bytes(damaged.read_bytes()[:-10])
    refused = cli("restore", str(tmp_path / "backup"), "--force", env=env)
    assert refused.returncode == 1 and "damaged" in refused.stderr


def test_sqlite_workspace_backup_round_trip(workspace, tiny_backbone, tmp_path):
    url = configured_url(workspace)
    store_example(as_name="amp.csv")
    study = optuna.create_study(study_name="s", storage=make_storage(url))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    values = [t.value for t in study.trials]
    backup(tmp_path / "b", url, workspace)
    shutil.rmtree(workspace)
    restore(tmp_path / "b", url, workspace)
    again = optuna.load_study(study_name="s", storage=make_storage(url))
    assert [t.value for t in again.trials] == values
    assert len(DatasetStore(workspace).list()) == 1
