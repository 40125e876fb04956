"""Everything that defines a search, saved in the study: a resume or a worker needs nothing
else."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from nas_core.common.metric_names import DIRECTIONS
from nas_core.common.tasks import Task
from nas_core.modeling.schedule import LR_RULES
from nas_core.search.space import SearchSpace

SAMPLERS = ("tpe", "random", "nsga2", "gp", "rl", "darts")
STRATEGIES = {"tpe": "Bayesian optimisation (TPE)", "random": "random search",
              "nsga2": "evolutionary (NSGA-II)", "gp": "Bayesian optimisation (Gaussian process)",
              "rl": "reinforcement learning (REINFORCE controller)",
              "darts": "gradient-based one-shot (DARTS)"}
PRUNERS = ("median", "hyperband", "none")
OBJECTIVES = ("metric", "metric+size")
CONFIG_ATTR = "search_config"
DEFAULT_ENSEMBLE_SIZE = 5
MAX_NAME = 100  # a study name becomes folder and file names
UNSAFE = "\"'\\`/<>|"  # quotes and path or shell characters


@dataclass(frozen=True)
class SearchConfig:
    """Everything that defines a search (saved in the study, so a resume needs nothing else)."""

    study_name: str = field(metadata={"help": "Name of the study; the same name resumes it."})
    space: SearchSpace = field(default_factory=lambda: SearchSpace(), metadata={
        "help": "The architectures the search may try."})
    n_trials: int | None = field(default=20, metadata={
        "help": "Total trials of the study (a resume runs only the missing ones)."})
    timeout: float | None = field(default=None, metadata={
        "help": "Wall-clock limit in seconds for this run of the search."})
    sampler: str = field(default="tpe", metadata={
        "help": "tpe (Bayesian), random, nsga2 (evolutionary), gp (Gaussian process), rl "
        "(REINFORCE controller) or darts (one-shot super-network on the frozen backbone, "
        "then its best architectures as trials).", "choices": SAMPLERS})
    pruner: str = field(default="median", metadata={
        "help": "Stops unpromising trials early: median, hyperband or none.",
        "choices": PRUNERS})
    objective: str = field(default="metric", metadata={
        "help": "metric: best validation score; metric+size: also as few parameters as "
        "possible (a Pareto front).", "choices": OBJECTIVES})
    metric: str | None = field(default=None, metadata={
        "help": "Validation metric to optimise; default ROC-AUC (binary), MCC (multiclass), "
        "Spearman (regression).", "choices": tuple(sorted(DIRECTIONS))})
    seed: int = field(default=0, metadata={"help": "Makes the search reproducible on CPU."})
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda or cuda:N."})
    patience: int = field(default=3, metadata={
        "help": "Early stopping: epochs without improvement before a trial stops."})
    max_tokens: int | None = field(default=32768, metadata={
        "help": "Cap on padded tokens per training batch, on top of the batch size: long "
        "sequences travel in smaller batches instead of running out of GPU memory."})
    min_batch_tokens: int | None = field(default=4096, metadata={
        "help": "Short sequences: a training batch takes more sequences than its batch size "
        "until it holds about this many padded tokens, so each step's fixed cost buys more "
        "data (peptides of 20 residues train in batches of about 180); 0 or None: exactly the "
        "batch size."})
    lr_scaling: str = field(default="sqrt", metadata={
        "help": "How the learning rate follows a batch filled beyond the architecture's batch "
        "size (min_batch_tokens): sqrt (times the square root of how many times larger, "
        "after a short warm-up; measured best, benchmarks/batches.py), linear, or none (the "
        "architecture's rate: fewer optimiser steps then train less per epoch).",
        "choices": LR_RULES})
    gradient_checkpointing: str = field(default="auto", metadata={
        "help": "Recompute activations instead of storing them when the backbone is trained: "
        "auto (backbones of 150M parameters and more), on or off."})
    cache_representations: bool = field(default=True, metadata={
        "help": "Frozen-backbone trials reuse pooled representations computed once per "
        "backbone and dataset instead of running the backbone again."})
    ensemble_size: int = field(default=DEFAULT_ENSEMBLE_SIZE, metadata={
        "help": "After the search, the best architectures combined into an ensemble (their "
        "calibrated probabilities or values averaged; their spread is the uncertainty of "
        "predictions and of 'test these next'): how many, different architectures preferred "
        "over near-copies. 1: no ensemble."})
    frozen_first: int = field(default=0, metadata={
        "help": "Trials at the start of the search that keep the backbone frozen: each trains "
        "only a head on representations computed once (a fraction of a second on a CPU), so "
        "many depths, poolings and heads are compared before the costlier fine-tuning trials; "
        "the sampler chooses the rest. Counted in the trial budget."})
    parent_study: str | None = field(default=None, metadata={
        "help": "The study this one continues after new measurements were added to its "
        "dataset (same study store): its best architectures are tried first, and the lineage "
        "is recorded in the study, the report and the model card."})
    workers: int | None = field(default=1, metadata={
        "help": "Worker processes on this machine: 1, a number, or None for one per GPU. "
        "Workers on other machines join with `python -m nas_core worker`."})

    def __post_init__(self) -> None:
        if not self.study_name or not self.study_name.strip():
            raise ValueError("the study needs a name.")
        if len(self.study_name) > MAX_NAME:
            raise ValueError(f"the study name has {len(self.study_name)} characters: keep it "
                             f"to {MAX_NAME} (it names folders and files).")
        odd = sorted({c for c in self.study_name if not c.isprintable() or c in UNSAFE})
        if odd:
            raise ValueError(f"the study name may not contain {' '.join(map(repr, odd))}: use "
                             "letters, digits, spaces and - _ . ( ) +.")
        if self.n_trials is None and self.timeout is None:
            raise ValueError("give a budget: a number of trials, a time limit, or both.")
        if self.n_trials is not None and self.n_trials < 1:
            raise ValueError("n_trials must be at least 1.")
        if self.timeout is not None and self.timeout <= 0:
            raise ValueError("timeout must be positive (seconds).")
        for name, allowed in (("sampler", SAMPLERS), ("pruner", PRUNERS),
                              ("objective", OBJECTIVES), ("lr_scaling", LR_RULES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, not "
                                 f"'{getattr(self, name)}'.")
        if self.metric is not None and self.metric not in DIRECTIONS:
            raise ValueError(f"unknown metric '{self.metric}'; choose from "
                             f"{', '.join(DIRECTIONS)}.")
        if not 1 <= self.ensemble_size <= 20:
            raise ValueError("ensemble_size must be between 1 (no ensemble) and 20.")
        if self.frozen_first < 0:
            raise ValueError("frozen_first cannot be negative.")
        if self.frozen_first and "frozen" not in self.space.adaptations:
            raise ValueError("frozen-backbone trials first need 'frozen' among the "
                             "adaptations.")
        if self.patience < 1:
            raise ValueError("patience must be at least 1.")
        if self.workers is not None and self.workers < 1:
            raise ValueError("workers must be at least 1 (or None: one per GPU).")
        if self.gradient_checkpointing not in ("auto", "on", "off"):
            raise ValueError("gradient_checkpointing must be auto, on or off.")

    @property
    def multi_objective(self) -> bool:
        return self.objective == "metric+size"

    def metric_for(self, task: Task) -> str:
        metric = self.metric or task.default_metric
        if metric not in task.metrics:
            raise ValueError(f"metric '{metric}' does not apply to a {task} task; choose from "
                             f"{', '.join(task.metrics)}.")
        return metric

    def to_dict(self) -> dict:
        data = asdict(self)
        data["space"] = self.space.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict) -> SearchConfig:
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        data["space"] = SearchSpace.from_dict(data.get("space", {}))
        return cls(**data)


HEARTBEAT_INTERVAL, GRACE_PERIOD = 30, 120  # seconds


@dataclass(frozen=True)
class Heartbeat:
    """How often a running trial says it is alive, and how long silence means it is dead."""

    interval: int = field(default=HEARTBEAT_INTERVAL, metadata={
        "help": "Seconds between a running trial's heartbeats."})
    grace: int = field(default=GRACE_PERIOD, metadata={
        "help": "Seconds without a heartbeat before a trial counts as dead and is queued "
        "again."})

    def __post_init__(self) -> None:
        if self.interval < 1 or self.grace <= self.interval:
            raise ValueError("the heartbeat interval must be at least 1 s and the grace period "
                             "longer than the interval.")
