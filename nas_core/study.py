"""The search: an Optuna study over the architecture space, then one honest test evaluation.

``run_search`` = ``open_study`` + ``optimize`` + ``finalise``. The study storage is the single
source of truth: the search configuration, the dataset fingerprint and every trial's per-epoch
history live there, so any process (the app, a CLI, a worker) sees the same state.
"""

from __future__ import annotations

import json
import logging
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from nas_core import homology, trust
from nas_core.backbones import ensure_loadable, resolve
from nas_core.baseline import fit_baseline
from nas_core.cache import RepresentationCache
from nas_core.card import write_model_card
from nas_core.data import Dataset
from nas_core.metrics import DEFAULT_METRIC, DIRECTIONS, bootstrap_ci, metrics_for
from nas_core.model import count_parameters, export_model, load_trial_checkpoint
from nas_core.objective import SearchData, SearchListener, TrialContext, objective
from nas_core.space import Architecture, SearchSpace
from nas_core.storage import Heartbeat, fail_reasons, make_storage, public_url
from nas_core.training import encode_split, evaluate, resolve_device
from nas_core.workspace import subdir

# Heartbeats, fail_stale_trials and TPE's `group` are stable in practice but still flagged
# experimental by Optuna; the warnings would only confuse users of the app and the CLI.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
optuna.logging.set_verbosity(logging.WARNING)

SAMPLERS = ("tpe", "random", "nsga2", "gp", "rl", "darts")
STRATEGIES = {"tpe": "Bayesian optimisation (TPE)", "random": "random search",
              "nsga2": "evolutionary (NSGA-II)", "gp": "Bayesian optimisation (Gaussian process)",
              "rl": "reinforcement learning (REINFORCE controller)",
              "darts": "gradient-based one-shot (DARTS)"}
PRUNERS = ("median", "hyperband", "none")
OBJECTIVES = ("metric", "metric+size")
CONFIG_ATTR = "search_config"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


@dataclass(frozen=True)
class SearchConfig:
    """Everything that defines a search (saved in the study, so a resume needs nothing else)."""

    study_name: str = field(metadata={"help": "Name of the study; the same name resumes it."})
    space: SearchSpace = field(default_factory=SearchSpace, metadata={
        "help": "The architectures the search may try."})
    n_trials: int | None = field(default=20, metadata={
        "help": "Total trials of the study (a resume runs only the missing ones)."})
    timeout: float | None = field(default=None, metadata={
        "help": "Wall-clock limit in seconds for this run of the search."})
    sampler: str = field(default="tpe", metadata={
        "help": "tpe (Bayesian), random, nsga2 (evolutionary), gp (Gaussian process), rl "
        "(REINFORCE controller) or darts (one-shot super-network on the frozen backbone, "
        "then its best architectures as trials)."})
    pruner: str = field(default="median", metadata={
        "help": "Stops unpromising trials early: median, hyperband or none."})
    objective: str = field(default="metric", metadata={
        "help": "metric: best validation score; metric+size: also as few parameters as "
        "possible (a Pareto front)."})
    metric: str | None = field(default=None, metadata={
        "help": "Validation metric to optimise; default ROC-AUC (binary), MCC (multiclass), "
        "Spearman (regression)."})
    seed: int = field(default=0, metadata={"help": "Makes the search reproducible on CPU."})
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda or cuda:N."})
    patience: int = field(default=3, metadata={
        "help": "Early stopping: epochs without improvement before a trial stops."})
    max_tokens: int | None = field(default=32768, metadata={
        "help": "Cap on padded tokens per training batch, on top of the batch size: long "
        "sequences travel in smaller batches instead of running out of GPU memory."})
    gradient_checkpointing: str = field(default="auto", metadata={
        "help": "Recompute activations instead of storing them when the backbone is trained: "
        "auto (backbones of 150M parameters and more), on or off."})
    cache_representations: bool = field(default=True, metadata={
        "help": "Frozen-backbone trials reuse pooled representations computed once per "
        "backbone and dataset instead of running the backbone again."})
    workers: int | None = field(default=1, metadata={
        "help": "Worker processes on this machine: 1, a number, or None for one per GPU. "
        "Workers on other machines join with `python -m nas_core worker`."})

    def __post_init__(self) -> None:
        if not self.study_name or not self.study_name.strip():
            raise ValueError("the study needs a name.")
        if self.n_trials is None and self.timeout is None:
            raise ValueError("give a budget: a number of trials, a time limit, or both.")
        if self.n_trials is not None and self.n_trials < 1:
            raise ValueError("n_trials must be at least 1.")
        if self.timeout is not None and self.timeout <= 0:
            raise ValueError("timeout must be positive (seconds).")
        for name, allowed in (("sampler", SAMPLERS), ("pruner", PRUNERS),
                              ("objective", OBJECTIVES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, not "
                                 f"'{getattr(self, name)}'.")
        if self.metric is not None and self.metric not in DIRECTIONS:
            raise ValueError(f"unknown metric '{self.metric}'; choose from "
                             f"{', '.join(DIRECTIONS)}.")
        if self.patience < 1:
            raise ValueError("patience must be at least 1.")
        if self.workers is not None and self.workers < 1:
            raise ValueError("workers must be at least 1 (or None: one per GPU).")
        if self.gradient_checkpointing not in ("auto", "on", "off"):
            raise ValueError("gradient_checkpointing must be auto, on or off.")

    @property
    def multi_objective(self) -> bool:
        return self.objective == "metric+size"

    def metric_for(self, task: str) -> str:
        metric = self.metric or DEFAULT_METRIC[task]
        if metric not in metrics_for(task):
            raise ValueError(f"metric '{metric}' does not apply to a {task} task; choose from "
                             f"{', '.join(metrics_for(task))}.")
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


def make_sampler(name: str, seed: int, multi_objective: bool) -> optuna.samplers.BaseSampler:
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=8)
    if name == "rl":
        from nas_core.rl import ReinforceSampler

        return ReinforceSampler(seed=seed)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=4,
                                         warn_independent_sampling=False)
    # TPE also for two objectives (Optuna 5 default); passed explicitly, always seeded
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=4, multivariate=True,
                                      group=True)


