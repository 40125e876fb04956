"""The Compress step of a finished search: the chosen model as teacher, one pruned and
distilled variant per target share of its parameters, each tested once on the held-out split
and timed side by side; ``compress.json`` lists them with the uncompressed reference and the
depth-only truncation of the same size.

Progress is an Optuna study of its own (one trial per variant, with per-epoch history), so the
Monitor shows a Compress job's curves exactly as a search's.
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch

from nas_core.backbones.loading import truncate
from nas_core.common.metric_names import DIRECTIONS
from nas_core.common.metrics import bootstrap_ci, objective_value
from nas_core.common.records import json_default
from nas_core.common.report import Report, Throughput, load_report
from nas_core.common.tasks import Task
from nas_core.common.workspace import writing
from nas_core.compression.config import RESULTS, CompressConfig, CompressError
from nas_core.data.dataset import Dataset
from nas_core.data.store import load_stored
from nas_core.modeling.batches import EVAL_MAX_TOKENS, Encoded, encode_split
from nas_core.modeling.build import count_parameters, merged_copy
from nas_core.modeling.compaction import (
    DistilRun,
    Student,
    TeacherCache,
    pruned_student,
    truncated_student,
)
from nas_core.modeling.modules import SequencePredictor
from nas_core.modeling.pruning import Compaction, for_target
from nas_core.modeling.training import (
    EpochRecord,
    TrainSettings,
    evaluate,
    predict_outputs,
    resolve_device,
)
from nas_core.publishing.card import write_model_card
from nas_core.publishing.export import export_model, load_model
from nas_core.search.storage import make_storage


@dataclass
class Split:
    data: Encoded
    targets: np.ndarray  # raw: class indices or values in label units


def teacher_of(run_dir: Path) -> tuple[Report, Path]:
    """The search report and its chosen model's folder; refused with the fix when either is
    missing or the model cannot be compacted."""
    report = load_report(run_dir)
    if report is None:
        raise CompressError(
            f"{run_dir} has no report.json: it is not the folder of a finished search. Give "
            "the --out folder of `search` (or of `finalise`), where report.json and "
            "best_model/ are.")
    model_dir = Path(report.best.model_dir or run_dir / "best_model")
    if not (model_dir / "model.safetensors").is_file():
        model_dir = run_dir / "best_model"
    if not (model_dir / "model.safetensors").is_file():
        raise CompressError(
            f"{run_dir} has no trained model (best_model/model.safetensors is missing): "
            "finalise the search first (`python -m nas_core finalise`).")
    if report.task.per_residue:
        raise CompressError(
            "this is a per-residue model: Compress distils a model's outputs for whole "
            "sequences and does not yet handle one output per residue. For a smaller "
            "per-residue model, search again with a parameter limit (Advanced: 'At most this "
            "many parameters'; --max-parameters headless) or a smaller backbone; the "
            "accuracy-vs-size front of an accuracy-and-size search shows the trade-off.")
    if report.task.per_pair:
        raise CompressError(
            "this is a model of protein pairs: Compress distils a model of one sequence and "
            "does not yet handle two partners. For a smaller pair model, search again with "
            "the cross-encoder and fewer heads or a narrower feed-forward block (Advanced: "
            "'Heads kept', 'Ffn kept'), a parameter limit (--max-parameters headless) or a "
            "smaller backbone.")
    if report.best.adaptation == "frozen":
        raise CompressError(
            "the chosen model has a frozen backbone: only its head was trained on your data, "
            "and the backbone is used as it was published. Pruning it would mean fine-tuning "
            "the backbone for the first time, which is a different model, not a compressed "
            "one. For a smaller frozen model, search again with a parameter limit (Advanced: "
            "'At most this many parameters'; --max-parameters headless) or a smaller "
            "backbone; to compress, search with adaptations that fine-tune the backbone "
            "(LoRA, DoRA, IA³, partial or full) so that one of them is chosen.")
    return report, model_dir


def dataset_of(report: Report, data: str | Path | None) -> Dataset:
    where = data or report.dataset.path
    if not where or not Path(where).exists():
        raise CompressError(
            f"the search's dataset is not at '{where}' on this machine: pass --data with the "
            "stored dataset folder (workspace/datasets/<id>/) it was run on.")
    try:
        dataset = load_stored(where)
    except (OSError, ValueError, KeyError) as exc:
        raise CompressError(f"could not read the dataset at {where}: {exc}") from None
    if dataset.fingerprint != report.dataset.fingerprint:
        raise CompressError(
            f"the dataset at {where} is not the one this search ran on (fingerprint "
            f"{dataset.fingerprint[:12]}, the search's {report.dataset.fingerprint[:12]}).")
    return dataset


def throughput(models: dict[str, SequencePredictor], data: Encoded, *, device: torch.device,
               pad_id: int, rounds: int = 3, batch_size: int = 64,
               max_tokens: int = EVAL_MAX_TOKENS) -> dict[str, float]:
    """Sequences per second of each model on the same sequences and batches, measured in
    interleaved rounds (the best round counts, so a busy moment hurts no model alone)."""
    best = {name: math.inf for name in models}
    for model in models.values():
        model.to(device).eval()
        predict_outputs(model, Encoded(data.ids[:batch_size], data.targets[:batch_size]),
                        device=device, pad_id=pad_id, batch_size=batch_size)  # warm-up
    for _ in range(rounds):
        for name, model in models.items():
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            started = time.perf_counter()
            predict_outputs(model, data, device=device, pad_id=pad_id, batch_size=batch_size,
                            max_tokens=max_tokens)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            best[name] = min(best[name], time.perf_counter() - started)
    return {name: round(len(data) / seconds, 2) for name, seconds in best.items()}


def n_layers(model: SequencePredictor) -> int:
    backbone: Any = model.esm
    return len(backbone.encoder.layer)


def depth_for(teacher: SequencePredictor, n_parameters: int) -> int | None:
    """The depth whose truncation is nearest in size to ``n_parameters`` (the smaller on a
    tie); None when that would keep every layer."""
    probe = merged_copy(teacher)
    layers = n_layers(probe)
    best, gap = None, math.inf
    for depth in range(layers - 1, 0, -1):
        truncate(probe.esm, depth)
        distance = abs(count_parameters(probe) - n_parameters)
        if distance <= gap:
            best, gap = depth, distance
    return best


@dataclass
class Teacher:
    """The chosen model of a finished search, ready to be distilled from: its report, its
    dataset's splits and its outputs on the training split (computed once)."""

    report: Report
    model_dir: Path
    dataset: Dataset
    model: SequencePredictor
    tokenizer: Any
    splits: dict[str, Split]
    device: torch.device
    n_parameters: int
    cache: TeacherCache

    @property
    def pad_id(self) -> int:
        return self.tokenizer.pad_token_id


