"""A pretraining run as seen by the Monitor: an Optuna study of its own in the study store
(the single source of truth), one trial whose per-measurement history is the curve. A
resumed run closes the trial its stopped process left open and continues the curve in a new
one."""

from __future__ import annotations

import math
import os
import socket
import warnings

import optuna
from optuna.trial import TrialState

from nas_core.common.progress import POSITION_ATTR, TokenProgress
from nas_core.pretraining.loop import History, Progress, Run
from nas_core.search.storage import make_storage

KIND = "pretrain"


class StudyProgress:
    """Writes a run's curve to its study after every measurement and its position every few
    seconds (cheap enough for a shared database)."""

    def __init__(self, study_name: str, storage: str | None, *, every_seconds: float = 5.0
                 ) -> None:
        self.study = optuna.create_study(study_name=study_name, storage=make_storage(storage),
                                         direction="minimize", load_if_exists=True)
        self.study.set_user_attr("metric", "perplexity")
        self.study.set_user_attr("kind", KIND)
        for old in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            self.study.tell(old.number, state=TrialState.FAIL)  # its process has stopped
        with warnings.catch_warnings():  # one process asks and tells: no heartbeat needed
            warnings.filterwarnings("ignore", message="Heartbeat of storage")
            self.trial = self.study.ask()
        self.trial.set_user_attr("host", socket.gethostname())
        self.trial.set_user_attr("pid", os.getpid())
        self.every, self.shown_rows, self.last = every_seconds, -1, 0.0
        self.run: Run | None = None

    def __call__(self, progress: Progress, run: Run) -> None:
        self.run = run
        rows = len(run.history.valid)
        if rows != self.shown_rows:  # a new measurement: the curve grows by a point
            self.shown_rows = rows
            self.trial.set_user_attr("history", curve(run.history))
        if progress.position.seconds - self.last >= self.every:
            self.last = progress.position.seconds
            self.trial.set_user_attr(POSITION_ATTR, TokenProgress(
                progress.position.tokens, progress.budget, progress.position.step,
                progress.loss, round(progress.tokens_per_second, 1)).to_dict())

    def finish(self, perplexity: float | None) -> None:
        """Close the trial with the final held-out perplexity, or as failed (None: cancelled
        or crashed; the run resumes from its checkpoint)."""
        if self.run is not None:
            self.trial.set_user_attr("history", curve(self.run.history))
        if perplexity is None:
            self.study.tell(self.trial, state=TrialState.FAIL)
        else:
            self.study.tell(self.trial, perplexity)


def curve(history: History) -> list[dict]:
    """One row per held-out measurement, in the Monitor's columns: the mean training loss
    since the last measurement beside the held-out loss (ln perplexity: the same cross-entropy
    over masked residues), the perplexities and the tokens seen."""
    rows = []
    for i, point in enumerate(history.valid):
        since = [r["loss"] for r in history.train
                 if (history.valid[i - 1]["step"] if i else -1) < r["step"] <= point["step"]]
        rows.append({"epoch": i, "tokens": point["tokens"], "seconds": point["seconds"],
                     "train_loss": sum(since) / len(since) if since else None,
                     "val_loss": math.log(point["model"]), "val_perplexity": point["model"],
                     "val_unigram_perplexity": point["unigram"], "phase": KIND})
    return rows
