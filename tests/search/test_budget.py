"""The budget rules on an in-memory study driven by ask and tell (no training): which finished
trials count, what a retry replaces, and how far the queue is topped up."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from nas_core.search.budget import counted_trials, in_budget, retryable, top_up
from nas_core.search.storage import requeue


def study() -> optuna.Study:
    return optuna.create_study(direction="maximize",
                               sampler=optuna.samplers.RandomSampler(seed=0))


def finish(s: optuna.Study, state: TrialState, **attrs) -> int:
    trial = s.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    if state is TrialState.COMPLETE:
        s.tell(trial, 0.5)
    else:
        s.tell(trial, state=state)
    return trial.number


def test_complete_pruned_and_failed_trials_count_cancelled_ones_do_not():
    s = study()
    done = finish(s, TrialState.COMPLETE)
    pruned = finish(s, TrialState.PRUNED)
    failed = finish(s, TrialState.FAIL)
    cancelled = finish(s, TrialState.FAIL, cancelled=True)
    running = s.ask().number
    trials = s.get_trials(deepcopy=False)
    assert in_budget(trials) == {done, pruned, failed}
    assert cancelled not in in_budget(trials) and running not in in_budget(trials)
    assert [t.number for t in counted_trials(s)] == [done, pruned, failed]
    assert [t.number for t in retryable(trials)] == [failed]  # not the cancelled one


def test_a_retry_takes_its_failed_trials_place():
    s = study()
    failed = finish(s, TrialState.FAIL)
    requeue(s, s.trials[failed])
    trials = s.get_trials(deepcopy=False)
    assert in_budget(trials) == set() and retryable(trials) == []
    retry = trials[-1]
    assert retry.state is TrialState.WAITING and retry.user_attrs["retry_of"] == failed
    assert retry.params == s.trials[failed].params


def test_top_up_queues_exactly_what_the_budget_lacks():
    s = study()
    assert top_up(s, 3) == 3
    assert top_up(s, 3) == 0  # waiting trials count: a second call queues nothing
    waiting = s.get_trials(states=(TrialState.WAITING,))
    assert len(waiting) == 3
    for _ in range(2):  # two of them finish (ask pops the queue)
        trial = s.ask()
        s.tell(trial, 1.0)
    # the third queued trial is taken and cancelled by its user: its place is free again
    finish(s, TrialState.FAIL, cancelled=True)
    assert len(s.get_trials(states=(TrialState.WAITING,))) == 0
    assert top_up(s, 3) == 1  # 2 counted + 1 queued again
    assert top_up(s, 5) == 2
    assert len(in_budget(s.get_trials())) + len(s.get_trials(states=(TrialState.WAITING,))) \
        == 5