def compress(run_dir: str | Path, out_dir: str | Path, config: CompressConfig = CompressConfig(),
             *, data: str | Path | None = None, storage: str | None = None,
             study_name: str | None = None, should_stop: Callable[[], bool] | None = None,
             progress: Callable[[str], None] | None = None) -> dict:
    """Make the variants and write ``out_dir/compress.json`` (see the module docstring)."""
    started = time.perf_counter()
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    say = progress or (lambda text: None)
    teacher = load_teacher(run_dir, data, config.device, say)
    report, metric = teacher.report, teacher.report.metric
    study = _progress_study(study_name or f"{report.study}-compress", storage, metric,
                            report.task)
    plans, skipped = plan_variants(teacher.model, teacher.n_parameters, config)
    with writing(out_dir, "Compress"):  # a kill half-way leaves the folder marked unfinished
        result = _compress_into(out_dir, run_dir, config, teacher, study, plans, skipped,
                                should_stop, say)
        result["wall_seconds"] = round(time.perf_counter() - started, 2)
        (out_dir / RESULTS).write_text(json.dumps(result, indent=2, default=json_default))
    return result


def _compress_into(out_dir: Path, run_dir: Path, config: CompressConfig, teacher, study,
                   plans, skipped, should_stop, say) -> dict:
    report, metric = teacher.report, teacher.report.metric
    entries: list[dict] = [_entry("reference", 1.0, teacher.model, teacher.n_parameters,
                                  teacher, teacher.model_dir, seconds=0.0, epochs=0)]
    students: dict[str, SequencePredictor] = {"reference": teacher.model}
    for kind, target, plan in plans:
        if should_stop and should_stop():
            raise CompressCancelled("stopped by the user")
        name = f"{kind}_{round(target * 100):03d}"
        say(f"{name}: {'pruning heads and width' if kind == 'pruned' else 'cutting layers'} "
            f"to {target:.0%} of {teacher.n_parameters:,} parameters, then distilling")
        student, entry = _variant(study, teacher, kind, target, plan, out_dir / name, config,
                                  should_stop)
        entries.append(entry)
        students[name] = student.model
        _export(student, teacher, out_dir / name, entry)
    say("timing every model on the same sequences and batches")
    n_timed = _time_and_describe(teacher, entries, students)
    result = {
        "run_dir": str(run_dir), "metric": metric,
        "direction": DIRECTIONS.get(metric, "maximize"),
        "task": report.task, "device": str(teacher.device),
        "backbone_untrained": report.best.backbone_untrained,
        "teacher": {"trial": report.best.trial, "n_parameters": teacher.n_parameters,
                    "description": report.best.description,
                    "trial_seconds": _trial_seconds(report)},
        "config": config.to_dict(), "entries": entries, "skipped": skipped,
        "throughput_sequences": n_timed,
    }
    return result


