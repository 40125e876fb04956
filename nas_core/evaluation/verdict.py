"""A plain verdict on a tested model: one sentence that says when it should not be used (it
predicts almost only one class, it cannot be told apart from guessing, or the simple reference
model does better), and what to try next. Results, Predict and the model card all show it; a
model with nothing against it gets none."""

from __future__ import annotations

import numpy as np

from nas_core.common.metric_names import metric_name
from nas_core.common.report import Comparison, Verdict
from nas_core.common.tasks import Task
from nas_core.evaluation.calibration import flatten

ONE_CLASS_SHARE = 0.9  # predicted as one class: at least this share of the test set...
ONE_CLASS_EXCESS = 0.1  # ...and this much more than the class's true share
CHANCE = {"roc_auc": 0.5, "mcc": 0.0, "spearman": 0.0, "pearson": 0.0, "r2": 0.0,
          "spearman_per_protein": 0.0}
FEW_TRIALS, FEW_SEQUENCES, IMBALANCED = 20, 1000, 0.7


def one_class(task: Task, y: np.ndarray, output: np.ndarray,
              label_names: list[str] | None) -> str | None:
    """'it called 76 of 80 test proteins "0" (the test set has 52)', or None."""
    if task.is_regression:
        return None
    y, scores = flatten(task, y, output)  # per residue: every labelled residue
    scores = scores.reshape(len(y), -1)
    predicted = scores.argmax(1)
    if len(y) < 10:
        return None
    counts = np.bincount(predicted, minlength=scores.shape[1])
    top = int(counts.argmax())
    share, truth = counts[top] / len(y), float(np.mean(y == top))
    if share < ONE_CLASS_SHARE or share - truth < ONE_CLASS_EXCESS:
        return None
    name = (label_names or [])[top] if top < len(label_names or []) else str(top)
    unit = "residues" if task.per_residue else "sequences"
    return (f"it called {counts[top]:,} of {len(y):,} test {unit} '{name}' (the test set has "
            f"{int(np.sum(y == top)):,})")


def judge(task: Task, metric: str, y: np.ndarray, output: np.ndarray, *,
          test: dict[str, float | None], test_ci: dict | None,
          vs_reference: Comparison | None, reference_value: float | None,
          label_names: list[str] | None, n_trials: int, n_train: int,
          class_shares: dict[str, float] | None) -> Verdict | None:
    """The verdict on a model tested once on the held-out split (None: nothing against it)."""
    name, value = metric_name(metric), test.get(metric)
    said = f"{name} {value:.3f}" if value is not None else name
    problems: list[tuple[str, str]] = []
    if (called := one_class(task, y, output, label_names)) is not None:
        problems.append(("one_class", f"This model predicts almost only one class: {called}, "
                         f"so it barely tells the classes apart ({said})."))
    chance = CHANCE.get(metric)
    bounds = (test_ci or {}).get(metric)
    if chance is not None and bounds and bounds[0] <= chance and not problems:
        problems.append(("no_signal", f"This model cannot be told apart from guessing on the "
                         f"held-out test set: its {name} of {value:.3f} could be {chance:g} "
                         f"(95% interval {bounds[0]:.3f} to {bounds[1]:.3f})."))
    if vs_reference is not None and vs_reference.verdict == "worse":
        than = f" ({reference_value:.3f})" if reference_value is not None else ""
        problems.append(("worse_than_reference",
                         f"{'It is also' if problems else 'This model is'} worse than the "
                         f"simple reference model{than} on the same test sequences: until a "
                         "search beats it, the reference predicts this data better."))
    if not problems:
        return None
    return Verdict(kind=problems[0][0], sentence=" ".join(p[1] for p in problems),
                   advice=advice(task, n_trials, n_train, class_shares))


def advice(task: Task, n_trials: int, n_train: int,
           class_shares: dict[str, float] | None) -> list[str]:
    out = []
    if n_trials < FEW_TRIALS:
        out.append(f"search longer: this search tried {n_trials} architecture(s); the "
                   "Balanced or Thorough preset tries more")
    out.append("try a larger backbone (ESM-2 35M or 150M where this machine has them)")
    if n_train < FEW_SEQUENCES:
        out.append(f"add labelled sequences: the model learnt from {n_train:,}")
    if class_shares and not task.is_regression:
        top, share = max(class_shares.items(), key=lambda kv: kv[1])
        if share >= IMBALANCED:
            out.append(f"balance the classes: {share:.0%} of the training data is '{top}' "
                       "(more examples of the others help most; per residue, the search "
                       "can weight the classes)")
    return out
