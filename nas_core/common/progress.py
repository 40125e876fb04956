"""How far a long job has come: one that counts tokens (a pretraining run, written to its study
and read by the Monitor), or one made of a few long steps (finalising a search)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from nas_core.common.records import Record

POSITION_ATTR = "position"  # the running trial's user attribute that holds it


@dataclass(frozen=True)
class TokenProgress(Record):
    tokens: int
    budget: int
    step: int = 0
    loss: float | None = None
    tokens_per_second: float = 0.0

    @property
    def fraction(self) -> float:
        return min(1.0, self.tokens / self.budget) if self.budget else 0.0

    @property
    def eta_seconds(self) -> float | None:
        if self.tokens_per_second <= 0:
            return None
        return max(0.0, (self.budget - self.tokens) / self.tokens_per_second)


@dataclass(frozen=True)
class StepProgress(Record):
    """How far a job made of a few long steps has come (finalising a search: the chosen model,
    each ensemble member, the export), with the time left estimated from the steps done."""

    message: str
    done: int
    total: int
    eta_seconds: float | None = None

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 0.0


class Steps:
    """Counts the steps of such a job and times them: the estimate is the mean measured step
    times the steps left (None before the first one ends). ``report`` receives each update."""

    def __init__(self, total: int, report: Callable[[StepProgress], None] | None) -> None:
        self.total, self.done, self.report = total, 0, report
        self.started = time.perf_counter()

    def start(self, message: str, *, total: int | None = None) -> None:
        """About to run a step (``total``: the count, now that it is known)."""
        if total is not None:
            self.total = max(total, self.done + 1)
        if self.report is not None:
            elapsed = time.perf_counter() - self.started
            eta = elapsed / self.done * (self.total - self.done) if self.done else None
            self.report(StepProgress(message, self.done, self.total, eta))

    def finished(self) -> None:
        self.done += 1