def load_teacher(run_dir: Path, data: str | Path | None, device: str,
                 say: Callable[[str], None]) -> Teacher:
    """The finished search's chosen model and dataset, checked; its training-split outputs
    cached."""
    report, model_dir = teacher_of(run_dir)
    dataset = dataset_of(report, data)
    torch_device = resolve_device(device)
    model, tokenizer = load_model(model_dir)
    model.to(torch_device).eval()
    splits = splits_of(dataset, model, tokenizer)
    say("caching the teacher's outputs on the training split")
    cache = TeacherCache.of(model, splits["train"].data, device=torch_device,
                            pad_id=tokenizer.pad_token_id)
    return Teacher(report, model_dir, dataset, model, tokenizer, splits, torch_device,
                   count_parameters(model), cache)


def plan_variants(teacher: SequencePredictor, n_teacher: int, config: CompressConfig
                  ) -> tuple[list[tuple[str, float, Compaction | int]], list[dict]]:
    """Per target, the pruned shape and the depth-only cut of about that size; and what
    cannot be made, with the reason."""
    plans: list[tuple[str, float, Compaction | int]] = []
    skipped = []
    for target in config.targets:
        budget = int(target * n_teacher)
        try:
            plans.append(("pruned", target, for_target(teacher, budget, config.importance)))
        except ValueError as exc:
            skipped.append({"target": target, "kind": "pruned", "reason": str(exc)})
        if config.depth_baseline:
            depth = depth_for(teacher, budget)
            if depth is None:
                skipped.append({"target": target, "kind": "depth", "reason":
                                "the model has one layer: there is no depth to cut"})
            else:
                plans.append(("depth", target, depth))
    return plans, skipped


