"""A simple reference model fitted in seconds on the same splits: what the search must beat.

Short aligned sequences (one length, at most 100 residues) get a one-hot encoding per
position; everything else gets amino-acid + dipeptide composition. Logistic regression for
classification, ridge regression for regression (scikit-learn).
"""

from __future__ import annotations

import time

import numpy as np
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from nas_core.common.metrics import compute_metrics
from nas_core.data.dataset import Dataset

AMINO = "ACDEFGHIKLMNPQRSTVWY"
_INDEX = np.full(128, -1, dtype=np.int64)


for _i, _a in enumerate(AMINO):
    _INDEX[ord(_a)] = _i


def _codes(seq: str) -> np.ndarray:
    return _INDEX[np.frombuffer(seq.encode("ascii"), dtype=np.uint8)]


def one_hot(sequences: list[str], length: int) -> np.ndarray:
    out = np.zeros((len(sequences), length, len(AMINO) + 1), dtype=np.float32)
    for i, seq in enumerate(sequences):
        codes = _codes(seq[:length])
        codes[codes < 0] = len(AMINO)  # X, B, Z, U, O
        out[i, np.arange(len(codes)), codes] = 1.0
    return out.reshape(len(sequences), -1)


def composition(sequences: list[str]) -> np.ndarray:
    """20 amino-acid frequencies + 400 dipeptide frequencies."""
    out = np.zeros((len(sequences), 20 + 400), dtype=np.float32)
    for i, seq in enumerate(sequences):
        codes = _codes(seq)
        valid = codes[codes >= 0]
        if len(valid):
            out[i, :20] = np.bincount(valid, minlength=20) / len(valid)
        pairs = codes[:-1] * 20 + codes[1:]
        pairs = pairs[(codes[:-1] >= 0) & (codes[1:] >= 0)]
        if len(pairs):
            out[i, 20:] = np.bincount(pairs, minlength=400) / len(pairs)
    return out


def fit_baseline(dataset: Dataset, *, evaluate_test: bool = True,
                 return_test_output: bool = False):
    """Fit on train, report validation (and test) metrics with the engine's metric code; with
    ``return_test_output``, also the test predictions (for paired comparisons)."""
    started = time.perf_counter()
    parts = {s: dataset.part(s) for s in ("train", "valid", "test")}
    lengths = dataset.frame["sequence"].str.len()
    # variants of one protein (deep mutational scans, peptide windows) differ by substitutions
    aligned = lengths.max() - lengths.min() <= 2 and lengths.max() <= 1022
    if aligned:
        length = int(lengths.max())
        features = lambda seqs: one_hot(seqs, length)  # noqa: E731
        name = f"one-hot residues ({length} positions)"
    else:
        features = composition
        name = "amino-acid + dipeptide composition"
    x_train = features(list(parts["train"]["sequence"]))
    y_train = dataset.label_index(parts["train"]["label"])
    if dataset.task == "regression":
        model = RidgeCV(alphas=np.logspace(-3, 4, 15))
        name = f"ridge regression on {name}"
    else:
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.5))
        name = f"logistic regression on {name}"
    model.fit(x_train, y_train)

    outputs = {}

    def score(split: str) -> dict:
        frame = parts[split]
        x = features(list(frame["sequence"]))
        y = dataset.label_index(frame["label"])
        if dataset.task == "regression":
            output = model.predict(x)
        else:
            output = np.zeros((len(x), len(dataset.label_names or [])))
            output[:, model.classes_] = model.predict_proba(x)
        outputs[split] = output
        return compute_metrics(dataset.task, y, output)

    report = {"model": name, "aligned": bool(aligned), "val": score("valid")}
    if evaluate_test and len(parts["test"]):
        report["test"] = score("test")
    report["seconds"] = round(time.perf_counter() - started, 3)
    return (report, outputs.get("test")) if return_test_output else report
