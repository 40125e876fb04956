"""How far the held-out numbers can be trusted: bootstrap intervals, the paired comparison
with the reference, conformal coverage, and the trust blocks of a real report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nas_core.common.metrics import metric_ci
from nas_core.common.tasks import Task
from nas_core.evaluation.trust import compare, conformal
from nas_core.publishing.predict import Predictor
from nas_core.runtime.launch import run_search
from nas_core.search.config import SearchConfig
from nas_core.search.space import SearchSpace
from tests.helpers import mutate, split_example

AMINO = "ACDEFGHIKLMNPQRSTVWY"


def test_bootstrap_interval_covers_the_truth_at_the_nominal_rate():
    rng = np.random.default_rng(0)
    covered, trials = 0, 200
    for _ in range(trials):
        y = rng.integers(0, 2, 150)
        correct = rng.random(150) < 0.8  # true accuracy 0.8
        pred = np.where(correct, y, 1 - y)
        probs = np.eye(2)[pred] * 0.8 + 0.1
        low, high = metric_ci(Task.BINARY, y, probs, "accuracy", n=300,
                              seed=int(rng.integers(1e9)))
        covered += low <= 0.8 <= high
    assert 0.9 <= covered / trials <= 0.99  # nominal 95%


def test_paired_comparison_tells_a_real_difference_from_noise():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    good = np.stack([1 - (s := np.clip(y + rng.normal(0, 0.35, 300), 0, 1)), s], 1)
    noisy = np.stack([1 - (t := np.clip(y + rng.normal(0, 0.9, 300), 0, 1)), t], 1)
    assert compare(Task.BINARY, y, good, noisy, "roc_auc").verdict == "better"
    assert compare(Task.BINARY, y, noisy, good, "roc_auc").verdict == "worse"
    # the same model with a little jitter: any difference is noise
    twin = np.stack([1 - (u := np.clip(s + rng.normal(0, 0.05, 300), 0, 1)), u], 1)
    result = compare(Task.BINARY, y, good, twin, "roc_auc")
    assert result.verdict == "within noise" and result.ci is not None
    assert result.ci[0] < 0 < result.ci[1]


def test_conformal_interval_has_its_coverage():
    rng = np.random.default_rng(2)
    truth = rng.normal(size=4000)
    predicted = truth + rng.normal(0, 0.5, 4000)
    q = conformal(Task.REGRESSION, truth[:500], predicted[:500], 0.9)
    inside = np.abs(predicted[500:] - truth[500:]) <= q
    assert 0.87 <= inside.mean() <= 0.93


def test_report_card_and_predictions_carry_leakage_confidence_and_novelty(
        workspace, tiny_backbone, tmp_path):
    dataset = split_example(method="random")
    space = SearchSpace(backbones=(str(tiny_backbone),), adaptations=("frozen",),
                        max_epochs_range=(2, 2))
    report = run_search(SearchConfig("trust", space, n_trials=1), dataset, tmp_path / "out")
    assert report is not None and report.leakage is not None
    leak = report.leakage
    assert leak.n == 42 and sum(h.count for h in leak.histogram) == 42
    assert sum(r.n for r in report.by_identity) == 42
    assert leak.near_duplicates == pytest.approx(
        (dataset.part("test")["nearest_train_identity"] >= 0.9).mean())
    assert (report.baseline.test_ci or {})["roc_auc"] is not None
    assert report.vs_reference is not None and report.uncertainty is not None
    assert report.vs_reference.verdict in ("better", "worse", "within noise")
    assert 0 < report.uncertainty.threshold <= 1
    card = (tmp_path / "out" / "best_model" / "README.md").read_text()
    assert "How new are the test proteins?" in card and "reference 95% CI" in card
    assert "Against the reference model" in card
    image = tmp_path / "out" / "best_model" / "test_identity.png"
    assert "(test_identity.png)" in card and image.read_bytes()[:4] == b"\x89PNG"
    predictions = pd.read_csv(tmp_path / "out" / "test_predictions.csv")
    assert predictions["nearest_train_identity"].notna().all()

    model = Predictor(tmp_path / "out" / "best_model")
    train = list(dataset.part("train")["sequence"])
    longest = max(train, key=len)
    rng = np.random.default_rng(3)
    unrelated = "".join(rng.choice(list(AMINO), 60))
    frame = model.predict_sequences([mutate(longest, [len(longest) // 2]), unrelated])
    assert frame["nearest_train_identity"][0] >= 0.9 and not frame["unlike_training"][0]
    assert frame["nearest_train_identity"][1] < 0.3 and frame["unlike_training"][1]
    assert set(frame["set_90%"][0].split("|")) <= set(dataset.label_names)
    # a query identical to a training sequence shows its measured label beside the prediction,
    # and the columns a reader needs come first (issue 31, item 9)
    known = dataset.part("train").iloc[0]
    frame = model.predict_sequences([known["sequence"], unrelated])
    assert frame["known_label"].fillna("").tolist() == [known["label"], ""]
    assert list(frame.columns[:6]) == ["prediction", "known_label", "nearest_train_identity",
                                       "unlike_training", "set_90%", "certain"]
    assert frame.columns[-1] == "sequence"
    assert "known_label" not in model.predict_sequences([unrelated])  # only when there is one
