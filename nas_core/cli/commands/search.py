"""What ``search``, ``worker``, ``next-round`` and ``finalise`` do."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

from nas_core.backbones.loading import ensure_loadable
from nas_core.backbones.registry import BackboneUnavailable
from nas_core.cli.commands.common import fmt, ingest, interval, print_problems
from nas_core.cli.flags import (
    EXIT_FAILED,
    EXIT_INVALID,
    EXIT_OK,
)
from nas_core.common.report import REPORT_FILE, DatasetSummary, Report, load_report
from nas_core.common.workspace import STORAGE_ENV, workspace_root
from nas_core.data.extend import extend_dataset
from nas_core.data.pair_splits import EXPLANATION as PAIR_SPLIT_EXPLANATION
from nas_core.data.pair_splits import WORDS as PAIR_SPLIT_WORDS
from nas_core.data.store import DatasetStore
from nas_core.evaluation.finalise import finalise
from nas_core.runtime.jobs import default_devices, next_round_name
from nas_core.runtime.jobtable import JobTable
from nas_core.runtime.launch import finalise_stopped, run_search
from nas_core.runtime.workers import (
    DatabaseUnreachable,
    WorkerError,
    connect,
    dataset_for,
    join,
    parse_workers,
    worker_devices,
)
from nas_core.search.config import CONFIG_ATTR, Heartbeat, SearchConfig
from nas_core.search.objective import SearchListener
from nas_core.search.presets import backbone_source
from nas_core.search.space import SearchSpace
from nas_core.search.storage import public_url, register
from nas_core.search.throughput import Throughput, estimate
from nas_core.views.monitor import format_eta


class PrintListener(SearchListener):
    """One line per finished trial, its validation metric named."""

    def __init__(self, out=sys.stdout, metric: str = "value") -> None:
        self.out, self.metric = out, metric

    def trial_finished(self, trial) -> None:
        arch = trial.user_attrs.get("architecture", {})
        value = "-" if trial.values is None else trial_values(trial.values)
        if trial.state.name == "PRUNED" and trial.intermediate_values:
            last = max(trial.intermediate_values)
            value = f"{trial.intermediate_values[last]:.4g} (epoch {last})"
        choices = (f"{Path(arch.get('backbone', '?')).name} layers={arch.get('n_layers')} "
                   f"{arch.get('adaptation')} pool={arch.get('pooling')} "
                   f"head={arch.get('head_layers')} lr={arch.get('lr', 0):.1e}"
                   + (f" pair={arch['pair_head']}" if "pair_head" in trial.params else "")
                   ) if arch else ""
        seconds = trial.duration.total_seconds() if trial.duration else 0.0
        line = f"trial {trial.number:3d} {trial.state.name:8s} validation {self.metric}=" \
               f"{value} {choices} ({seconds:.1f} s)"
        if trial.state.name == "FAIL":
            line += f" reason: {trial.user_attrs.get('fail_reason', 'unknown')}"
        print(line, file=self.out, flush=True)


def trial_values(values: list[float]) -> str:
    """The metric, and with two objectives the parameter count as a count."""
    text = f"{values[0]:.4g}"
    return text if len(values) == 1 else f"{text}, {int(values[1]):,} parameters"


def space_from_args(args: argparse.Namespace) -> SearchSpace:
    """The search space of the command line; backbones may be named as the app names them
    (untrained-demo, a backbone pretrained here or in the workspace)."""
    kw: dict = {"backbones": tuple(backbone_source(b.strip())
                                   for b in args.backbone.split(",") if b.strip())}
    if args.space:
        kw.update(json.loads(Path(args.space).read_text()))
    if args.max_epochs:
        kw["max_epochs_range"] = (args.max_epochs, args.max_epochs)
    if args.adaptation:
        kw["adaptations"] = tuple(args.adaptation.split(","))
    if args.max_parameters:
        kw["max_parameters"] = args.max_parameters
    return SearchSpace.from_dict(kw)


def _announce(dataset, config: SearchConfig) -> DatasetSummary:
    """What is searched (sequences, or pairs of proteins and their split) and the time it
    should take on this machine."""
    summary = dataset.summary()
    counted = (f"{summary.n_sequences} pairs of {summary.n_proteins} proteins"
               if summary.n_proteins is not None else f"{summary.n_sequences} sequences")
    split = (f" ({PAIR_SPLIT_WORDS.get(summary.pair_split, summary.pair_split)})"
             if summary.pair_split else "")
    print(f"dataset {dataset.name}: {counted}, {summary.task}, split {summary.splits}{split}; "
          f"study '{config.study_name}'", flush=True)
    lengths = dataset.frame["sequence"].str.len()
    if dataset.pairs:  # a pair model reads both partners
        lengths = lengths + dataset.frame["sequence_2"].str.len()
    if config.n_trials:
        expected = estimate(config.space, config.n_trials, len(dataset.part("train")),
                            len(dataset.part("valid")), float(lengths.mean()),
                            "cuda" if default_devices()[0].startswith("cuda") and
                            config.device != "cpu" else "cpu", Throughput(),
                            min_tokens=config.min_batch_tokens,
                            frozen_first=config.frozen_first)
        print(f"estimated run time on this machine: {format_eta(expected.low)} to "
              f"{format_eta(expected.high)}" + ("" if expected.measured else
                                                " (rough: a backbone is not downloaded)"),
              flush=True)
    return summary


def cmd_search(args: argparse.Namespace) -> int:
    try:  # the space and its backbones first: reading and splitting the data take a while
        space = space_from_args(args)
        for name in space.usable_backbones():
            ensure_loadable(name)
    except (ValueError, BackboneUnavailable, json.JSONDecodeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    outcome = ingest(args, store=DatasetStore())
    if outcome is None:
        return EXIT_INVALID
    if outcome.dataset is None or outcome.stored is None:
        print_problems(outcome.result)
        return EXIT_INVALID
    dataset, stored = outcome.dataset, outcome.stored
    try:
        config = SearchConfig(
            study_name=args.study or f"{dataset.name}-{time.strftime('%Y%m%d-%H%M%S')}",
            space=space, n_trials=args.n_trials, timeout=args.timeout,
            sampler=args.sampler, pruner=args.pruner, objective=args.objective,
            metric=args.metric, seed=args.seed, device=args.device, patience=args.patience,
            ensemble_size=args.ensemble_size, workers=parse_workers(args.workers),
            min_batch_tokens=args.min_batch_tokens or None, lr_scaling=args.lr_scaling,
            frozen_first=args.frozen_first)
        config.metric_for(dataset.task)
    except (ValueError, BackboneUnavailable, json.JSONDecodeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    summary = _announce(dataset, config)
    devices = [config.device]
    if config.workers != 1:
        devices = worker_devices(config.workers, default_devices() if config.device == "auto"
                                 else [config.device])
        print(f"{len(devices)} workers: {', '.join(devices)}", flush=True)
    try:  # Ctrl-C stops the search; the same command resumes it
        report = run_search(config, dataset, args.out, storage=args.storage,
                            listeners=[PrintListener(metric=config.metric_for(dataset.task))],
                            dataset_path=stored.path, devices=devices)
    except KeyboardInterrupt:
        print(f"interrupted: rerun the same command with --study {config.study_name} to resume.",
              file=sys.stderr)
        return EXIT_FAILED
    except (RuntimeError, ValueError, FileNotFoundError, BackboneUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if report is None:
        print(f"stopped: rerun with --study {config.study_name} to resume.", file=sys.stderr)
        return EXIT_FAILED
    best, base = report.best, report.baseline
    metric = report.metric
    print(f"\n{report.n_trials} trials: {report.n_complete} complete, "
          f"{report.n_pruned} pruned, {report.n_failed} failed "
          f"in {report.wall_or_trial_seconds:.1f} s")
    print(f"best (trial {best.trial}): {best.description}")
    print(f"  {metric}: validation {fmt(best.val.get(metric))}, held-out test "
          f"{fmt(best.test.get(metric))}{interval(best.test_ci, metric)}; "
          f"{best.n_parameters:,} parameters")
    print(f"reference ({base.model}): validation {fmt((base.val or {}).get(metric))}, test "
          f"{fmt((base.test or {}).get(metric))}{interval(base.test_ci, metric)}"
          + (f"; the model minus the reference: {report.vs_reference.verdict}"
             if report.vs_reference else ""))
    if summary.pair_split:
        print(f"split: {PAIR_SPLIT_EXPLANATION.get(summary.pair_split, summary.pair_split)}")
    print(f"wrote {Path(args.out) / REPORT_FILE} and {best.model_dir}")
    return EXIT_OK


def study_store(args: argparse.Namespace) -> str | None:
    """The shared study database from --storage or $ESM_NAS_STORAGE, registered (its
    password stays in this process); None, with the message printed, when missing or bad."""
    url = args.storage or os.environ.get(STORAGE_ENV)
    if not url:
        print(f"error: give the study database: --storage URL or ${STORAGE_ENV}.",
              file=sys.stderr)
        return None
    try:
        return register(url)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


def cmd_worker(args: argparse.Namespace) -> int:
    url = study_store(args)
    if url is None:
        return EXIT_INVALID
    try:
        heartbeat = Heartbeat(args.heartbeat_interval, args.grace_period)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    stop = threading.Event()

    def on_signal(signum, frame) -> None:
        print("stopping after the current epoch; its trial goes back to the queue",
              file=sys.stderr, flush=True)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"worker {os.getpid()} joining study '{args.study}' at {public_url(url)}", flush=True)
    try:
        done = join(args.study, url, device=args.device, data=args.data, heartbeat=heartbeat,
                    db_wait=args.db_wait, seed_offset=args.seed_offset,
                    listeners=[PrintListener()], should_stop=stop.is_set)
    except (WorkerError, BackboneUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED if isinstance(exc, DatabaseUnreachable) else EXIT_INVALID
    print(f"{'stopped' if stop.is_set() else 'budget reached'}: this worker finished {done} "
          "trials", flush=True)
    return EXIT_OK


def cmd_next_round(args: argparse.Namespace) -> int:
    report = load_report(args.run_dir)
    if report is None:
        print(f"error: {args.run_dir} has no report.json: give the folder of a finished "
              "search (its --out).", file=sys.stderr)
        return EXIT_INVALID
    store = DatasetStore()
    folder = Path(report.dataset.path or "").parent
    try:
        parent = store.get(folder.name)
    except KeyError:
        print(f"error: the dataset this search ran on ({report.dataset.name}) is not "
              "stored in this workspace: run next-round where the search ran.",
              file=sys.stderr)
        return EXIT_INVALID
    extension = extend_dataset(parent, args.measurements, store=store)
    for problem in extension.problems:
        print(problem, file=sys.stderr)
    for note in extension.notes:
        print(f"note: {note}", file=sys.stderr)
    if not extension.ok or extension.stored is None or extension.dataset is None:
        return EXIT_INVALID
    print(f"dataset {extension.stored.name}: {extension.stored.n_sequences} sequences "
          f"({', '.join(f'{n} new in {s}' for s, n in extension.added.items() if n)})")
    url = args.storage or os.environ.get(STORAGE_ENV) or report.storage
    try:
        study = connect(report.study, register(url) if url else "", wait_seconds=10)
        config = replace(SearchConfig.from_dict(study.user_attrs[CONFIG_ATTR]),
                         study_name=args.study or next_round_name(report.study, set()),
                         parent_study=report.study, workers=1)
        result = run_search(config, extension.dataset, args.out, storage=url,
                            listeners=[PrintListener(metric=report.metric)],
                            dataset_path=extension.stored.path)
    except (WorkerError, RuntimeError, ValueError, FileNotFoundError,
            BackboneUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if result is None:
        return EXIT_FAILED
    print(f"study {config.study_name} (continues {report.study}): best trial "
          f"{result.best.trial}, held-out test {result.metric} "
          f"{fmt(result.test_value())}; wrote {args.out}")
    return EXIT_OK


def cmd_finalise(args: argparse.Namespace) -> int:
    if args.job:
        return _finalise_job(args.job)
    if not args.out:
        print("error: --study needs --out (the folder for report.json and best_model/).",
              file=sys.stderr)
        return EXIT_INVALID
    url = study_store(args)
    if url is None:
        return EXIT_INVALID
    try:
        study = connect(args.study, url, wait_seconds=10)
        report = finalise(study, dataset_for(study, args.data), args.out,
                          trial_number=args.trial, device=args.device,
                          ensemble_size=args.ensemble_size)
    except (WorkerError, ValueError, RuntimeError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return _finalised(report)


def _finalised(report: Report) -> int:
    print(f"trial {report.best.trial}: held-out test {report.metric} "
          f"{fmt(report.test_value())}; wrote {report.best.model_dir}")
    if report.budget_note:
        print(report.budget_note)
    return EXIT_OK


def _finalise_job(job_id: str) -> int:
    table = JobTable(workspace_root() / "jobs.db")
    job = next((j for j in table.all() if j.id == job_id), None)
    if job is None:
        print(f"error: no job '{job_id}' in this workspace.", file=sys.stderr)
        return EXIT_INVALID
    try:
        report = finalise_stopped(job, None)
    except (ValueError, RuntimeError, FileNotFoundError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return _finalised(report)
