"""Read-only views of a study for the Monitor page: trials, per-epoch curves, progress.

Everything is read from the Optuna storage, so any process sees the same picture.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import optuna
import pandas as pd
from optuna.trial import TrialState

from nas_core.common.metric_names import metric_name
from nas_core.common.progress import POSITION_ATTR, TokenProgress
from nas_core.common.tasks import Task
from nas_core.runtime.jobtable import Job, JobKind, JobState
from nas_core.search.budget import in_budget, retryable
from nas_core.search.storage import database_errors, fail_reasons
from nas_core.search.storage import make_storage as _storage


@dataclass
class StudyView:
    name: str
    metric: str
    directions: list[str]
    trials: pd.DataFrame  # one row per trial
    history: pd.DataFrame  # one row per (trial, epoch)
    darts: pd.DataFrame | None = None  # one-shot search: (epoch, group, choice, weight)
    n_retryable: int = 0  # failed trials "Retry failed trials" would run again
    task: Task | None = None  # None for a study from before tasks were recorded
    tokens: TokenProgress | None = None  # a pretraining run: its running trial's position

    @property
    def multi_objective(self) -> bool:
        return len(self.directions) > 1

    def counted(self) -> int:
        """Finished trials in the budget (see :func:`nas_core.search.budget.in_budget`)."""
        return int(self.trials["counted"].sum())

    def pareto_front(self) -> list[int]:
        """Completed trials no other trial beats on both the metric and the size."""
        done = self.trials[self.trials["state"] == "COMPLETE"]
        sign = 1 if self.directions[0] == "maximize" else -1
        front = []
        for _, row in done.iterrows():
            at_least = (sign * done["value"] >= sign * row["value"]) & \
                (done["n_parameters"] <= row["n_parameters"])
            better = (sign * done["value"] > sign * row["value"]) | \
                (done["n_parameters"] < row["n_parameters"])
            if not (at_least & better).any():
                front.append(int(row["number"]))
        return front

    def running_trial(self) -> int | None:
        running = self.trials[self.trials["state"] == "RUNNING"]
        return int(running["number"].max()) if len(running) else None


# the trial table's columns as a person reads them (the metric's column is named per study)
TRIAL_WORDS = {"number": "trial", "state": "state", "n_parameters": "parameters",
               "epochs": "epochs", "duration_s": "time (s)", "description": "architecture",
               "fail_reason": "why it stopped", "worker": "worker", "device": "device"}


def trial_table(view: StudyView) -> pd.DataFrame:
    """The trials as the Monitor shows them: words for headers, the metric by its name."""
    columns = ["number", "state", "value", "n_parameters", "epochs", "duration_s",
               "description", "fail_reason", "worker", "device"]
    words = {**TRIAL_WORDS, "value": f"validation {metric_name(view.metric)}"}
    return view.trials[columns].rename(columns=words)


TRIAL_COLUMNS = ["number", "state", "value", "n_parameters", "description", "duration_s",
                 "epochs", "fail_reason", "host", "device", "worker", "cancelled",
                 "retry_of", "counted"]


def load_view(study_name: str, storage_url: str) -> StudyView | None:
    """The study as stored now; None if it does not exist (yet), or while its database does
    not answer (the page says so: :func:`nas_core.search.storage.current_outage`)."""
    try:
        study = optuna.load_study(study_name=study_name, storage=_storage(storage_url))
        all_trials = study.get_trials(deepcopy=False)
    except KeyError:
        return None
    except database_errors():
        return None
    trials, history = [], []
    waiting = (TrialState.WAITING,)
    reasons = fail_reasons(all_trials)
    counted = in_budget(all_trials)
    for t in all_trials:
        if t.state in waiting:  # a queued slot of the budget, not a trial yet
            continue
        value = None
        if t.values:
            value = t.values[0]
        elif t.intermediate_values:
            value = t.intermediate_values[max(t.intermediate_values)]
        duration = (t.duration.total_seconds() if t.duration else
                    (time.time() - t.datetime_start.timestamp() if t.datetime_start else None))
        epochs = t.user_attrs.get("history", [])
        trials.append({
            "number": t.number, "state": t.state.name, "value": value,
            "n_parameters": t.user_attrs.get("n_parameters"),
            "description": t.user_attrs.get("description", ""),
            "duration_s": round(duration, 1) if duration is not None else None,
            "epochs": len(epochs), "fail_reason": reasons.get(t.number, ""),
            "host": t.user_attrs.get("host", ""), "device": t.user_attrs.get("device", ""),
            "worker": (f"{t.user_attrs['host']} (pid {t.user_attrs.get('pid')})"
                       if "host" in t.user_attrs else ""),
            "cancelled": bool(t.user_attrs.get("cancelled", False)),
            "retry_of": t.user_attrs.get("retry_of"), "counted": t.number in counted,
            **{f"param_{k}": v for k, v in t.params.items()},
        })
        for row in epochs:
            history.append({"trial": t.number, "state": t.state.name, **row})
    trial_frame = pd.DataFrame(trials)
    if trial_frame.empty:
        trial_frame = pd.DataFrame(columns=TRIAL_COLUMNS)
    one_shot = study.user_attrs.get("darts") or study.user_attrs.get("darts_live")
    positions = [t.user_attrs[POSITION_ATTR] for t in all_trials
                 if POSITION_ATTR in t.user_attrs]
    return StudyView(study_name, study.user_attrs.get("metric", "value"),
                     [d.name.lower() for d in study.directions], trial_frame,
                     pd.DataFrame(history),
                     pd.DataFrame(one_shot["history"]) if one_shot else None,
                     n_retryable=len(retryable(all_trials)),
                     task=Task(study.user_attrs["task"]) if study.user_attrs.get("task")
                     else None,
                     tokens=TokenProgress.from_dict(positions[-1]) if positions else None)


@dataclass(frozen=True)
class Progress:
    done: int
    total: int | None
    fraction: float
    eta_seconds: float | None
    best: float | None


def job_progress(job: Job, view: StudyView | None) -> Progress:
    total = job.n_trials
    if view is None or view.trials.empty:
        return Progress(0, total, 0.0, _planned_eta(job), None)
    if job.kind is JobKind.PRETRAIN:
        return _pretrain_progress(job, view)
    done = view.counted()
    complete = view.trials[view.trials["state"] == "COMPLETE"]["value"].dropna()
    best = None
    if len(complete):
        best = float(complete.max() if view.directions[0] == "maximize" else complete.min())
    fraction = min(1.0, done / total) if total else 0.0
    eta = None
    if job.state is JobState.RUNNING:
        search = job.search_config if job.kind is JobKind.SEARCH else None
        eta = remaining_seconds(view, total, search.space.max_epochs_range if search else None)
        timeout = search.timeout if search else None
        if timeout and job.started:
            left = max(0.0, job.started + timeout - time.time())
            eta = left if eta is None else min(eta, left)
            if not total:
                fraction = min(1.0, (time.time() - job.started) / timeout)
        if eta is None:  # before its first epoch
            eta = _planned_eta(job)
    elif job.state is JobState.FINISHED:
        fraction = 1.0
    return Progress(done, total, fraction, eta, best)


def _planned_eta(job: Job) -> float | None:
    """What is left of the estimate made when the job was queued, while it runs."""
    if job.state is not JobState.RUNNING or not job.estimated_seconds or not job.started:
        return None
    return max(1.0, job.estimated_seconds - (time.time() - job.started))


def _pretrain_progress(job: Job, view: StudyView) -> Progress:
    """A pretraining run: tokens seen of the budget, at its measured speed; the best is the
    lowest held-out perplexity."""
    finished = job.state is JobState.FINISHED
    perplexities = view.history["val_perplexity"].dropna() if \
        "val_perplexity" in view.history else pd.Series([], dtype=float)
    best = float(perplexities.min()) if len(perplexities) else None
    tokens = view.tokens
    fraction = 1.0 if finished else tokens.fraction if tokens else 0.0
    eta = tokens.eta_seconds if tokens and job.state is JobState.RUNNING else None
    return Progress(int(finished), 1, fraction, eta, best)


def remaining_seconds(view: StudyView, total: int | None,
                      epochs_range: Sequence[int] | None = None) -> float | None:
    """Seconds until the budget is spent, re-estimated at every refresh: the running trials'
    epochs still to train at their own measured epoch time (less the time already spent in the
    current epoch; an epoch already longer than that is taken as half done, so a running trial
    never reads 0 s), plus the trials still queued at the mean finished-trial time, shared
    over the workers running now. None until one epoch has been measured."""
    trials, history = view.trials, view.history
    epoch_times = history["seconds"].dropna() if "seconds" in history else pd.Series([])
    if not len(epoch_times):
        return None
    mean_epoch = float(epoch_times.mean())
    finished = trials[trials["state"].isin(["COMPLETE", "PRUNED"])]["duration_s"].dropna()
    running = trials[trials["state"] == "RUNNING"]
    default_epochs = int(epochs_range[1]) if epochs_range else 10
    left_running, planned = 0.0, []
    for _, row in running.iterrows():
        own = history[history["trial"] == row["number"]]["seconds"].dropna()
        rate = float(own.mean()) if len(own) else mean_epoch
        epochs = row.get("param_max_epochs")
        epochs = int(epochs) if epochs is not None and epochs == epochs else default_epochs
        if _pruned(row):  # a student trains after the teacher, for the same budget
            epochs *= 2
        in_epoch = max(0.0, (row["duration_s"] or 0.0) - float(own.sum()))
        if in_epoch > rate:  # slower than expected (a fine-tuning trial among frozen ones):
            rate = 2 * in_epoch  # this epoch is taken as half done, and the rest like it
        planned.append(epochs * rate)
        if len(own) < epochs:  # the current epoch's rest, then the epochs still to come
            left_running += rate - in_epoch + (epochs - len(own) - 1) * rate
    per_trial = float(finished.mean()) if len(finished) else (
        sum(planned) / len(planned) if planned else default_epochs * mean_epoch)
    queued = max(0, (total or 0) - view.counted() - len(running))
    workers = max(1, len(running))
    return (left_running + queued * per_trial) / workers


def _pruned(row: pd.Series) -> bool:
    """Whether a trial prunes heads or feed-forward width (and distils a student)."""
    for name in ("param_heads_kept", "param_ffn_kept"):
        value = row.get(name)
        if value is not None and value == value and float(value) < 1.0:
            return True
    return False


def importances(study_name: str, storage_url: str, minimum: int = 5) -> pd.DataFrame | None:
    """Hyper-parameter importance (fANOVA) once enough trials have completed."""
    study = optuna.load_study(study_name=study_name, storage=_storage(storage_url))
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < minimum:
        return None
    try:
        target = (lambda t: t.values[0]) if len(study.directions) > 1 else None
        scores = optuna.importance.get_param_importances(study, target=target)
    except (RuntimeError, ValueError, ZeroDivisionError):
        return None  # e.g. every completed trial has the same parameters
    return pd.DataFrame({"parameter": list(scores), "importance": list(scores.values())})


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {(seconds % 3600) // 60:02d} min"