def make_pruner(name: str, max_epochs: int) -> optuna.pruners.BasePruner:
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(2, max_epochs),
                                              reduction_factor=3)
    return optuna.pruners.NopPruner()


def open_study(config: SearchConfig, dataset: Dataset, *, root=None,
               storage: str | None = None, dataset_path: str | None = None,
               heartbeat: Heartbeat | None = None) -> optuna.Study:
    """Create the study, or load it to resume (refusing another dataset or task), and queue
    the trials still missing from the budget.

    The study records everything a worker needs to join: the configuration, the task, the
    dataset's fingerprint and where its normalised copy lives (``dataset_path``).
    """
    store = make_storage(storage, root, heartbeat=heartbeat)
    metric = config.metric_for(dataset.task)
    directions = [DIRECTIONS[metric]] + (["minimize"] if config.multi_objective else [])
    study = optuna.create_study(
        study_name=config.study_name, storage=store, directions=directions,
        sampler=make_sampler(config.sampler, config.seed, config.multi_objective),
        pruner=make_pruner(config.pruner, config.space.max_epochs_range[1]),
        load_if_exists=True)
    attrs = study.user_attrs
    if CONFIG_ATTR in attrs:
        if attrs.get("dataset_fingerprint") != dataset.fingerprint:
            raise ValueError(f"study '{config.study_name}' was run on another dataset "
                             f"(fingerprint {attrs.get('dataset_fingerprint', '?')[:12]}, this "
                             f"one {dataset.fingerprint[:12]}): choose a new study name.")
        if [d.name.lower() for d in study.directions] != directions:
            raise ValueError(f"study '{config.study_name}' optimises other objectives: choose a "
                             "new study name.")
    study.set_user_attr(CONFIG_ATTR, config.to_dict())
    study.set_user_attr("dataset_fingerprint", dataset.fingerprint)
    study.set_user_attr("dataset_name", dataset.name)
    if dataset_path or "dataset_path" not in attrs:
        study.set_user_attr("dataset_path", str(dataset_path or ""))
    study.set_user_attr("task", dataset.task)
    study.set_user_attr("label_names", dataset.label_names)
    study.set_user_attr("metric", metric)
    optuna.storages.fail_stale_trials(study)
    if config.sampler == "darts" and "darts" not in study.user_attrs:
        from nas_core import darts

        darts.prepare(study, config, dataset, root)  # queues the derived architectures
    if config.n_trials is not None:
        top_up(study, config.n_trials)
    return study


