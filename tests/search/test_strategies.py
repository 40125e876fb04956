"""The reinforcement-learning controller and the one-shot (DARTS) search: they learn what they
should on constructed cases, complete real studies, and continue on resume."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

from nas_core.common.tasks import Task
from nas_core.publishing.charts import make_darts_chart
from nas_core.runtime.launch import run_search
from nas_core.search.budget import counted_trials
from nas_core.search.config import SearchConfig
from nas_core.search.space import SearchSpace
from nas_core.search.storage import configured_url, make_storage
from nas_core.search.strategies.darts import HeadOp, search
from nas_core.search.strategies.rl import ReinforceSampler
from nas_core.views.monitor import load_view
from tests.helpers import split_example

optuna.logging.set_verbosity(optuna.logging.WARNING)
CHOICES = ["a", "b", "c", "d"]


def rewarded(trial: optuna.Trial) -> float:
    """Reward 1 for choice 'c', nothing for the others; two dimensions of pure noise."""
    choice = trial.suggest_categorical("choice", CHOICES)
    trial.suggest_float("lr", 1e-5, 1e-1, log=True)
    trial.suggest_int("depth", 1, 6)
    return (1.0 if choice == "c" else 0.0) + 0.05 * np.sin(trial.number)


def choice_policy(sampler: ReinforceSampler, study: optuna.Study) -> np.ndarray:
    return sampler.policy(study, "choice", optuna.distributions.CategoricalDistribution(
        CHOICES))


def test_rl_controller_moves_toward_the_rewarded_choice():
    sampler = ReinforceSampler(seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    assert np.allclose(choice_policy(sampler, study), 0.25)  # uniform before any reward
    study.optimize(rewarded, n_trials=50)
    probs = choice_policy(sampler, study)
    assert probs[CHOICES.index("c")] > 0.7
    late = [t.params["choice"] for t in study.trials[-15:]]
    assert late.count("c") >= 10


def test_rl_controller_state_survives_a_resume(tmp_path):
    url = f"sqlite:///{tmp_path / 'rl.db'}"
    first = optuna.create_study(study_name="rl", storage=url, direction="maximize",
                                sampler=ReinforceSampler(seed=1))
    first.optimize(rewarded, n_trials=20)
    before = choice_policy(ReinforceSampler(seed=1), first)
    # another process, a new sampler object: the policy is the one the study holds
    resumed = optuna.load_study(study_name="rl", storage=url, sampler=ReinforceSampler(seed=1))
    assert np.allclose(choice_policy(ReinforceSampler(seed=1), resumed), before)
    assert before[CHOICES.index("c")] > 0.4  # it had learned something; it is not reset
    resumed.optimize(rewarded, n_trials=10)
    assert len(resumed.trials) == 30
    assert choice_policy(ReinforceSampler(seed=1), resumed)[CHOICES.index("c")] >= \
        before[CHOICES.index("c")] - 0.05


def test_darts_weights_concentrate_on_the_informative_layer():
    rng = np.random.default_rng(0)
    n, depths, hidden = 400, 6, 16
    y = rng.integers(0, 2, n)
    features = rng.normal(size=(n, 2, depths, hidden)).astype(np.float32)
    informative = 3  # only this layer's representation carries the label
    features[:, :, informative, :4] += 1.5 * (2 * y[:, None, None] - 1)
    result = search(features, y[:320], y[320:], 320, task=Task.BINARY, n_classes=2,
                    depths=list(range(1, depths + 1)), poolings=["mean", "cls"],
                    ops=[HeadOp(0), HeadOp(1, 32, "gelu")], epochs=30, seed=0)
    assert int(result.depth_weights.argmax()) == informative
    assert result.depth_weights[informative] > 0.5
    assert result.ranked(1)[0][0] == informative + 1  # keep 4 layers
    weights = [h["weight"] for h in result.history if h["group"] == "depth"
               and h["choice"] == str(informative + 1)]
    assert weights[-1] > weights[0]  # it grew over the epochs


@pytest.fixture
def dataset(workspace):
    return split_example()


@pytest.mark.parametrize("strategy", ["rl", "darts"])
def test_strategy_completes_a_study_and_resumes(strategy, workspace, tiny_backbone, dataset,
                                                tmp_path):
    space = SearchSpace(backbones=(str(tiny_backbone),), adaptations=("frozen",),
                        max_epochs_range=(2, 2), poolings=("mean", "cls"))
    config = SearchConfig(f"s-{strategy}", space, n_trials=3, sampler=strategy, pruner="none")
    report = run_search(config, dataset, tmp_path / "a")
    assert report.sampler == strategy and report.strategy
    assert report.n_complete == 3
    study = optuna.load_study(study_name=f"s-{strategy}", storage=make_storage(None))
    first = {t.number: t.params for t in study.trials}
    if strategy == "darts":
        one_shot = study.user_attrs["darts"]
        assert one_shot["history"] and len(one_shot["derived"]) == 3
        best = one_shot["derived"][0]
        assert study.trials[0].params["pooling"] == best["pooling"]
        assert study.trials[0].user_attrs["derived_by"] == "darts"
        view = load_view(f"s-{strategy}", configured_url())
        assert set(view.darts["group"]) == {"depth", "pooling", "head"}
        spec = make_darts_chart(view.darts).to_dict()  # what the Monitor draws
        assert spec["facet"]["column"]["field"] == "group"
    more = SearchConfig(f"s-{strategy}", space, n_trials=5, sampler=strategy, pruner="none")
    run_search(more, dataset, tmp_path / "b")
    study = optuna.load_study(study_name=f"s-{strategy}", storage=make_storage(None))
    assert len(counted_trials(study)) == 5  # continued: 3 kept, 2 more
    assert {n: study.trials[n].params for n in first} == first
    if strategy == "darts":  # the super-network was not trained again
        assert study.user_attrs["darts"]["history"] == one_shot["history"]
