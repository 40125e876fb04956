"""The study views and charts the Monitor page draws, without Streamlit."""

from __future__ import annotations

import altair as alt
import pandas as pd

from nas_core.common.workspace import default_storage_url
from nas_core.publishing import charts
from nas_core.runtime.jobtable import Job
from nas_core.search.config import SearchConfig
from nas_core.search.space import SearchSpace
from nas_core.search.study import open_study, optimize
from nas_core.views.monitor import format_eta, job_progress, load_view
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