def superseded(trials: Sequence[FrozenTrial]) -> set[int]:
    """Numbers of failed trials that a later trial runs again (they leave the budget)."""
    return {t.user_attrs["retry_of"] for t in trials if "retry_of" in t.user_attrs}


def in_budget(trials: Sequence[FrozenTrial]) -> set[int]:
    """Numbers of the finished trials that use up the budget: not cancelled by a user, not
    run again by a retry. The one rule behind the budget, the Monitor's count and resumes."""
    again = superseded(trials)
    return {t.number for t in trials if t.state in FINISHED
            and not t.user_attrs.get("cancelled") and t.number not in again}


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


class BudgetReached(Exception):
    """No queued trial is left: this worker's part of the budget is done."""


class QueueStudy(optuna.Study):
    """A study whose ``ask`` only pops queued trials; an empty queue ends ``optimize``."""

    def _pop_waiting_trial_id(self) -> int | None:
        trial_id = super()._pop_waiting_trial_id()
        if trial_id is None:
            raise BudgetReached
        return trial_id


def worker_study(study: optuna.Study, config: SearchConfig,
                 seed_offset: int = 0) -> optuna.Study:
    """The same study, seen by one worker: its own sampler seed (two workers with one seed would
    try the same architectures), and, when the budget is a number of trials, queue-only."""
    cls = QueueStudy if config.n_trials is not None else optuna.Study
    return cls(study_name=study.study_name, storage=study._storage,
               sampler=make_sampler(config.sampler, config.seed + seed_offset,
                                    config.multi_objective),
               pruner=make_pruner(config.pruner, config.space.max_epochs_range[1]))


def optimize(study: optuna.Study, config: SearchConfig, dataset: Dataset, *, root=None,
             listeners: Sequence[SearchListener] = (),
             should_stop: Callable[[], bool] | None = None, device: str | None = None,
             seed_offset: int = 0, poll_seconds: float | None = None) -> None:
    """Run queued trials until the budget is spent. Sees only the train and valid splits.

    With a trial budget, this returns when no trial is queued and no other worker's trial is
    still running: a running trial whose worker dies is queued again (heartbeats), and someone
    has to run it.
    """
    torch_device = resolve_device(device or config.device)
    ctx = TrialContext(
        data=SearchData.from_dataset(dataset), space=config.space,
        metric=study.user_attrs["metric"], multi_objective=config.multi_objective,
        device=torch_device, checkpoint_dir=subdir("runs", root) / _safe(study.study_name),
        seed=config.seed, patience=config.patience, max_tokens=config.max_tokens,
        listeners=listeners, should_stop=should_stop,
        cache=RepresentationCache(root) if config.cache_representations else None,
        gradient_checkpointing=config.gradient_checkpointing)
    for name in config.space.usable_backbones():  # fail before the first trial, with the fix
        ensure_loadable(name)
    mine = worker_study(study, config, seed_offset)

    def finished(study: optuna.Study, trial: FrozenTrial) -> None:
        ctx.emit("trial_finished", trial)

    deadline = None if config.timeout is None else time.monotonic() + config.timeout
    interval = poll_seconds or _heartbeat_interval(study)
    while True:
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            return
        try:
            mine.optimize(lambda trial: objective(trial, ctx), timeout=left,
                          catch=(Exception,), callbacks=[finished], gc_after_trial=True)
        except BudgetReached:
            pass
        if config.n_trials is None or (should_stop and should_stop()) or mine._stop_flag:
            return
        if not _others_running(study):
            return
        time.sleep(interval)  # another worker's trial may still fail and be queued again
        optuna.storages.fail_stale_trials(study)


def _heartbeat_interval(study: optuna.Study) -> float:
    interval = getattr(study._storage, "get_heartbeat_interval", lambda: None)()
    return float(interval or 5)


