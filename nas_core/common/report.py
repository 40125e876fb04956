"""The report of a finished search (``report.json``): one frozen record type that finalise
writes and every reader shares (Results, the model card, publishing, predict, Compress, the
jobs, the CLI), as Optuna's ``FrozenTrial`` is shared by every sampler and storage.

Versioned: ``version`` is 2 since the report became this type; a report without it (version
1, written before) reads the same way, and an ensemble's card report from then (its members
under ``ensemble_members``) reads as one with ``subject = "ensemble"``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from nas_core.common.records import Record, json_default, optional
from nas_core.common.tasks import Task
from nas_core.common.workspace import interrupted

REPORT_VERSION = 2
REPORT_FILE = "report.json"

Metrics = dict[str, float | None]  # metric name -> value
Intervals = dict[str, list[float] | None]  # metric name -> [low, high] (bootstrap 95%)


@dataclass(frozen=True)
class Comparison(Record):
    """One model minus another on the same bootstrap resamples of the test set."""

    metric: str
    difference: float | None
    ci: list[float] | None
    verdict: str  # better | worse | within noise | undetermined


@dataclass(frozen=True)
class Verdict(Record):
    """Why a tested model should not be used as it is, in one plain sentence, and what to
    try next; a report without one has nothing against its model."""

    kind: str  # one_class | no_signal | worse_than_reference
    sentence: str
    advice: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        return self.sentence + (" Try next: " + "; ".join(self.advice) + "."
                                if self.advice else "")


@dataclass(frozen=True)
class IdentityBin(Record):
    """The test metric among test sequences of one identity band to the training set."""

    bin: str
    n: int
    value: float | None = None
    ci: list[float] | None = None


@dataclass(frozen=True)
class HistogramBin(Record):
    start: float = field(metadata={"key": "from"})
    end: float = field(metadata={"key": "to"})
    count: int = 0


@dataclass(frozen=True)
class Leakage(Record):
    """How close the test sequences are to the training set."""

    n: int
    median: float | None
    near_duplicates: float | None
    histogram: list[HistogramBin]
    bins: dict[str, int]
    warning: str | None = None


@dataclass(frozen=True)
class Uncertainty(Record):
    """The split-conformal threshold fitted on the validation split."""

    level: float
    threshold: float


@dataclass(frozen=True)
class ReliabilityBin(Record):
    start: float = field(metadata={"key": "from"})
    end: float = field(metadata={"key": "to"})
    confidence: float = 0.0
    accuracy: float = 0.0
    count: int = 0


@dataclass(frozen=True)
class Calibration(Record):
    """Temperature scaling fitted on the validation split; test calibration error around it."""

    temperature: float
    fitted_on: str
    ece_before: float | None
    ece_after: float | None
    reliability_before: list[ReliabilityBin]
    reliability_after: list[ReliabilityBin]


@dataclass(frozen=True)
class Baseline(Record):
    """The simple reference model fitted on the same splits."""

    model: str
    aligned: bool
    residues: int | None = optional()  # per-residue references: residues trained on
    val: Metrics | None = optional()
    test: Metrics | None = optional()
    seconds: float | None = optional()
    test_ci: Intervals | None = optional()


@dataclass(frozen=True)
class Throughput(Record):
    """Inference speed of a compressed variant beside its teacher (sequences per second)."""

    teacher: float | None
    model: float | None
    device: str = ""


@dataclass(frozen=True)
class BestModel(Record):
    """The chosen trial (or, on a variant's or an ensemble's card, the model in its place)."""

    trial: int | None
    params: dict[str, Any]
    architecture: dict[str, Any]  # read through ``Architecture.from_dict``
    description: str
    val: Metrics
    test: Metrics
    n_parameters: int
    best_epoch: int | None = None
    backbone_untrained: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)  # one row per epoch (a table)
    model_dir: str | None = optional()  # left out of published reports
    compaction: dict[str, Any] | None = optional()  # read through ``Compaction.from_dict``
    teacher_n_parameters: int | None = optional()
    teacher_val: Metrics | None = optional()
    throughput: Throughput | None = optional()
    test_ci: Intervals | None = optional()

    @property
    def backbone(self) -> str:
        return str(self.architecture.get("backbone", ""))

    @property
    def adaptation(self) -> str:
        return str(self.architecture.get("adaptation", ""))


@dataclass(frozen=True)
class EnsembleMember(Record):
    trial: int
    description: str
    val: float | None
    n_parameters: int
    temperature: float = 1.0


@dataclass(frozen=True)
class Skipped(Record):
    """A trial left out of the ensemble, and why."""

    trial: int
    reason: str


@dataclass(frozen=True)
class Ensemble(Record):
    """The best architectures combined; without members when fewer than two could take
    part (then ``note`` says why)."""

    size: int
    members: list[EnsembleMember]
    skipped: list[Skipped] = field(default_factory=list)
    note: str | None = optional()
    val: Metrics | None = optional()
    test: Metrics | None = optional()
    test_ci: Intervals | None = optional()
    n_parameters: int | None = optional()
    vs_best: Comparison | None = optional()
    vs_reference: Comparison | None = optional()
    by_identity: list[IdentityBin] | None = optional()
    uncertainty: Uncertainty | None = optional()
    temperature: float | None = optional()  # the averaged probabilities' own temperature
    ece_averaged: float | None = optional()  # test calibration error before it
    ece: float | None = optional()  # and after it
    verdict: Verdict | None = optional()
    model_dir: str | None = optional()

    @property
    def built(self) -> bool:
        return len(self.members) >= 2


@dataclass(frozen=True)
class Stats(Record):
    min: float
    median: float
    max: float
    mean: float
    std: float | None = optional()


@dataclass(frozen=True)
class DatasetSummary(Record):
    """Size, lengths, label distribution and splits of a stored dataset."""

    n_sequences: int
    task: Task
    length: Stats
    n_labelled_residues: int | None = optional()
    label: Stats | None = optional()  # regression: the values
    classes: dict[str, int] | None = optional()  # classification: sequences (residues) each
    splits: dict[str, int] | None = optional()
    # pairs: distinct proteins (lengths are theirs), and which proteins the test may share
    # with training (nas_core.data.pair_splits.SPLIT_KINDS)
    n_proteins: int | None = optional()
    pair_split: str | None = optional()


@dataclass(frozen=True)
class DatasetRef(Record):
    name: str
    fingerprint: str
    summary: DatasetSummary
    path: str | None = optional()  # the stored copy a worker or Compress reads


@dataclass(frozen=True)
class Failure(Record):
    trial: int
    reason: str


@dataclass(frozen=True)
class Lineage(Record):
    """Where a later round of a design loop comes from (also kept in its study)."""

    parent_study: str
    parent_dataset_fingerprint: str | None = None
    parent_dataset_name: str | None = None
    dataset_fingerprint: str | None = None
    added_sequences: int | None = None
    warm_start_trials: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class ParetoPoint:
    """A two-objective search's front: the metric's value and the size (its JSON names the
    value after the metric, so it is read and written by :class:`Report`)."""

    trial: int
    value: float
    n_parameters: int


@dataclass(frozen=True)
class Report(Record):
    """Everything finalise found; ``report.json`` is its JSON form."""

    study: str
    task: Task
    metric: str
    direction: str
    dataset: DatasetRef
    best: BestModel
    baseline: Baseline
    version: int = REPORT_VERSION
    storage: str | None = optional()  # left out of published reports
    objective: str = "metric"
    sampler: str | None = None
    pruner: str | None = None
    strategy: str | None = None
    n_trials: int = 0
    n_complete: int = 0
    n_pruned: int = 0
    n_failed: int = 0
    trial_seconds: float = 0.0
    epochs_trained: int = 0
    epochs_without_pruning: int | None = None
    failures: list[Failure] = field(default_factory=list)
    lineage: Lineage | None = optional()
    budget_note: str | None = optional()
    pareto: list[ParetoPoint] | None = optional()
    vs_reference: Comparison | None = optional()
    leakage: Leakage | None = optional()
    by_identity: list[IdentityBin] = field(default_factory=list)
    uncertainty: Uncertainty | None = optional()
    calibration: Calibration | None = optional()
    ensemble: Ensemble | None = optional()
    verdict: Verdict | None = optional()
    wall_seconds: float | None = optional()
    # "ensemble" on the ensemble's own model card: ``best`` is then the ensemble
    subject: str | None = optional()

    @classmethod
    def from_dict(cls, data: Any) -> Report:
        data = dict(data)
        data.setdefault("version", 1)  # written before the report had a version
        metric = data.get("metric", "")
        pareto = data.pop("pareto", None)
        if "ensemble_members" in data:  # an ensemble's card report of version 1
            data["subject"] = "ensemble"
        report = super().from_dict(data)
        if pareto is not None:
            report = replace(report, pareto=[ParetoPoint(int(p["trial"]), p[metric],
                                                         int(p["n_parameters"]))
                                             for p in pareto])
        return report

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        if self.pareto is not None:
            out["pareto"] = [{"trial": p.trial, self.metric: p.value,
                              "n_parameters": p.n_parameters} for p in self.pareto]
        return out

    @property
    def is_ensemble_card(self) -> bool:
        return self.subject == "ensemble"

    @property
    def wall_or_trial_seconds(self) -> float:
        return self.wall_seconds if self.wall_seconds is not None else self.trial_seconds

    def test_value(self) -> float | None:
        """The best model's held-out value of the search's metric."""
        return self.best.test.get(self.metric)

    def ensemble_card(self) -> Report:
        """The report as the ensemble's model card reads it: the ensemble in the best model's
        place."""
        ens = self.ensemble
        assert ens is not None and ens.built
        best = replace(self.best, trial=None, test=ens.test or {}, test_ci=ens.test_ci,
                       val=ens.val or {}, n_parameters=ens.n_parameters or 0, history=[],
                       description=f"an ensemble of {len(ens.members)} architectures")
        return replace(self, best=best, calibration=None, pareto=None,
                       vs_reference=ens.vs_reference, by_identity=ens.by_identity or [],
                       uncertainty=ens.uncertainty, verdict=ens.verdict, subject="ensemble")

    def public(self) -> Report:
        """Without anything local to this machine (paths, the storage URL)."""
        return replace(self, storage=None, best=replace(self.best, model_dir=None),
                       dataset=replace(self.dataset, path=None))

    def write(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, default=json_default))


def load_report(path: str | Path) -> Report | None:
    """``report.json`` of a run folder (or the file itself); None when there is none, or when
    writing the folder was interrupted (:func:`nas_core.common.workspace.interrupted`)."""
    path = Path(path)
    if path.is_dir():
        path = path / REPORT_FILE
    if not path.is_file() or interrupted(path.parent):
        return None
    return Report.from_dict(json.loads(path.read_text()))
