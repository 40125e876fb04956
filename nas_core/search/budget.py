"""The budget rules: which finished trials count, and topping the queue up to the budget.

The process that owns a search queues its whole trial budget as WAITING trials; workers only pop
queued trials, so the budget is global and exact across any number of workers."""

from __future__ import annotations

from collections.abc import Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def superseded(trials: Sequence[FrozenTrial]) -> set[int]:
    """Numbers of failed trials that a later trial runs again (they leave the budget)."""
    return {t.user_attrs["retry_of"] for t in trials if "retry_of" in t.user_attrs}


def in_budget(trials: Sequence[FrozenTrial]) -> set[int]:
    """Numbers of the finished trials that use up the budget: not cancelled by a user, not
    run again by a retry, not a repeat of an earlier architecture (never trained). The one
    rule behind the budget, the Monitor's count and resumes."""
    again = superseded(trials)
    return {t.number for t in trials if t.state in FINISHED
            and not t.user_attrs.get("cancelled") and t.number not in again
            and "repeat_of" not in t.user_attrs}


def retryable(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """Failed trials that "Retry failed" runs again: not cancelled, not already retried, not a
    repeated architecture."""
    again = superseded(trials)
    return [t for t in trials if t.state == TrialState.FAIL
            and not t.user_attrs.get("cancelled") and t.number not in again
            and "repeat_of" not in t.user_attrs]


def counted_trials(study: optuna.Study) -> list[FrozenTrial]:
    trials = study.get_trials(deepcopy=False)
    counted = in_budget(trials)
    return [t for t in trials if t.number in counted]


def top_up(study: optuna.Study, n_trials: int) -> int:
    """Queue empty WAITING trials until counted + running + waiting = ``n_trials``.

    This makes the budget global and exact across any number of workers: a worker only ever
    runs a queued trial (popping one is atomic in the database) and never creates one. Only the
    process that owns the study (the app's job, ``search``) tops up; workers do not.
    """
    trials = study.get_trials(deepcopy=False)  # one consistent read
    pending = sum(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in trials)
    missing = max(0, n_trials - len(in_budget(trials)) - pending)
    for _ in range(missing):
        study.enqueue_trial({})
    return missing
