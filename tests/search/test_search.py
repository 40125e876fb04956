"""End-to-end searches on the tiny backbone and the shipped peptide data (CPU)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

import nas_core.search.objective as objective_mod
from nas_core.common.metrics import classification_metrics
from nas_core.evaluation.finalise import finalise
from nas_core.modeling.build import count_parameters
from nas_core.publishing.predict import Predictor
from nas_core.runtime.launch import run_search
from nas_core.search.budget import counted_trials
from nas_core.search.config import SearchConfig
from nas_core.search.space import SearchSpace
from nas_core.search.study import open_study, optimize
from tests.helpers import out_of_memory_once, split_example, tiny_space

REPORT_FIELDS = {"task", "metric", "n_trials", "n_complete", "n_pruned", "n_failed",
                 "wall_seconds", "best", "baseline", "study", "storage"}


def small_space(tiny_backbone, **kw) -> SearchSpace:
    return tiny_space(tiny_backbone, epochs=3, **kw)


def test_end_to_end_search_report_and_predict(tmp_path, workspace, tiny_backbone, peptides):
    config = SearchConfig("e2e", small_space(tiny_backbone), n_trials=4, seed=0)
    report = run_search(config, peptides, tmp_path / "out")
    on_disk = json.loads((tmp_path / "out" / "report.json").read_text())
    assert REPORT_FIELDS <= set(on_disk)
    assert on_disk["n_trials"] == 4 and on_disk["task"] == "binary"
    assert on_disk["metric"] == "roc_auc" and on_disk["storage"].startswith("sqlite:///")
    assert on_disk["n_complete"] + on_disk["n_pruned"] + on_disk["n_failed"] == 4
    best = on_disk["best"]
    assert {"params", "val", "test", "n_parameters"} <= set(best)
    assert 0.5 < best["val"]["roc_auc"] <= 1.0 and best["test"]["roc_auc"] is not None
    assert best["n_parameters"] > 0
    assert on_disk["baseline"]["test"]["roc_auc"] > 0.8  # the reference is a real model
    # predict reproduces the test metrics of the saved model, from the directory alone
    predictor = Predictor(tmp_path / "out" / "best_model")
    test = peptides.part("test")
    frame = predictor.predict_sequences(list(test["sequence"]))
    probs = frame[["p_AMP", "p_TM"]].to_numpy()
    again = classification_metrics(peptides.label_index(test["label"]), probs)
    for key, value in report.best.test.items():
        assert again[key] == pytest.approx(value, abs=1e-6), key


def test_a_pruned_trial_is_distilled_and_exports_its_smaller_model(tmp_path, workspace,
                                                                  tiny_backbone, peptides):
    space = small_space(tiny_backbone, adaptations=("lora", "full"), heads_kept=(0.5,),
                        ffn_kept=(0.25, 0.5), poolings=("mean",))
    config = SearchConfig("compact", space, n_trials=2, seed=0, pruner="none",
                          objective="metric+size", sampler="nsga2")
    report = run_search(config, peptides, tmp_path / "out")
    study = optuna.load_study(study_name="compact", storage=f"sqlite:///{workspace}/studies.db")
    for trial in study.get_trials(states=(TrialState.COMPLETE,)):
        attrs = trial.user_attrs
        assert attrs["compaction"]["heads"] == [2] * attrs["architecture"]["n_layers"]
        assert attrs["n_parameters"] < attrs["teacher_n_parameters"]
        assert trial.values[1] == attrs["n_parameters"]
        phases = [row["phase"] for row in attrs["history"]]
        assert phases[0] == "train" and phases[-1] == "distil"
        assert [row["epoch"] for row in attrs["history"]] == list(range(1, len(phases) + 1))
        assert set(trial.intermediate_values) == {
            row["epoch"] for row in attrs["history"] if row["phase"] == "train"} or \
            not trial.intermediate_values  # multi-objective studies report nothing
    best = report.best
    assert best.architecture["heads_kept"] == 0.5
    assert "recovered by distillation" in best.description
    # the exported model is the smaller one: counted as exported, predicting as tested
    predictor = Predictor(tmp_path / "out" / "best_model")
    assert count_parameters(predictor.model) == best.n_parameters
    test = peptides.part("test")
    probs = predictor.predict_sequences(list(test["sequence"]))[["p_AMP", "p_TM"]].to_numpy()
    again = classification_metrics(peptides.label_index(test["label"]), probs)
    assert again["roc_auc"] == pytest.approx(best.test["roc_auc"], abs=1e-6)


def test_test_split_is_never_seen_during_search(tmp_path, workspace, tiny_backbone, peptides,
                                                monkeypatch):
    seen: list[str] = []
    real = objective_mod.encode_split

    def spy(sequences, targets, tokenizer):
        seen.extend(sequences)
        return real(sequences, targets, tokenizer)

    monkeypatch.setattr(objective_mod, "encode_split", spy)
    config = SearchConfig("blind", small_space(tiny_backbone), n_trials=2)
    study = open_study(config, peptides)
    optimize(study, config, peptides)
    test = set(peptides.part("test")["sequence"])
    assert seen and not test & set(seen)
    assert set(peptides.part("valid")["sequence"]) <= set(seen)
    report = finalise(study, peptides, tmp_path / "out")
    assert report.best.test["accuracy"] is not None


def test_cancel_then_resume_continues_where_it_stopped(tmp_path, workspace, tiny_backbone,
                                                      peptides):
    config = SearchConfig("resume", small_space(tiny_backbone), n_trials=4, pruner="none")
    epochs = {"n": 0}

    class CountEpochs(objective_mod.SearchListener):
        def epoch_finished(self, number, record):
            epochs["n"] += 1

    # cancel during the third trial: two trials finish, the third stops between epochs
    study = open_study(config, peptides)
    optimize(study, config, peptides, listeners=[CountEpochs()],
             should_stop=lambda: epochs["n"] >= 7)
    states = [t.state for t in study.get_trials()]
    assert states[:2] == [TrialState.COMPLETE, TrialState.COMPLETE]
    assert states[2] == TrialState.FAIL
    assert study.trials[2].user_attrs["cancelled"] is True
    assert "cancelled" in study.trials[2].user_attrs["fail_reason"]
    assert len(counted_trials(study)) == 2
    first_two = [(t.number, t.values) for t in study.trials[:2]]
    # resume from a fresh process view of the same storage
    study2 = open_study(config, peptides)
    optimize(study2, config, peptides)
    trials = study2.get_trials()
    assert [(t.number, t.values) for t in trials[:2]] == first_two  # nothing lost or redone
    assert len(counted_trials(study2)) == 4
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 4


def test_resume_refuses_another_dataset(workspace, tiny_backbone, peptides):
    config = SearchConfig("guarded", small_space(tiny_backbone), n_trials=1)
    open_study(config, peptides)
    other = split_example("anticancer_vs_random.csv")
    with pytest.raises(ValueError, match="run on another dataset"):
        open_study(config, other)


def test_median_pruner_prunes(tmp_path, workspace, tiny_backbone, peptides):
    space = small_space(tiny_backbone, lr_range=(1e-6, 3e-2), max_epochs_range=(4, 4),
                        adaptations=("frozen",))
    config = SearchConfig("prune", space, n_trials=10, sampler="random", pruner="median",
                          seed=3, patience=4)
    study = open_study(config, peptides)
    optimize(study, config, peptides)
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert pruned, [t.state for t in study.trials]
    assert all(t.user_attrs["epochs_trained"] < 4 for t in pruned)
    report = finalise(study, peptides, tmp_path / "out")
    assert report.n_pruned == len(pruned)
    assert report.epochs_trained < report.epochs_without_pruning


def test_two_objectives_give_a_pareto_front(tmp_path, workspace, tiny_backbone, peptides):
    config = SearchConfig("pareto", small_space(tiny_backbone), n_trials=5, sampler="nsga2",
                          objective="metric+size")
    report = run_search(config, peptides, tmp_path / "out")
    study = optuna.load_study(study_name="pareto", storage=f"sqlite:///{workspace}/studies.db")
    assert len(study.directions) == 2
    front = report.pareto
    on_disk = json.loads((tmp_path / "out" / "report.json").read_text())["pareto"]
    assert front and all({"trial", "roc_auc", "n_parameters"} <= set(p) for p in on_disk)
    # no point of the front is dominated by another completed trial
    for p in front:
        for t in study.get_trials(states=(TrialState.COMPLETE,)):
            assert not (t.values[0] > p.value and t.values[1] < p.n_parameters)
    assert report.best.trial in {p.trial for p in front}


def test_a_failing_trial_does_not_stop_the_study(workspace, tiny_backbone, peptides,
                                                 second_build_fails):
    # trials that build a model (frozen mean/CLS trials may use cached features instead)
    config = SearchConfig("flaky", small_space(tiny_backbone, adaptations=("lora", "partial")),
                          n_trials=3, pruner="none")
    study = open_study(config, peptides)
    optimize(study, config, peptides)
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]
    assert study.trials[1].user_attrs["fail_reason"] == \
        "RuntimeError: simulated broken checkpoint"


def test_out_of_memory_is_retried_at_half_the_batch(workspace, tiny_backbone, peptides,
                                                    monkeypatch):
    batch_sizes: list[int] = []
    monkeypatch.setattr(objective_mod, "train",
                        out_of_memory_once(objective_mod.train, batch_sizes))
    config = SearchConfig("oom", small_space(tiny_backbone), n_trials=1)
    study = open_study(config, peptides)
    optimize(study, config, peptides)
    assert batch_sizes == [32, 16]
    assert study.trials[0].state == TrialState.COMPLETE
    assert study.trials[0].user_attrs["oom_retry_batch_size"] == 16


def test_history_is_stored_per_epoch_in_the_storage(workspace, tiny_backbone, peptides):
    config = SearchConfig("curves", small_space(tiny_backbone), n_trials=1, pruner="none")
    study = open_study(config, peptides)
    optimize(study, config, peptides)
    other_process_view = optuna.load_study(study_name="curves",
                                           storage=f"sqlite:///{workspace}/studies.db")
    history = other_process_view.trials[0].user_attrs["history"]
    assert [row["epoch"] for row in history] == list(range(1, len(history) + 1))
    for key in ("train_loss", "val_loss", "train_mae", "val_mae", "val_accuracy", "val_mcc",
                "val_roc_auc"):
        assert all(np.isfinite(row[key]) for row in history), key


@pytest.mark.parametrize("sampler", ["random", "gp", "tpe"])
def test_every_sampler_runs(workspace, tiny_backbone, peptides, sampler):
    config = SearchConfig(f"s-{sampler}", small_space(tiny_backbone, max_epochs_range=(2, 2)),
                          n_trials=3, sampler=sampler, pruner="hyperband")
    study = open_study(config, peptides)
    optimize(study, config, peptides)
    assert len(counted_trials(study)) == 3
    assert any(t.state == TrialState.COMPLETE for t in study.trials)


@pytest.mark.slow
def test_regression_search_on_gfp(tmp_path, workspace, tiny_backbone):
    dataset = split_example("gfp_fluorescence.csv")
    config = SearchConfig("gfp", small_space(tiny_backbone, max_epochs_range=(2, 2),
                                             adaptations=("frozen",)), n_trials=2)
    report = run_search(config, dataset, tmp_path / "out")
    assert report.task == "regression" and report.metric == "spearman"
    assert report.best.test["mae"] is not None
    history = optuna.load_study(study_name="gfp", storage=f"sqlite:///{workspace}/studies.db"
                                ).best_trial.user_attrs["history"]
    # training loss is reported in label units, like the validation loss
    assert history[-1]["train_loss"] < 10 and history[-1]["val_loss"] < 10


def test_same_seed_same_search_on_cpu(workspace, tiny_backbone, peptides):
    outcomes = []
    for name in ("seed-a", "seed-b"):
        config = SearchConfig(name, small_space(tiny_backbone), n_trials=3, seed=5)
        study = open_study(config, peptides)
        optimize(study, config, peptides)
        outcomes.append([(t.params, t.state, t.value) for t in study.trials])
    assert outcomes[0] == outcomes[1]


def test_a_rerun_with_a_larger_budget_draws_new_architectures(workspace, tiny_backbone,
                                                              peptides):
    """A seeded sampler restarted on the same study does not replay its earlier draws: a
    budget of N trials is N distinct architectures (before, trials 2 and 3 repeated 0 and 1)."""
    space = tiny_space(tiny_backbone, epochs=1)
    for budget in (2, 4):  # the CLI run again with a larger budget
        config = SearchConfig("rerun", space, n_trials=budget, sampler="random",
                              pruner="none")
        study = open_study(config, peptides)
        optimize(study, config, peptides)
    done = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(done) == 4
    assert len({json.dumps(t.params, sort_keys=True) for t in done}) == 4


def test_a_repeated_architecture_is_not_trained_again_and_a_spent_space_stops(
        workspace, tiny_backbone, peptides, monkeypatch):
    """A space of one point and a budget of three: the point is trained once; every repeated
    draw is skipped (never trained, out of the budget) and the search says the space ran out."""
    space = tiny_space(tiny_backbone, epochs=1, adaptations=("frozen",), poolings=("mean",),
                       layers_range=(1, 1), head_layers_range=(0, 0), lr_range=(1e-3, 1e-3),
                       weight_decay_range=(1e-4, 1e-4), dropout_range=(0.1, 0.1),
                       contrastive_weight_range=(0.0, 0.0), class_weighting=(False,))
    config = SearchConfig("one-point", space, n_trials=3, pruner="none")
    monkeypatch.setattr(objective_mod, "MAX_REPEATS", 6)  # 30 in use: the same rule, sooner
    epochs = {"n": 0}

    class CountEpochs(objective_mod.SearchListener):
        def epoch_finished(self, number, record):
            epochs["n"] += 1

    study = open_study(config, peptides)
    optimize(study, config, peptides, listeners=[CountEpochs()])
    trials = study.get_trials()
    assert [t.state for t in trials].count(TrialState.COMPLETE) == 1 and epochs["n"] == 1
    repeats = [t for t in trials if "repeat_of" in t.user_attrs]
    assert len(repeats) == objective_mod.MAX_REPEATS
    assert all(t.state == TrialState.FAIL and t.user_attrs["repeat_of"] == 0 for t in repeats)
    assert "not trained again" in repeats[0].user_attrs["fail_reason"]
    assert len(counted_trials(study)) == 1
    assert "stops after 1 distinct trials" in study.user_attrs["space_exhausted"]
    report = finalise(study, peptides, workspace / "out")
    assert report.n_trials == 1 and report.n_failed == 0 and not report.failures
    assert report.budget_note == study.user_attrs["space_exhausted"]


def test_frozen_trials_first_run_first_and_the_sampler_chooses_the_rest(workspace,
                                                                       tiny_backbone, peptides):
    """Issue 31, item 2: Quick compares many cheap frozen-backbone heads (depth, pooling, head
    drawn by the sampler) before the trials that may fine-tune; they count in the budget and a
    resumed study does not queue them again."""
    space = tiny_space(tiny_backbone, epochs=1, adaptations=("frozen", "lora"))
    config = SearchConfig("frozen-first", space, n_trials=7, frozen_first=5, seed=0)
    study = open_study(config, peptides)
    optimize(study, config, peptides)
    trials = sorted(study.trials, key=lambda t: t.number)
    assert len(trials) == 7
    assert [t.params["adaptation"] for t in trials[:5]] == ["frozen"] * 5
    assert len({json.dumps(t.params, sort_keys=True) for t in trials[:5]}) == 5  # five heads
    again = open_study(replace(config, n_trials=8), peptides)  # a resume: one more, not five
    assert len(again.trials) == 8
    with pytest.raises(ValueError, match="'frozen' among the adaptations"):
        SearchConfig("x", tiny_space(tiny_backbone, adaptations=("lora",)), frozen_first=2)
