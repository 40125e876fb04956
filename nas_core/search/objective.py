"""One trial: sample an architecture, build it, train it, report each epoch to Optuna.

The objective is a plain function of ``(trial, context)``; everything it needs arrives in the
:class:`TrialContext`, which holds the training and validation splits only — never the test.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import torch
from optuna.trial import TrialState

from nas_core.backbones.loading import esm2_tokenizer
from nas_core.backbones.registry import resolve
from nas_core.common.metrics import objective_value
from nas_core.common.workspace import StorageError, storage_problem
from nas_core.data.dataset import Dataset
from nas_core.data.pair_splits import proteins_of
from nas_core.modeling.architecture import Architecture
from nas_core.modeling.batches import EVAL_MAX_TOKENS, Encoded, encode_split, joined_pairs
from nas_core.modeling.build import (
    build_model,
    count_parameters,
    deployed_parameters,
    load_trainable_state,
    save_trial_checkpoint,
)
from nas_core.modeling.cache import RepresentationCache, cached_trial_possible
from nas_core.modeling.compaction import DistilRun, pruned_student
from nas_core.modeling.compaction_options import DistillConfig
from nas_core.modeling.modules import HeadModel, PooledHead, SequencePredictor, TaskInfo, init_head
from nas_core.modeling.pruning import for_shares
from nas_core.modeling.training import EpochRecord, TrainingCancelled, TrainSettings, train
from nas_core.search.budget import FINISHED
from nas_core.search.space import SearchSpace, suggest_architecture

HISTORY_ATTR = "history"
REPEATABLE = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
MAX_REPEATS = 30  # draws that repeated earlier trials before the space counts as exhausted


class SearchListener:
    """Progress hooks for the app or the CLI; called from the search thread, must be quick."""

    def trial_started(self, number: int, architecture: Architecture) -> None:
        pass

    def epoch_finished(self, number: int, record: dict) -> None:
        pass

    def trial_finished(self, trial: optuna.trial.FrozenTrial) -> None:
        pass


@dataclass
class SearchData:
    """The splits a search may look at: train and validation. The test split stays out.

    Pairs of proteins come two ways: as one joined sequence per pair (``*_sequences``: what a
    cross-encoder reads), and as the distinct ``proteins`` with each pair's two indices into
    them (``*_partners``: what a shared encoder reads, each protein encoded once)."""

    train_sequences: list[str]
    train_targets: np.ndarray  # class indices, or standardised values
    val_sequences: list[str]
    val_targets: np.ndarray  # class indices, or values in label units
    info: TaskInfo
    proteins: list[str] | None = None
    train_partners: np.ndarray | None = None
    val_partners: np.ndarray | None = None

    @classmethod
    def from_dataset(cls, dataset: Dataset) -> SearchData:
        train, val = dataset.part("train"), dataset.part("valid")
        if len(train) == 0 or len(val) == 0:
            raise ValueError("the dataset needs training and validation rows; split it first.")
        y_train = dataset.label_index(train["label"])
        info = TaskInfo.fitted(dataset.task, dataset.label_names, y_train)
        if not dataset.pairs:
            return cls(list(train["sequence"]), info.standardise(y_train),
                       list(val["sequence"]), dataset.label_index(val["label"]), info)
        proteins, partners = proteins_of(pd.concat([train, val], ignore_index=True))
        return cls(joined_pairs(train), info.standardise(y_train), joined_pairs(val),
                   dataset.label_index(val["label"]), info, proteins, partners[: len(train)],
                   partners[len(train):])

    def siamese(self, arch: Architecture) -> bool:
        """Pairs read by a shared encoder (each protein alone), not joined."""
        return self.proteins is not None and arch.siamese


@dataclass
class TrialContext:
    """What every trial of a search shares: the splits, the space, how candidates train
    (``training``: each trial adds its number to the seed) and where checkpoints go."""

    data: SearchData
    space: SearchSpace
    training: TrainSettings
    multi_objective: bool
    checkpoint_dir: Path
    listeners: Sequence[SearchListener] = ()
    cache: RepresentationCache | None = field(default=None, repr=False)
    gradient_checkpointing: str = "auto"  # auto: for backbones of 150M parameters and more
    distill: DistillConfig = DistillConfig()
    # a full or read-only disk ends the search (every later trial would fail the same way)
    storage_failure: StorageError | None = field(default=None, repr=False)

    def emit(self, event: str, *args) -> None:
        for listener in self.listeners:
            getattr(listener, event)(*args)

    @property
    def device(self) -> torch.device:
        return self.training.device

    @property
    def metric(self) -> str:
        return self.training.metric


class RepeatedArchitecture(Exception):
    """The sampler drew an architecture a finished or running trial already has."""


def objective(trial: optuna.Trial, ctx: TrialContext) -> float | tuple[float, float]:
    arch = suggest_architecture(trial, ctx.space, ctx.data.info.task)
    trial.set_user_attr("architecture", arch.to_dict())
    trial.set_user_attr("description", arch.describe(ctx.data.info.per_residue,
                                                     ctx.data.info.task.per_pair))
    _refuse_repeat(trial)
    trial.set_user_attr("host", socket.gethostname())
    trial.set_user_attr("pid", os.getpid())
    trial.set_user_attr("device", str(ctx.device))
    ctx.emit("trial_started", trial.number, arch)
    try:
        try:
            return _train_and_report(trial, arch, ctx)
        except torch.OutOfMemoryError:
            if arch.batch_size <= 1:
                raise
            _free_memory(ctx.device)
            smaller = replace(arch, batch_size=max(1, arch.batch_size // 2))
            trial.set_user_attr("oom_retry_batch_size", smaller.batch_size)
            return _train_and_report(trial, smaller, ctx)
    except optuna.TrialPruned:
        raise
    except TrainingCancelled as exc:
        trial.set_user_attr("cancelled", True)
        trial.set_user_attr("fail_reason", f"cancelled: {exc}")
        trial.study.stop()
        raise
    except Exception as exc:
        problem = storage_problem(exc, ctx.checkpoint_dir)
        if problem is not None:
            ctx.storage_failure = problem
            try:
                trial.set_user_attr("fail_reason", str(problem))
            except Exception:  # noqa: S110 - the study store may be on the full disk too
                pass
            trial.study.stop()
            raise problem from exc
        reason = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, torch.OutOfMemoryError):
            reason = "out of memory even at half the batch size: " + reason
        trial.set_user_attr("fail_reason", reason[:2000])
        raise
    finally:
        _free_memory(ctx.device)


def _refuse_repeat(trial: optuna.Trial) -> None:
    """A budget of N trials is N distinct architectures: a draw equal to a completed, pruned or
    running trial (a seeded sampler replaying after a restart, two workers drawing at once) is
    not trained; it leaves the budget (``repeat_of``) and one new trial is queued in its place,
    until so many draws repeat that the space has clearly run out of distinct points."""
    params = trial.params
    study = trial.study
    trials = study.get_trials(deepcopy=False)
    same = next((t.number for t in trials if t.number != trial.number and t.params == params
                 and t.state in REPEATABLE and "repeat_of" not in t.user_attrs), None)
    if same is None:
        return
    trial.set_user_attr("repeat_of", same)
    repeats = sum("repeat_of" in t.user_attrs for t in trials) + 1
    if repeats >= MAX_REPEATS:
        distinct = sum(t.state in FINISHED and "repeat_of" not in t.user_attrs for t in trials)
        reason = (f"the same architecture as trial {same}, and {repeats} draws in all repeated "
                  f"earlier ones: the search space seems to hold no more distinct "
                  f"architectures, so the search stops after {distinct} distinct trials. "
                  "Widen the space (more choices or ranges) for a larger budget.")
        trial.set_user_attr("fail_reason", reason)
        study.set_user_attr("space_exhausted", reason)
        study.stop()
    else:
        trial.set_user_attr("fail_reason", f"the same architecture as trial {same}: not "
                            "trained again (another one is drawn in its place)")
        study.enqueue_trial({})
    raise RepeatedArchitecture(f"same architecture as trial {same}")


def _free_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


@dataclass
class PreparedTrial:
    """What one trial trains: the model, its parameter count as exported, both splits."""

    model: PooledHead
    n_parameters: int
    train_data: Encoded
    val_data: Encoded
    pad_id: int

    @property
    def cached(self) -> bool:
        return self.train_data.features is not None or self.train_data.residues is not None


def _prepare(arch: Architecture, ctx: TrialContext) -> PreparedTrial:
    """The model to train and the two splits: cached features for a frozen backbone with
    mean/CLS pooling (the backbone does not run at all), token ids otherwise."""
    if ctx.cache is not None and cached_trial_possible(arch):
        return _prepare_cached(arch, ctx, ctx.cache)
    checkpointing = ctx.gradient_checkpointing == "on" or (
        ctx.gradient_checkpointing == "auto" and resolve(arch.backbone).n_parameters >= 1.5e8)
    model, tokenizer = build_model(arch, ctx.data.info, gradient_checkpointing=checkpointing)
    train_data, val_data = _encode_splits(ctx.data, arch, tokenizer)
    return PreparedTrial(model, count_parameters(model), train_data, val_data,
                         tokenizer.pad_token_id)


def _encode_splits(data: SearchData, arch: Architecture, tokenizer) -> tuple[Encoded, Encoded]:
    """Token ids of both splits: of each sequence (or joined pair), or for a shared pair
    encoder of each distinct protein once, both splits pointing into them."""
    if not data.siamese(arch):
        return (encode_split(data.train_sequences, data.train_targets, tokenizer),
                encode_split(data.val_sequences, data.val_targets, tokenizer))
    assert data.proteins is not None
    proteins = encode_split(data.proteins, np.zeros(len(data.proteins)), tokenizer)
    return (Encoded(proteins.ids, np.asarray(data.train_targets), partners=data.train_partners),
            Encoded(proteins.ids, np.asarray(data.val_targets), partners=data.val_partners))


def _prepare_cached(arch: Architecture, ctx: TrialContext,
                    cache: RepresentationCache) -> PreparedTrial:
    """A head-only model on the frozen backbone's cached representations."""
    spec = resolve(arch.backbone)
    siamese = ctx.data.siamese(arch)
    # a shared pair encoder: each distinct protein once, both splits pointing into them
    sequences = (ctx.data.proteins if siamese and ctx.data.proteins is not None
                 else ctx.data.train_sequences + ctx.data.val_sequences)
    n_train = len(ctx.data.train_sequences)
    tokenizer = esm2_tokenizer()  # ids set the batches (by length) and the masks
    train_data, val_data = _encode_splits(ctx.data, arch, tokenizer)
    max_tokens = ctx.training.max_tokens or EVAL_MAX_TOKENS
    if arch.pooling == "attention" or ctx.data.info.per_residue:
        table, offsets = cache.residues(arch.backbone, sequences, arch.n_layers,
                                        device=ctx.device, max_tokens=max_tokens)
        if siamese:
            train_data.residues = val_data.residues = (table, offsets)
        else:
            train_data.residues = (table, offsets[: n_train + 1])
            val_data.residues = (table, offsets[n_train:])
        hidden = table.shape[1]
    else:
        bounds = ctx.space.depth_bounds(spec)
        assert bounds is not None  # usable_backbones() left only backbones with a depth
        low, high = bounds
        features = cache.pooled(arch.backbone, sequences, list(range(low, high + 1)),
                                device=ctx.device, max_tokens=max_tokens)
        pooled = np.asarray(features[(arch.pooling, arch.n_layers)])
        if siamese:
            train_data.features = val_data.features = pooled
        else:
            train_data.features, val_data.features = pooled[:n_train], pooled[n_train:]
        hidden = pooled.shape[1]
    model = HeadModel(arch, ctx.data.info, hidden, eos_id=tokenizer.eos_token_id)
    return PreparedTrial(model, deployed_parameters(arch, model), train_data, val_data,
                         tokenizer.pad_token_id)


