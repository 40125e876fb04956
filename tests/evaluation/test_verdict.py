"""Issue 31, item 7: a model that predicts almost one class, cannot be told from guessing, or
does worse than the reference says so in one plain sentence with what to try next: in the
report (Results, Predict) and first on its model card."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import optuna

from nas_core.common.report import Comparison
from nas_core.common.tasks import Task
from nas_core.evaluation.finalise import finalise
from nas_core.evaluation.verdict import judge, one_class
from nas_core.publishing.card import render_card
from nas_core.publishing.predict import Predictor
from nas_core.runtime.launch import run_search
from nas_core.search.config import SearchConfig
from tests.helpers import split_example, tiny_space

NAMES = ["soluble", "membrane"]


def probabilities(predicted: np.ndarray) -> np.ndarray:
    out = np.full((len(predicted), 2), 0.2)
    out[np.arange(len(predicted)), predicted] = 0.8
    return out


def verdict_of(y, output, *, metric="mcc", test=None, ci=None, vs=None, shares=None):
    return judge(Task.BINARY, metric, y, output, test=test or {metric: 0.06},
                 test_ci=ci, vs_reference=vs, reference_value=0.41, label_names=NAMES,
                 n_trials=2, n_train=300, class_shares=shares)


def test_a_model_that_calls_nearly_everything_one_class_says_so():
    """The newcomer's first model: 76 of 80 test proteins called class 0, 52 of them are."""
    y = np.array([0] * 52 + [1] * 28)
    predicted = np.array([0] * 76 + [1] * 4)
    verdict = verdict_of(y, probabilities(predicted), shares={"soluble": 0.72,
                                                              "membrane": 0.28})
    assert verdict is not None and verdict.kind == "one_class"
    assert "called 76 of 80 test sequences 'soluble' (the test set has 52)" in verdict.sentence
    assert "MCC 0.060" in verdict.sentence
    text = " ".join(verdict.advice)
    assert "search longer" in text and "larger backbone" in text
    assert "add labelled sequences" in text and "72% of the training data is 'soluble'" in text


def test_guessing_and_worse_than_the_reference_each_have_their_sentence():
    y = np.array([0, 1] * 40)
    good_spread = probabilities(np.array([0, 1] * 40))
    assert verdict_of(y, good_spread, test={"mcc": 0.9}, ci={"mcc": [0.8, 0.97]}) is None
    guessing = verdict_of(y, good_spread, test={"mcc": 0.1}, ci={"mcc": [-0.1, 0.3]})
    assert guessing is not None and guessing.kind == "no_signal"
    assert "cannot be told apart from guessing" in guessing.sentence
    worse = verdict_of(y, good_spread, test={"mcc": 0.2}, ci={"mcc": [0.05, 0.4]},
                       vs=Comparison("mcc", -0.2, [-0.35, -0.05], "worse"))
    assert worse is not None and worse.kind == "worse_than_reference"
    assert worse.sentence.startswith("This model is worse than the simple reference model "
                                     "(0.410)")
    both = verdict_of(y, probabilities(np.zeros(80, int)),
                      vs=Comparison("mcc", -0.3, [-0.4, -0.2], "worse"))
    assert both is not None and both.kind == "one_class" and "It is also worse" in both.sentence
    assert one_class(Task.REGRESSION, y, np.zeros(80), None) is None


def test_finalise_puts_the_verdict_in_the_report_the_card_and_predict(tmp_path, workspace,
                                                                      tiny_backbone):
    """Labels shuffled at random: nothing can be learnt, and the report says so plainly."""
    data = split_example()
    rng = np.random.default_rng(0)
    frame = data.frame.copy()
    frame["label"] = rng.permutation(frame["label"].to_numpy())
    shuffled = replace(data, frame=frame)
    config = SearchConfig("shuffled", tiny_space(tiny_backbone, epochs=1), n_trials=1,
                          ensemble_size=1, pruner="none")
    report = run_search(config, shuffled, tmp_path / "out")
    assert report.verdict is not None, report.best.test
    assert report.verdict.kind in ("one_class", "no_signal", "worse_than_reference")
    assert report.verdict.advice
    card = render_card(report)
    assert "> **Before you use this model:**" in card.split("##")[0]  # before any section
    assert "**Not recommended for use as it is.**" in card
    assert "ranking or triaging" not in card
    assert Predictor(tmp_path / "out" / "best_model").verdict == report.verdict
    again = finalise(optuna.load_study(study_name="shuffled", storage=report.storage),
                    shuffled, tmp_path / "again", ensemble_size=1)
    assert again.verdict == report.verdict  # computed from the outputs, not left over


def test_per_residue_outputs_are_judged_residue_by_residue():
    """Per protein, ragged arrays; unlabelled residues (-100) do not count."""
    y = np.empty(3, dtype=object)
    outputs = np.empty(3, dtype=object)
    for i in range(3):
        y[i] = np.array([0, 1, 2, 1, -100] * 4)
        outputs[i] = np.tile([0.8, 0.1, 0.1], (20, 1))  # every residue called class 0
    called = one_class(Task.RESIDUE_CLASSIFICATION, y, outputs, ["C", "E", "H"])
    assert called == "it called 48 of 48 test residues 'C' (the test set has 12)"


def test_finalising_reports_each_step_with_the_time_left_measured(tmp_path, workspace,
                                                                 tiny_backbone):
    """Issue 31, item 5: finalising a stopped search (minutes) shows its steps and an
    estimate from the steps already timed, not a bare spinner."""
    data = split_example()
    config = SearchConfig("steps", tiny_space(tiny_backbone, epochs=1), n_trials=3,
                          ensemble_size=3, pruner="none")
    report = run_search(config, data, tmp_path / "out")
    heard = []
    finalise(optuna.load_study(study_name="steps", storage=report.storage), data,
             tmp_path / "again", progress=heard.append)
    assert [h.message for h in heard] == [
        "Testing the chosen model once on the held-out split", "Testing ensemble member 1 of 2",
        "Testing ensemble member 2 of 2", "Exporting the model and writing its card"]
    assert [(h.done, h.total) for h in heard] == [(0, 4), (1, 4), (2, 4), (3, 4)]
    assert heard[0].eta_seconds is None and all(h.eta_seconds > 0 for h in heard[1:])
