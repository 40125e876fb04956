"""Guards for every private Optuna name the engine relies on (nas_core.search.optuna_internals).

When an Optuna release changes one of them, the test named after it fails here, loudly, instead
of the search silently creating trials beyond its budget or losing its stop signal."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from nas_core.search import optuna_internals as internals


def rdb_study(tmp_path, **kw) -> optuna.Study:
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 's.db'}", **kw)
    return optuna.create_study(study_name="s", storage=storage)


def test_optuna_still_has_what_we_rely_on():
    internals.check()  # raises, naming what changed, on an incompatible release


def test_queue_study_runs_only_queued_trials_then_stops(tmp_path):
    study = rdb_study(tmp_path)
    for x in (0.1, 0.2):
        study.enqueue_trial({"x": x})
    queue = internals.QueueStudy(study_name="s", storage=internals.study_storage(study))
    with pytest.raises(internals.BudgetReached):
        queue.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=10)
    trials = study.get_trials()
    assert [t.params["x"] for t in trials] == [0.1, 0.2]  # no third trial was created
    assert all(t.state == TrialState.COMPLETE for t in trials)


def test_storage_backend_url_heartbeat_and_grace(tmp_path):
    url = f"sqlite:///{tmp_path / 'h.db'}"
    storage = optuna.storages.RDBStorage(url, heartbeat_interval=7, grace_period=21)
    optuna.create_study(study_name="h", storage=storage)
    loaded = optuna.load_study(study_name="h", storage=storage)
    assert internals.study_storage(loaded) is not None
    assert internals.storage_url(loaded) == url
    assert internals.heartbeat_interval(loaded) == 7
    assert internals.grace_period(loaded) == 21
    assert internals.heartbeat_interval(optuna.create_study()) == 5  # in memory: none


def test_stop_requested_survives_the_end_of_optimize():
    study = optuna.create_study()
    assert not internals.stop_requested(study)

    def objective(trial: optuna.Trial) -> float:
        trial.study.stop()
        return 0.0

    study.optimize(objective, n_trials=5)
    assert len(study.trials) == 1 and internals.stop_requested(study)


def test_annotating_a_trial_left_by_another_process(tmp_path):
    study = rdb_study(tmp_path)
    study.ask()  # RUNNING, as a dead process would leave it
    (trial,) = study.get_trials(states=(TrialState.RUNNING,))
    internals.set_trial_user_attr(study, trial, "fail_reason", "interrupted")
    assert study.get_trials()[0].user_attrs["fail_reason"] == "interrupted"