def _variant(study: optuna.Study, teacher: Teacher, kind: str, target: float,
             plan: Compaction | int, path: Path, config: CompressConfig,
             should_stop: Callable[[], bool] | None) -> tuple[Student, dict]:
    """One variant made and tested, as one trial of the progress study."""
    with warnings.catch_warnings():  # one process asks and tells: no heartbeat needed
        warnings.filterwarnings("ignore", message="Heartbeat of storage")
        trial = study.ask()
    history: list[dict] = []

    def on_epoch(record: EpochRecord) -> None:
        history.append({**record.flat(), "phase": "distil"})
        trial.set_user_attr("history", history)

    trial.set_user_attr("host", socket.gethostname())
    trial.set_user_attr("pid", os.getpid())
    trial.set_user_attr("device", str(teacher.device))
    settings = TrainSettings(metric=teacher.report.metric, device=teacher.device, patience=3,
                             on_epoch=on_epoch, should_stop=_cancel_check(should_stop))
    run = DistilRun(teacher.splits["train"].data, teacher.splits["valid"].data,
                    teacher.splits["valid"].targets, teacher.pad_id, settings, config.distill)
    try:
        student = _student(teacher.model, plan, run, teacher.cache, teacher.device)
    except BaseException as exc:
        trial.set_user_attr("fail_reason", "cancelled" if isinstance(
            exc, CompressCancelled) else f"{type(exc).__name__}: {exc}"[:2000])
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        raise
    if student.model.arch.batch_size != teacher.model.arch.batch_size:
        trial.set_user_attr("oom_retry_batch_size", student.model.arch.batch_size)
    trial.set_user_attr("n_parameters", student.n_parameters)
    trial.set_user_attr("description", _describe(kind, target, student))
    entry = _entry(kind, target, student.model, student.n_parameters, teacher, path,
                   seconds=student.seconds, epochs=len(student.result.history))
    study.tell(trial, objective_value(entry["val"], teacher.report.metric))
    return student, entry


def _time_and_describe(teacher: Teacher, entries: list[dict],
                       students: dict[str, SequencePredictor]) -> int:
    """Every model timed on the same held-out sequences and batches; each variant's card
    written with its speed. Returns how many sequences were timed."""
    held_out = [teacher.splits["valid"], teacher.splits["test"]]  # none of them trained on
    timed = Encoded([x for s in held_out for x in s.data.ids],
                    np.concatenate([s.targets for s in held_out]))
    speed = throughput(students, timed, device=teacher.device, pad_id=teacher.pad_id)
    for entry, name in zip(entries, students):
        entry["throughput"] = speed[name]
        entry["speedup"] = round(speed[name] / speed["reference"], 3)
        if entry["kind"] != "reference":
            _card(entry, teacher, speed["reference"])
    return len(timed)


