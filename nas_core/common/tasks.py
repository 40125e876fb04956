"""What a dataset asks the model to predict, as one enumeration with behaviour (the shape of
``optuna.trial.TrialState``): per sequence, per residue or per pair of proteins, classes or
values. Its members are
their stored text, so datasets, studies and reports written before it read back unchanged."""

from __future__ import annotations

from enum import StrEnum


class Task(StrEnum):
    BINARY = "binary"
    MULTICLASS = "multiclass"
    REGRESSION = "regression"
    RESIDUE_CLASSIFICATION = "residue_classification"
    RESIDUE_REGRESSION = "residue_regression"
    PAIR_BINARY = "pair_binary"  # do A and B interact
    PAIR_MULTICLASS = "pair_multiclass"
    PAIR_REGRESSION = "pair_regression"  # how tightly (an affinity)

    @property
    def per_pair(self) -> bool:
        """One label per pair of proteins (A binds B), read from two sequences."""
        return self in (Task.PAIR_BINARY, Task.PAIR_MULTICLASS, Task.PAIR_REGRESSION)

    @property
    def label_kind(self) -> Task:
        """The kind of one row's label, whatever the row holds: a pair task's label is a
        class or a value like a sequence's (binary, multiclass or regression); other tasks
        are their own kind."""
        return _PAIR_BASE.get(self, self)

    def for_pairs(self) -> Task:
        """The pair task with this kind of label (binary -> pair_binary)."""
        return _FOR_PAIRS.get(self, self)

    @property
    def per_residue(self) -> bool:
        """One label per residue (binding sites, secondary structure), not per sequence."""
        return self in (Task.RESIDUE_CLASSIFICATION, Task.RESIDUE_REGRESSION)

    @property
    def is_regression(self) -> bool:
        """Values (per sequence or per residue), not classes."""
        return self in (Task.REGRESSION, Task.RESIDUE_REGRESSION, Task.PAIR_REGRESSION)

    @property
    def is_classification(self) -> bool:
        return not self.is_regression

    @property
    def loss(self) -> str:
        """The training loss: cross-entropy over classes, mean squared error over values
        (standardised); per residue, over labelled residues only."""
        return "mse" if self.is_regression else "cross_entropy"

    @property
    def sequence_level(self) -> Task:
        """The same kind of label, one per sequence (what a per-residue task's pooled residues
        are scored as)."""
        if self is Task.RESIDUE_REGRESSION:
            return Task.REGRESSION
        if self is Task.RESIDUE_CLASSIFICATION:
            return Task.MULTICLASS
        return self.label_kind

    @property
    def words(self) -> str:
        """How the app names the task to a person."""
        return _WORDS[self]

    @property
    def hub_kind(self) -> str:
        """The word a suggested Hub repository name ends in."""
        return _HUB_KIND[self]

    @property
    def metrics(self) -> tuple[str, ...]:
        """The metrics computed for this task, in the order tables show them."""
        return _METRICS[self]

    @property
    def default_metric(self) -> str:
        """What a search optimises unless told otherwise."""
        return _DEFAULT_METRIC[self]


_PAIR_BASE = {Task.PAIR_BINARY: Task.BINARY, Task.PAIR_MULTICLASS: Task.MULTICLASS,
              Task.PAIR_REGRESSION: Task.REGRESSION}
_FOR_PAIRS = {base: pair for pair, base in _PAIR_BASE.items()}
_WORDS = {Task.BINARY: "binary classification", Task.MULTICLASS: "multiclass classification",
          Task.REGRESSION: "regression",
          Task.RESIDUE_CLASSIFICATION: "per-residue classification",
          Task.RESIDUE_REGRESSION: "per-residue regression",
          Task.PAIR_BINARY: "pair classification (do two proteins interact)",
          Task.PAIR_MULTICLASS: "pair classification (classes of protein pairs)",
          Task.PAIR_REGRESSION: "pair regression (a value per pair of proteins)"}
_HUB_KIND = {Task.BINARY: "classifier", Task.MULTICLASS: "classifier",
             Task.REGRESSION: "regressor", Task.RESIDUE_CLASSIFICATION: "residue-classifier",
             Task.RESIDUE_REGRESSION: "residue-regressor", Task.PAIR_BINARY: "pair-classifier",
             Task.PAIR_MULTICLASS: "pair-classifier", Task.PAIR_REGRESSION: "pair-regressor"}
_CLASSIFICATION = ("roc_auc", "mcc", "accuracy", "f1_macro", "mae", "loss")
_REGRESSION = ("spearman", "pearson", "r2", "mae", "rmse", "loss")
_METRICS = {Task.BINARY: _CLASSIFICATION, Task.MULTICLASS: _CLASSIFICATION,
            Task.REGRESSION: _REGRESSION,
            Task.RESIDUE_CLASSIFICATION: ("mcc", "accuracy", "f1_macro", "roc_auc",
                                          "accuracy_per_protein", "mae", "loss"),
            Task.RESIDUE_REGRESSION: (*_REGRESSION, "spearman_per_protein"),
            # average precision first: at one interacting pair in ten, ROC-AUC flatters
            Task.PAIR_BINARY: ("average_precision", *_CLASSIFICATION),
            Task.PAIR_MULTICLASS: _CLASSIFICATION, Task.PAIR_REGRESSION: _REGRESSION}
_DEFAULT_METRIC = {Task.BINARY: "roc_auc", Task.MULTICLASS: "mcc", Task.REGRESSION: "spearman",
                   Task.RESIDUE_CLASSIFICATION: "mcc", Task.RESIDUE_REGRESSION: "spearman",
                   Task.PAIR_BINARY: "average_precision", Task.PAIR_MULTICLASS: "mcc",
                   Task.PAIR_REGRESSION: "spearman"}
