"""The study views and charts the Monitor page draws, without Streamlit."""

from __future__ import annotations

import altair as alt
import pandas as pd
import pytest

from nas_core.common.workspace import default_storage_url
from nas_core.publishing import charts
from nas_core.runtime.jobtable import Job
from nas_core.search.config import SearchConfig
from nas_core.search.space import SearchSpace
from nas_core.search.study import open_study, optimize
from nas_core.views.monitor import (
    StudyView,
    format_eta,
    job_progress,
    load_view,
    remaining_seconds,
)
from tests.helpers import split_example


def test_views_charts_and_progress_of_a_real_study(workspace, tiny_backbone):
    dataset = split_example()
    space = SearchSpace(backbones=(str(tiny_backbone),), max_epochs_range=(2, 2),
                        batch_sizes=(32,))
    config = SearchConfig("view", space, n_trials=5, objective="metric+size", sampler="nsga2")
    study = open_study(config, dataset)
    optimize(study, config, dataset)
    view = load_view("view", default_storage_url())
    assert view.multi_objective and view.counted() == 5 and view.running_trial() is None
    assert set(view.history["trial"]) <= set(view.trials["number"])
    for quantity in ("loss", "mae"):
        chart = charts.make_curves_chart(view.history, quantity, highlight=0)
        spec = chart.to_dict()
        assert spec["mark"]["type"] == "line"
        assert spec["encoding"]["x"]["axis"]["format"] == "d"  # epoch 1, never "1.000000"
        assert len(charts.curves_frame(view.history, quantity)) == 2 * len(view.history)
    assert isinstance(charts.make_best_so_far_chart(view.trials, "maximize", "roc_auc"),
                      alt.LayerChart)
    front = view.pareto_front()
    assert front and sorted(front) == sorted(t.number for t in study.best_trials)
    assert charts.make_pareto_chart(view.trials, "roc_auc", front).to_dict()
    job = Job(id="j", study_name="view", dataset_id="d", owner="a", state="finished",
              config=config.to_dict(), storage=default_storage_url(), out_dir="x", created=0)
    progress = job_progress(job, view)
    assert progress.done == 5 and progress.fraction == 1.0 and progress.best is not None
    assert load_view("no-such-study", default_storage_url()) is None


def test_eta_format():
    assert format_eta(None) == "—"
    assert format_eta(42) == "42 s"
    assert format_eta(125) == "2 min 05 s"
    assert format_eta(7300) == "2 h 01 min"
    assert charts.make_importance_chart(pd.DataFrame({"parameter": ["lr"],
                                                      "importance": [1.0]})).to_dict()


def _view(trials: list[dict], history: list[dict], counted: int) -> StudyView:
    frame = pd.DataFrame(trials)
    frame["counted"] = [i < counted for i in range(len(frame))]
    return StudyView("s", "roc_auc", ["maximize"], frame, pd.DataFrame(history))


def test_the_eta_moves_within_a_trial_and_counts_what_is_queued():
    """Trial 0 took 60 s; trial 1 has trained 2 of its 5 epochs at 10 s and is 3 s into the
    third; 2 more trials are queued."""
    history = [{"trial": 0, "epoch": e, "seconds": 12.0} for e in (1, 2, 3, 4, 5)]
    history += [{"trial": 1, "epoch": e, "seconds": 10.0} for e in (1, 2)]
    trials = [{"number": 0, "state": "COMPLETE", "duration_s": 60.0, "param_max_epochs": 5},
              {"number": 1, "state": "RUNNING", "duration_s": 23.0, "param_max_epochs": 5}]
    view = _view(trials, history, counted=1)
    assert remaining_seconds(view, 4, [5, 5]) == pytest.approx((3 * 10 - 3) + 2 * 60)
    trials[1]["duration_s"] = 29.0  # six seconds later, same epoch: the ETA went down
    assert remaining_seconds(_view(trials, history, 1), 4, [5, 5]) == pytest.approx(21 + 120)
    # before any epoch is measured there is no estimate, not a made-up one
    assert remaining_seconds(_view(trials[1:], [], 0), 4, [5, 5]) is None
    # a pinned epoch count is not a trial parameter: the search space's range is used
    pinned = [{k: v for k, v in t.items() if k != "param_max_epochs"} for t in trials]
    assert remaining_seconds(_view(pinned, history, 1), 4, [5, 5]) == pytest.approx(141)



def test_a_pruned_trial_counts_its_student_in_the_eta():
    """A running trial that prunes heads trains a student after its 5 teacher epochs."""
    history = [{"trial": 0, "epoch": e, "seconds": 10.0} for e in (1, 2)]
    trials = [{"number": 0, "state": "RUNNING", "duration_s": 20.0, "param_max_epochs": 5,
               "param_heads_kept": 0.5, "param_ffn_kept": 1.0}]
    assert remaining_seconds(_view(trials, history, 0), 1, [5, 5]) == pytest.approx(80)
    trials[0]["param_heads_kept"] = 1.0
    assert remaining_seconds(_view(trials, history, 0), 1, [5, 5]) == pytest.approx(30)


def test_a_slow_running_trial_never_reads_zero_seconds():
    """Issue 31, item 5: the last trial (a fine-tuning one after fast frozen trials, no epoch
    of its own measured yet) read '0 s' for its whole 337 s; its current epoch, already past
    the others' epoch time, is now taken as half done and the rest like it."""
    history = [{"trial": 0, "epoch": e, "seconds": 1.0} for e in range(1, 6)]
    trials = [{"number": 0, "state": "COMPLETE", "duration_s": 5.0, "param_max_epochs": 5},
              {"number": 1, "state": "RUNNING", "duration_s": 100.0, "param_max_epochs": 5}]
    left = remaining_seconds(_view(trials, history, counted=1), 2, [5, 5])
    assert left == pytest.approx(100 + 4 * 200)
    trials[1]["duration_s"] = 300.0  # still in its first epoch: the estimate grows, not 0
    assert remaining_seconds(_view(trials, history, counted=1), 2, [5, 5]) > left