def _student(teacher: SequencePredictor, plan: Compaction | int, run: DistilRun,
             cache: TeacherCache, device: torch.device) -> Student:
    """One variant; out of memory, it is tried once more at half the batch size (as a
    search trial is)."""
    def make(run: DistilRun) -> Student:
        if isinstance(plan, Compaction):
            return pruned_student(teacher, plan, run, cache=cache)
        return truncated_student(teacher, plan, run, cache=cache)

    try:
        return make(run)
    except torch.OutOfMemoryError:
        if teacher.arch.batch_size <= 1:
            raise
        if device.type == "cuda":
            torch.cuda.empty_cache()
        return make(replace(run, settings=replace(
            run.settings, batch_size=max(1, teacher.arch.batch_size // 2))))


class CompressCancelled(Exception):
    """The user stopped the Compress job."""


def _cancel_check(should_stop: Callable[[], bool] | None) -> Callable[[], bool] | None:
    """Training's stop poll, raising :class:`CompressCancelled` instead of its own error."""
    if should_stop is None:
        return None

    def check() -> bool:
        if should_stop():
            raise CompressCancelled("stopped by the user")
        return False
    return check


def splits_of(dataset: Dataset, teacher: SequencePredictor, tokenizer) -> dict[str, Split]:
    out = {}
    info = teacher.info
    for split in ("train", "valid", "test"):
        part = dataset.part(split)
        raw = dataset.label_index(part["label"])
        targets = info.standardise(raw) if split == "train" else raw  # as the teacher learnt
        out[split] = Split(encode_split(list(part["sequence"]), targets, tokenizer), raw)
    if not len(out["train"].data) or not len(out["valid"].data):
        raise CompressError("the dataset has no training or validation rows to distil on.")
    return out


def _entry(kind: str, target: float, model: SequencePredictor, n_parameters: int,
           teacher: Teacher, path: Path, *, seconds: float, epochs: int) -> dict:
    """Validation and (once) held-out test metrics with bootstrap intervals."""
    entry: dict = {"kind": kind, "target": target, "n_parameters": n_parameters,
                   "n_layers": n_layers(model), "path": str(path),
                   "seconds": round(seconds, 2), "epochs": epochs}
    compaction = model.compaction
    if compaction is not None:
        entry["heads"], entry["ffn"] = list(compaction.heads), list(compaction.ffn)
    for split, key in (("valid", "val"), ("test", "test")):
        s = teacher.splits[split]
        if not len(s.data):
            entry[key] = {}
            continue
        metrics, output = evaluate(model, s.data, device=teacher.device,
                                   pad_id=teacher.pad_id, raw_targets=s.targets)
        entry[key] = metrics
        if key == "test":
            entry["test_ci"] = bootstrap_ci(model.info.task, s.targets, output)
    return entry


def _describe(kind: str, target: float, student: Student) -> str:
    if kind == "depth":
        return (f"depth-only truncation to {n_layers(student.model)} layers "
                f"({target:.0%} target), distilled")
    compaction = student.model.compaction
    assert compaction is not None
    return f"pruned to {compaction.describe()} ({target:.0%} target), distilled"


def _export(student: Student, teacher: Teacher, path: Path, entry: dict) -> None:
    report = teacher.report
    meta = {"study": report.study, "trial": report.best.trial,
            "metric": report.metric, "dataset_fingerprint": teacher.dataset.fingerprint,
            "val_metrics": entry["val"], "test_metrics": entry["test"],
            "n_parameters": entry["n_parameters"], "compressed_from": report.best.trial,
            "target": entry["target"], "kind": entry["kind"]}
    export_model(student.model, teacher.tokenizer, path, extra=meta,
                 train_sequences=list(teacher.dataset.part("train")["sequence"]))


def _card(entry: dict, teacher: Teacher, teacher_speed: float) -> None:
    """The variant's model card: the search's report with this model in its place."""
    report, n_teacher = teacher.report, teacher.n_parameters
    best = report.best
    config = json.loads((Path(entry["path"]) / "config.json").read_text())
    arch = {**best.architecture, **config["esm_nas"]["architecture"]}
    shrunk = (f"cut to {entry['n_layers']} layers (depth only)" if entry["kind"] == "depth"
              else "compacted")
    variant = replace(
        best, architecture=arch, val=entry["val"], test=entry["test"],
        test_ci=entry["test_ci"], n_parameters=entry["n_parameters"],
        model_dir=entry["path"], teacher_n_parameters=n_teacher, teacher_val=best.val,
        history=[], throughput=Throughput(teacher_speed, entry["throughput"],
                                          str(teacher.device)),
        description=(f"{best.description}; {shrunk} to {entry['n_parameters'] / n_teacher:.0%}"
                     " of its parameters and distilled"),
        compaction=config["esm_nas"]["compaction"] if entry["kind"] == "pruned"
        else best.compaction)
    write_model_card(entry["path"], replace(report, best=variant, pareto=None))


def _progress_study(name: str, storage: str | None, metric: str, task: Task) -> optuna.Study:
    direction = optuna.study.StudyDirection[DIRECTIONS.get(metric, "maximize").upper()]
    study = optuna.create_study(study_name=name, storage=make_storage(storage),
                                direction=direction, load_if_exists=True)
    study.set_user_attr("metric", metric)
    study.set_user_attr("task", task)
    study.set_user_attr("kind", "compress")
    return study


def _trial_seconds(report: Report) -> float | None:
    seconds = sum(row.get("seconds", 0) for row in report.best.history)
    return round(seconds, 2) if seconds else None
