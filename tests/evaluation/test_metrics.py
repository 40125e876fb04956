"""The numpy metrics used in every bootstrap agree with scikit-learn's, ties included."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from nas_core.common.metrics import classification_metrics, one_metric
from nas_core.common.tasks import Task


@pytest.mark.parametrize("k", [2, 3, 5])
def test_classification_metrics_match_scikit_learn(k):
    rng = np.random.default_rng(k)
    for case in range(60):
        n = int(rng.integers(k + 2, 150))
        y = np.concatenate([np.arange(k), rng.integers(0, k, n - k)])
        probs = rng.random((n, k))
        if case % 2:
            probs = np.round(probs, 1) + 0.05  # many ties
        probs /= probs.sum(1, keepdims=True)
        pred = probs.argmax(1)
        ours = classification_metrics(y, probs)
        auc = skm.roc_auc_score(y, probs[:, 1]) if k == 2 else skm.roc_auc_score(
            y, probs, multi_class="ovr", average="macro")
        assert ours["roc_auc"] == pytest.approx(auc, abs=1e-12)
        assert ours["mcc"] == pytest.approx(skm.matthews_corrcoef(y, pred), abs=1e-12)
        assert ours["f1_macro"] == pytest.approx(skm.f1_score(
            y, pred, average="macro", labels=list(range(k)), zero_division=0), abs=1e-12)
        for name in ("roc_auc", "mcc", "f1_macro", "accuracy"):
            assert one_metric(Task.MULTICLASS if k > 2 else Task.BINARY, y, probs, name) == \
                pytest.approx(ours[name], abs=1e-12)


def test_degenerate_cases_match_scikit_learn():
    y = np.array([0, 0, 0, 1])
    probs = np.array([[1.0, 0.0]] * 4)
    ours = classification_metrics(y, probs)
    assert ours["mcc"] == skm.matthews_corrcoef(y, probs.argmax(1)) == 0.0
    assert classification_metrics(np.array([0, 0]), np.array([[0.6, 0.4], [0.7, 0.3]]))[
        "roc_auc"] is None  # one class only: undefined