def _train_and_report(trial: optuna.Trial, arch: Architecture, ctx: TrialContext):
    seed = ctx.training.seed + trial.number
    torch.manual_seed(seed)  # adapters (LoRA A, DoRA) initialise from it
    prepared = _prepare(arch, ctx)
    model, n_parameters = prepared.model, prepared.n_parameters
    init_head(model, seed)
    trial.set_user_attr("n_parameters", n_parameters)
    trial.set_user_attr("cached_features", prepared.cached)
    history: list[dict] = []

    def on_epoch(record: EpochRecord, phase: str = "train") -> None:
        row = record.flat()
        row["phase"] = phase
        history.append(row)
        trial.set_user_attr(HISTORY_ATTR, history)
        ctx.emit("epoch_finished", trial.number, row)
        # Optuna prunes single-objective studies only, on the teacher's epochs (a student's
        # curve continues at later epoch numbers and is not compared across trials)
        if not ctx.multi_objective and phase == "train":
            trial.report(objective_value(record.val, ctx.metric), record.epoch)
            if trial.should_prune():
                trial.set_user_attr("epochs_trained", record.epoch)
                raise optuna.TrialPruned(f"pruned after epoch {record.epoch}")

    settings = replace(ctx.training, seed=seed, on_epoch=on_epoch)
    result = train(model, prepared.train_data, prepared.val_data, ctx.data.val_targets,
                   settings, pad_id=prepared.pad_id)
    load_trainable_state(model, result.best_state)
    compaction = None
    if arch.compacted and isinstance(model, SequencePredictor) and not model.siamese:
        trial.set_user_attr("teacher_val_metrics", result.best_val)
        trial.set_user_attr("teacher_n_parameters", n_parameters)
        student = pruned_student(model, for_shares(model, arch.heads_kept, arch.ffn_kept),
                                 DistilRun(
            prepared.train_data, prepared.val_data, ctx.data.val_targets, prepared.pad_id,
            replace(settings, first_epoch=len(result.history) + 1,
                    on_epoch=lambda record: on_epoch(record, "distil")), ctx.distill))
        model, compaction, n_parameters = student.model, student.model.compaction, \
            student.n_parameters
        trial.set_user_attr("n_parameters", n_parameters)
        trial.set_user_attr("compaction", compaction.to_dict() if compaction else None)
        trial.set_user_attr("distil_epochs", len(student.result.history))
        result = student.result
    checkpoint = ctx.checkpoint_dir / f"trial_{trial.number:05d}"
    save_trial_checkpoint(model, checkpoint, arch, ctx.data.info, compaction)
    trial.set_user_attr("checkpoint", str(checkpoint))
    trial.set_user_attr("epochs_trained", len(history))
    trial.set_user_attr("best_epoch", result.best_epoch)
    trial.set_user_attr("val_metrics", result.best_val)
    value = objective_value(result.best_val, ctx.metric)
    if ctx.multi_objective:
        return value, float(n_parameters)
    return value

