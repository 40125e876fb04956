"""The task enumeration carries what differs between tasks; stored text reads back as it."""

from __future__ import annotations

import json

import pytest

from nas_core.common.tasks import Task
from nas_core.runtime.jobtable import JobState


def test_each_task_knows_its_level_kind_metrics_and_loss():
    assert [t for t in Task if t.per_residue] == [Task.RESIDUE_CLASSIFICATION,
                                                  Task.RESIDUE_REGRESSION]
    assert [t for t in Task if t.is_regression] == [Task.REGRESSION, Task.RESIDUE_REGRESSION,
                                                    Task.PAIR_REGRESSION]
    assert [t for t in Task if t.per_pair] == [Task.PAIR_BINARY, Task.PAIR_MULTICLASS,
                                               Task.PAIR_REGRESSION]
    for base in (Task.BINARY, Task.MULTICLASS, Task.REGRESSION):
        assert base.for_pairs().label_kind is base and base.for_pairs().per_pair
    assert Task.PAIR_BINARY.default_metric == "average_precision"  # 1 positive in 10
    assert all(t.is_classification != t.is_regression for t in Task)
    assert {t.loss for t in Task} == {"cross_entropy", "mse"}
    for task in Task:
        assert task.default_metric in task.metrics and "loss" in task.metrics
        assert task.sequence_level.per_residue is False
        assert task.sequence_level.is_regression == task.is_regression
    assert "roc_auc" not in Task.REGRESSION.metrics
    assert "accuracy_per_protein" in Task.RESIDUE_CLASSIFICATION.metrics


def test_tasks_are_their_stored_text():
    assert Task("residue_regression") is Task.RESIDUE_REGRESSION
    assert json.dumps({"task": Task.BINARY}) == '{"task": "binary"}'
    assert Task.MULTICLASS == "multiclass" and f"{Task.BINARY}" == "binary"
    with pytest.raises(ValueError):
        Task("pairs")


def test_job_states_say_what_may_happen_next():
    assert {s for s in JobState if s.active} == {JobState.QUEUED, JobState.RUNNING,
                                                 JobState.CANCELLING}
    assert {s for s in JobState if s.can_resume} == {JobState.CANCELLED, JobState.INTERRUPTED,
                                                     JobState.FAILED}
    assert all(s.finished != s.active for s in JobState)
    assert JobState.FINISHED.finished and not JobState.FINISHED.can_resume
    assert JobState("cancelling").on_device and not JobState.QUEUED.on_device