def _others_running(study: optuna.Study) -> bool:
    waiting_or_running = (TrialState.WAITING, TrialState.RUNNING)
    return bool(study.get_trials(deepcopy=False, states=waiting_or_running))


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def choose_trial(study: optuna.Study, trial_number: int | None = None) -> FrozenTrial:
    """The best trial; for two objectives the Pareto point with the best metric (or the one
    asked for)."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        raise RuntimeError(f"study '{study.study_name}' has no completed trial yet: nothing to "
                           "evaluate. Look at the failure reasons in the trials table.")
    if trial_number is not None:
        for t in complete:
            if t.number == trial_number:
                return t
        raise ValueError(f"trial {trial_number} is not a completed trial of this study.")
    if len(study.directions) == 1:
        return study.best_trial
    maximize = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    front = study.best_trials
    return (max if maximize else min)(front, key=lambda t: (t.values[0], -t.values[1]))


def finalise(study: optuna.Study, dataset: Dataset, out_dir: str | Path, *,
             trial_number: int | None = None, device: str = "auto",
             wall_seconds: float | None = None) -> dict:
    """Evaluate the chosen trial once on the held-out test split; export it; write report.json.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    trial = choose_trial(study, trial_number)
    torch_device = resolve_device(device)
    checkpoint = Path(trial.user_attrs.get("checkpoint", ""))
    if not (checkpoint / "trainable.safetensors").is_file():
        raise FileNotFoundError(
            f"the weights of trial {trial.number} are not on this machine ({checkpoint}): it "
            f"ran on {trial.user_attrs.get('host', 'another machine')}. Run `python -m "
            f"nas_core finalise --study {study.study_name} --trial {trial.number} --out DIR` "
            "there, share the workspace's runs/ folder between the machines, or choose "
            "another trial.")
    model, tokenizer = load_trial_checkpoint(checkpoint)
    model.to(torch_device)
    metric = study.user_attrs["metric"]
    results, outputs, targets = {}, {}, {}
    for split, name in (("valid", "val"), ("test", "test")):
        part = dataset.part(split)
        targets[name] = dataset.label_index(part["label"])
        data = encode_split(list(part["sequence"]), targets[name], tokenizer)
        results[name], outputs[name] = evaluate(model, data, device=torch_device,
                                                pad_id=tokenizer.pad_token_id,
                                                raw_targets=targets[name])
    y, output = targets["test"], outputs["test"]
    identity = test_identity(dataset)
    _write_predictions(out_dir / "test_predictions.csv", part, output, dataset, identity)
    test_ci = bootstrap_ci(dataset.task, y, output)
    n_parameters = count_parameters(model)
    uncertainty = {"level": 0.9, "threshold": trust.conformal(dataset.task, targets["val"],
                                                               outputs["val"], 0.9)}
    train_sequences = list(dataset.part("train")["sequence"])
    export_model(model, tokenizer, out_dir / "best_model", extra={
        "study": study.study_name, "trial": trial.number, "metric": metric,
        "dataset_fingerprint": dataset.fingerprint, "val_metrics": results["val"],
        "test_metrics": results["test"], "n_parameters": n_parameters,
        "conformal": uncertainty,
        "novelty_identity": homology.default_identity(train_sequences)},
        train_sequences=train_sequences)
    report = build_report(study, dataset, metric)
    report["best"] = {
        "trial": trial.number, "params": trial.params,
        "architecture": trial.user_attrs["architecture"],
        "description": Architecture.from_dict(trial.user_attrs["architecture"]).describe(),
        "val": results["val"], "test": results["test"], "test_ci": test_ci,
        "n_parameters": n_parameters, "best_epoch": trial.user_attrs.get("best_epoch"),
        "backbone_untrained": resolve(trial.user_attrs["architecture"]["backbone"]).untrained,
        "history": trial.user_attrs.get("history", []),
        "model_dir": str(out_dir / "best_model"),
    }
    report["baseline"], reference = fit_baseline(dataset, return_test_output=True)
    report["baseline"]["test_ci"] = bootstrap_ci(dataset.task, y, reference)
    report["vs_reference"] = trust.compare(dataset.task, y, output, reference, metric)
    report["leakage"] = trust.leakage_report(identity)
    report["by_identity"] = trust.by_identity(dataset.task, y, output, identity, metric)
    report["uncertainty"] = uncertainty
    if wall_seconds is not None:
        report["wall_seconds"] = round(wall_seconds, 2)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2, default=_json_default))
    write_model_card(out_dir / "best_model", report)
    return report


