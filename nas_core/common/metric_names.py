"""The metrics' names, directions and meanings: what tables, charts, cards and the command line
show. Apart from their computation (scipy, scikit-learn), so that a page or the CLI parser that
only names a metric loads neither."""

from __future__ import annotations

from nas_core.common.tasks import Task

IGNORE_INDEX = -100  # a residue without a label among per-residue class indices

# metric name -> optimisation direction
DIRECTIONS = {"roc_auc": "maximize", "average_precision": "maximize", "mcc": "maximize",
              "accuracy": "maximize",
              "f1_macro": "maximize", "spearman": "maximize", "pearson": "maximize",
              "r2": "maximize", "mae": "minimize", "loss": "minimize", "rmse": "minimize",
              "accuracy_per_protein": "maximize", "spearman_per_protein": "maximize"}


# what a person reads for each metric, in every table, chart and card
METRIC_NAMES = {"roc_auc": "ROC-AUC", "average_precision": "Average precision (AUPR)",
                "mcc": "MCC", "accuracy": "Accuracy",
                "f1_macro": "macro F1", "spearman": "Spearman", "pearson": "Pearson",
                "r2": "R2", "mae": "MAE", "rmse": "RMSE", "loss": "Loss",
                "accuracy_per_protein": "Accuracy per protein",
                "spearman_per_protein": "Spearman per protein"}
# per-residue metrics are pooled over every labelled residue of the split, except these two,
# which are computed per protein and averaged (a long protein then counts as much as a short)
PER_PROTEIN = ("accuracy_per_protein", "spearman_per_protein")


def metric_name(key: str) -> str:
    return METRIC_NAMES.get(key, key)


def mae_meaning(task: Task) -> str:
    """What "MAE" means for this task: the same number in the curves, tables and the card."""
    if task == Task.RESIDUE_REGRESSION:
        return ("MAE: mean absolute error of the predicted value of each labelled residue, in "
                "the label's units.")
    if task == Task.RESIDUE_CLASSIFICATION:
        return ("MAE: mean absolute difference between each labelled residue's predicted class "
                "probabilities and its true class (1 for it, 0 for the others). 0 is perfect.")
    if task.label_kind == Task.REGRESSION:
        return "MAE: mean absolute error of the predicted value, in the label's units."
    return ("MAE: mean absolute difference between the predicted class probabilities and the "
            "true class (1 for it, 0 for the others); with two classes it is 1 minus the "
            "probability given to the true class. 0 is perfect.")
