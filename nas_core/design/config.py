"""What "test these next" looks for and how many to make: the settings the page and the command
line share (no model code)."""

from __future__ import annotations

from dataclasses import dataclass, field

from nas_core.common.records import help_text

RULES = {
    "thompson": "Thompson sampling: one plausible value per candidate drawn from the "
                "ensemble's spread; candidates win as often as they could plausibly be best "
                "(the default: it found the most hits in the design-loop benchmark).",
    "ei": "Expected improvement: how much a candidate is expected to beat the best value "
          "measured so far, counting both its prediction and its uncertainty.",
    "ucb": "Upper confidence bound: the prediction plus twice its uncertainty, so uncertain "
           "candidates get a chance (more exploration).",
    "greedy": "Prediction only: the highest predicted candidates, ignoring uncertainty (pure "
              "exploitation).",
}
GOALS = {"maximize": "maximise the measured value", "minimize": "minimise the measured value",
         "class": "find sequences of a chosen class"}


@dataclass(frozen=True)
class SuggestConfig:
    """What to look for and how many to make."""

    batch: int = field(default=20, metadata=help_text(
        "How many candidates to make and measure in this round."))
    goal: str = field(default="maximize", metadata=help_text(
        "maximize or minimize the measured value (regression models), or class: find "
        "sequences of a chosen class (classification models).", choices=tuple(GOALS)))
    target_class: str | None = field(default=None, metadata=help_text(
        "With goal 'class': the class to find (one of the model's classes)."))
    rule: str = field(default="thompson", metadata=help_text(
        "thompson (Thompson sampling, the default: it found the most hits in the "
        "design-loop benchmark), ei (expected improvement), ucb (upper confidence bound) or "
        "greedy (prediction only).", choices=tuple(RULES)))
    diversity: float = field(default=0.5, metadata=help_text(
        "Diversity penalty, 0 to 1: how strongly a candidate similar to one already in the "
        "batch (or to a training sequence, at half weight) is pushed down. 0: none."))
    seed: int = field(default=0, metadata=help_text("Makes Thompson sampling reproducible."))

    def __post_init__(self) -> None:
        if self.batch < 1:
            raise ValueError("the batch needs at least one candidate.")
        if self.goal not in GOALS:
            raise ValueError(f"goal must be one of {', '.join(GOALS)}, not '{self.goal}'.")
        if self.rule not in RULES:
            raise ValueError(f"rule must be one of {', '.join(RULES)}, not '{self.rule}'.")
        if not 0.0 <= self.diversity <= 1.0:
            raise ValueError("diversity must be between 0 and 1.")