def test_identity(dataset: Dataset) -> np.ndarray:
    """Each test sequence's identity to its nearest training sequence (stored at split time;
    computed now for datasets split before that was recorded)."""
    test = dataset.part("test")
    if "nearest_train_identity" in test and test["nearest_train_identity"].notna().all():
        return test["nearest_train_identity"].to_numpy(dtype=float)
    return homology.nearest_identity(list(test["sequence"]),
                                     list(dataset.part("train")["sequence"]))


def _write_predictions(path: Path, part, output, dataset: Dataset, identity) -> None:
    frame = part[["id", "sequence", "label"]].copy()
    frame["nearest_train_identity"] = identity
    if dataset.task == "regression":
        frame["prediction"] = output
    else:
        names = dataset.label_names or []
        frame["prediction"] = [names[i] for i in output.argmax(1)]
        for i, name in enumerate(names):
            frame[f"p_{name}"] = output[:, i]
    frame.to_csv(path, index=False)


def _json_default(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)


def storage_url(study: optuna.Study) -> str:
    backend = getattr(study._storage, "_backend", study._storage)  # unwrap Optuna's cache
    return getattr(backend, "url", type(backend).__name__)


def build_report(study: optuna.Study, dataset: Dataset, metric: str) -> dict:
    trials = study.get_trials(deepcopy=False)
    states = [t.state for t in trials]
    config = study.user_attrs.get(CONFIG_ATTR, {})
    budget = config.get("space", {}).get("max_epochs_range", [None, None])[1]
    trained = sum(t.user_attrs.get("epochs_trained", len(t.user_attrs.get("history", [])))
                  for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED))
    durations = [t.duration.total_seconds() for t in trials if t.duration]
    report = {
        "study": study.study_name,
        "storage": public_url(storage_url(study)),
        "task": dataset.task, "metric": metric,
        "direction": study.directions[0].name.lower(),
        "objective": config.get("objective", "metric"),
        "sampler": config.get("sampler"), "pruner": config.get("pruner"),
        "strategy": STRATEGIES.get(config.get("sampler"), config.get("sampler")),
        "dataset": {"name": dataset.name, "fingerprint": dataset.fingerprint,
                    "summary": dataset.summary()},
        "n_trials": len(trials),
        "n_complete": states.count(TrialState.COMPLETE),
        "n_pruned": states.count(TrialState.PRUNED),
        "n_failed": states.count(TrialState.FAIL),
        "trial_seconds": round(sum(durations), 2),
        "epochs_trained": trained,
        "epochs_without_pruning": budget * sum(
            s in (TrialState.COMPLETE, TrialState.PRUNED) for s in states) if budget else None,
        "failures": [{"trial": n, "reason": r} for n, r in fail_reasons(trials).items()],
    }
    if len(study.directions) > 1:
        report["pareto"] = [{"trial": t.number, metric: t.values[0],
                             "n_parameters": int(t.values[1])} for t in study.best_trials]
    return report


def run_search(config: SearchConfig, dataset: Dataset, out_dir: str | Path, *, root=None,
               storage: str | None = None, listeners: Sequence[SearchListener] = (),
               should_stop: Callable[[], bool] | None = None,
               dataset_path: str | None = None,
               devices: Sequence[str] | None = None) -> dict | None:
    """Search, then evaluate the best architecture on the test split; returns the report, or
    None when ``should_stop`` ended the search (its completed trials stay in the study).

    With several ``devices`` this process runs trials on the first and starts a worker process
    on each of the others (they need ``dataset_path``, the stored normalised dataset).
    """
    from nas_core import workers

    started = time.perf_counter()
    study = open_study(config, dataset, root=root, storage=storage, dataset_path=dataset_path)
    devices = list(devices or [config.device])
    helpers = []
    if len(devices) > 1:
        if not dataset_path:
            raise ValueError("several workers need the stored dataset's path (dataset_path).")
        helpers = workers.spawn(study, devices[1:], root=root, data=dataset_path,
                                log_dir=subdir("runs", root) / _safe(study.study_name))
    try:
        optimize(study, config, dataset, root=root, listeners=listeners,
                 should_stop=should_stop, device=devices[0])
    finally:
        for process in helpers:
            if should_stop and should_stop():
                process.terminate()  # it gives its running trial back to the queue
            process.wait()
    if should_stop and should_stop():
        return None
    return finalise(study, dataset, out_dir, device=devices[0],
                    wall_seconds=time.perf_counter() - started)
