"""The search as an Optuna study: create or resume it, run its queued trials, pick the best.

The study storage is the single source of truth: the search configuration, the dataset
fingerprint and every trial's per-epoch history live there, so any process (the app, a CLI, a
worker) sees the same state."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from nas_core.backbones.loading import ensure_loadable
from nas_core.common.metric_names import DIRECTIONS
from nas_core.common.workspace import subdir
from nas_core.data.dataset import Dataset
from nas_core.modeling.cache import RepresentationCache
from nas_core.modeling.training import TrainSettings, resolve_device
from nas_core.search.budget import top_up
from nas_core.search.config import CONFIG_ATTR, Heartbeat, SearchConfig
from nas_core.search.objective import SearchData, SearchListener, TrialContext, objective
from nas_core.search.optuna_internals import (
    BudgetReached,
    QueueStudy,
    heartbeat_interval,
    stop_requested,
    study_storage,
)
from nas_core.search.storage import DB_WAIT, make_storage, patience
from nas_core.search.strategies import darts
from nas_core.search.strategies.rl import ReinforceSampler

# sampler name -> constructor from the seed; TPE also for two objectives (Optuna 5's
# default), passed explicitly and always seeded
SAMPLERS: dict[str, Callable[[int], optuna.samplers.BaseSampler]] = {
    "tpe": lambda seed: optuna.samplers.TPESampler(
        seed=seed, n_startup_trials=4, multivariate=True, group=True,
        # any study may have several workers (others join from other machines): a running
        # trial counts as a poor result, so the next worker looks elsewhere
        constant_liar=True),
    "random": lambda seed: optuna.samplers.RandomSampler(seed=seed),
    "nsga2": lambda seed: optuna.samplers.NSGAIISampler(seed=seed, population_size=8),
    "gp": lambda seed: optuna.samplers.GPSampler(seed=seed, n_startup_trials=4,
                                                 warn_independent_sampling=False),
    "rl": lambda seed: ReinforceSampler(seed=seed),
}


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    """The sampler called ``name`` (DARTS queues its trials and samples the rest with TPE)."""
    return SAMPLERS.get(name, SAMPLERS["tpe"])(seed)


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
    if config.sampler == "darts" and dataset.pairs:
        raise ValueError("The DARTS strategy trains one super-network on single sequences; "
                         "it does not search pairs of proteins. Choose TPE, random, NSGA-II, "
                         "GP or the REINFORCE controller for this dataset.")
    store = make_storage(storage, root, heartbeat=heartbeat)
    metric = config.metric_for(dataset.task)
    directions: list[Any] = [DIRECTIONS[metric]] + (["minimize"] if config.multi_objective
                                                    else [])
    study = optuna.create_study(
        study_name=config.study_name, storage=store, directions=directions,
        sampler=make_sampler(config.sampler, config.seed),
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
    study.set_user_attr("n_sequences", int(len(dataset.frame)))
    if dataset_path or "dataset_path" not in attrs:
        study.set_user_attr("dataset_path", str(dataset_path or ""))
    study.set_user_attr("task", dataset.task)
    study.set_user_attr("label_names", dataset.label_names)
    study.set_user_attr("metric", metric)
    optuna.storages.fail_stale_trials(study)
    if config.parent_study and "lineage" not in study.user_attrs:
        continue_from(study, config, dataset, store)
    if config.sampler == "darts" and darts.DARTS_ATTR not in study.user_attrs:
        darts.prepare(study, config, dataset, root)  # queues the derived architectures
    if CONFIG_ATTR not in attrs and config.frozen_first and config.sampler != "darts":
        frozen = min(config.frozen_first, config.n_trials or config.frozen_first)
        for _ in range(frozen):  # a new study: the cheap trials run first (queued in order)
            study.enqueue_trial({"adaptation": "frozen"}, skip_if_exists=False)
    if config.n_trials is not None:
        top_up(study, config.n_trials)
    return study


def worker_study(study: optuna.Study, config: SearchConfig,
                 seed_offset: int = 0) -> optuna.Study:
    """The same study, seen by one worker: its own sampler seed (two workers with one seed would
    try the same architectures), and, when the budget is a number of trials, queue-only."""
    cls = QueueStudy if config.n_trials is not None else optuna.Study
    # a restart must not replay the seeded sequence of draws it made before: the seed moves
    # on by the trials already started (0 on a fresh study, so a fresh run is reproducible)
    started = sum(t.state != TrialState.WAITING for t in study.get_trials(deepcopy=False))
    return cls(study_name=study.study_name, storage=study_storage(study),
               sampler=make_sampler(config.sampler, config.seed + seed_offset + 1000 * started),
               pruner=make_pruner(config.pruner, config.space.max_epochs_range[1]))


def optimize(study: optuna.Study, config: SearchConfig, dataset: Dataset, *, root=None,
             listeners: Sequence[SearchListener] = (),
             should_stop: Callable[[], bool] | None = None, device: str | None = None,
             seed_offset: int = 0, poll_seconds: float | None = None,
             db_wait: float = DB_WAIT) -> None:
    """Run queued trials until the budget is spent. Sees only the train and valid splits.
    The study database may stop answering for up to ``db_wait`` seconds at a time: the
    running trial keeps training and its writes wait (:func:`patience`).

    With a trial budget, this returns when no trial is queued and no other worker's trial is
    still running: a running trial whose worker dies is queued again (heartbeats), and someone
    has to run it.
    """
    torch_device = resolve_device(device or config.device)
    ctx = TrialContext(
        data=SearchData.from_dataset(dataset), space=config.space,
        training=TrainSettings(metric=study.user_attrs["metric"], device=torch_device,
                               seed=config.seed, patience=config.patience,
                               max_tokens=config.max_tokens,
                               min_tokens=config.min_batch_tokens,
                               lr_rule=config.lr_scaling, should_stop=should_stop),
        multi_objective=config.multi_objective,
        checkpoint_dir=subdir("runs", root) / safe_name(study.study_name),
        listeners=listeners,
        cache=RepresentationCache(root) if config.cache_representations else None,
        gradient_checkpointing=config.gradient_checkpointing)
    for name in config.space.usable_backbones():  # fail before the first trial, with the fix
        ensure_loadable(name)
    mine = worker_study(study, config, seed_offset)

    def finished(study: optuna.Study, trial: FrozenTrial) -> None:
        ctx.emit("trial_finished", trial)

    deadline = None if config.timeout is None else time.monotonic() + config.timeout
    interval = poll_seconds or heartbeat_interval(study)
    with patience(db_wait):  # an outage of the study database is ridden out, not fatal
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return
            try:
                mine.optimize(lambda trial: objective(trial, ctx), timeout=left,
                              catch=(Exception,), callbacks=[finished], gc_after_trial=True)
            except BudgetReached:
                pass
            if ctx.storage_failure is not None:
                raise ctx.storage_failure
            if config.n_trials is None or (should_stop and should_stop()) or stop_requested(mine):
                return
            if not _others_running(study):
                return
            time.sleep(interval)  # another worker's trial may still fail and be queued again
            optuna.storages.fail_stale_trials(study)


def _others_running(study: optuna.Study) -> bool:
    waiting_or_running = (TrialState.WAITING, TrialState.RUNNING)
    return bool(study.get_trials(deepcopy=False, states=waiting_or_running))


_HASHED = re.compile(r".*-[0-9a-f]{12}$")


def safe_name(name: str) -> str:
    """The study's folder under the workspace's ``runs/`` (trial checkpoints, worker logs):
    unique per study name. A name that is already a safe folder name is kept as it is; any
    other gets a hash of the exact name, so "exp 1", "exp/1" and "exp_1" never share (and
    overwrite) one folder."""
    cleaned = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    if cleaned == name and not _HASHED.match(name) and name not in (".", ".."):
        return name
    return f"{cleaned.strip('.') or 'study'}-{hashlib.sha256(name.encode()).hexdigest()[:12]}"


def continue_from(study: optuna.Study, config: SearchConfig, dataset: Dataset,
                  storage: Any) -> int:
    """A new round on more data: queue the parent study's best architectures (its ensemble's
    worth) as this study's first trials, and record where the study comes from."""
    assert config.parent_study
    try:
        parent = optuna.load_study(study_name=config.parent_study, storage=storage)
    except KeyError:
        raise ValueError(f"no study '{config.parent_study}' in this study store to continue "
                         "from.") from None
    maximize = parent.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    done = [t for t in parent.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.values]
    best = sorted(done, key=lambda t: t.values[0], reverse=maximize)[:max(
        1, config.ensemble_size)]
    for trial in best:
        study.enqueue_trial(dict(trial.params), user_attrs={
            "derived_by": f"study {config.parent_study}, trial {trial.number}"},
            skip_if_exists=True)
    before = parent.user_attrs.get("n_sequences")
    study.set_user_attr("lineage", {
        "parent_study": config.parent_study,
        "parent_dataset_fingerprint": parent.user_attrs.get("dataset_fingerprint"),
        "parent_dataset_name": parent.user_attrs.get("dataset_name"),
        "dataset_fingerprint": dataset.fingerprint,
        "added_sequences": len(dataset.frame) - int(before) if before else None,
        "warm_start_trials": [t.number for t in best]})
    return len(best)


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
