"""CLI commands of the search engine: ``search`` and ``predict``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

from nas_core.objective import SearchListener
from nas_core.space import SearchSpace

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2


class PrintListener(SearchListener):
    """One line per finished trial."""

    def __init__(self, out=sys.stdout) -> None:
        self.out = out

    def trial_finished(self, trial) -> None:
        arch = trial.user_attrs.get("architecture", {})
        value = "-" if trial.values is None else ", ".join(f"{v:.4g}" for v in trial.values)
        if trial.state.name == "PRUNED" and trial.intermediate_values:
            last = max(trial.intermediate_values)
            value = f"{trial.intermediate_values[last]:.4g} (epoch {last})"
        choices = (f"{Path(arch.get('backbone', '?')).name} layers={arch.get('n_layers')} "
                   f"{arch.get('adaptation')} pool={arch.get('pooling')} "
                   f"head={arch.get('head_layers')} lr={arch.get('lr', 0):.1e}") if arch else ""
        seconds = trial.duration.total_seconds() if trial.duration else 0.0
        line = f"trial {trial.number:3d} {trial.state.name:8s} value={value} {choices} " \
               f"({seconds:.1f} s)"
        if trial.state.name == "FAIL":
            line += f" reason: {trial.user_attrs.get('fail_reason', 'unknown')}"
        print(line, file=self.out, flush=True)


def _space_from_args(args: argparse.Namespace) -> SearchSpace:
    kw: dict = {"backbones": tuple(b.strip() for b in args.backbone.split(",") if b.strip())}
    if args.space:
        kw.update(json.loads(Path(args.space).read_text()))
    if args.max_epochs:
        kw["max_epochs_range"] = (args.max_epochs, args.max_epochs)
    if args.adaptation:
        kw["adaptations"] = tuple(args.adaptation.split(","))
    if args.max_parameters:
        kw["max_parameters"] = args.max_parameters
    return SearchSpace.from_dict(kw)


def cmd_search(args: argparse.Namespace) -> int:
    from nas_core.backbones import BackboneUnavailable, ensure_loadable
    from nas_core.cli import ingest, print_problems
    from nas_core.datastore import DatasetStore
    from nas_core.jobs import default_devices
    from nas_core.study import SearchConfig, run_search
    from nas_core.workers import parse_workers, worker_devices

    outcome = ingest(args, store=DatasetStore())
    if outcome is None:
        return EXIT_INVALID
    if not outcome.ok:
        print_problems(outcome.result)
        return EXIT_INVALID
    try:
        config = SearchConfig(
            study_name=args.study or f"{outcome.dataset.name}-{time.strftime('%Y%m%d-%H%M%S')}",
            space=_space_from_args(args), n_trials=args.trials, timeout=args.timeout,
            sampler=args.sampler, pruner=args.pruner, objective=args.objective,
            metric=args.metric, seed=args.seed, device=args.device, patience=args.patience,
            workers=parse_workers(args.workers))
        for name in config.space.usable_backbones():
            ensure_loadable(name)
        config.metric_for(outcome.dataset.task)
    except (ValueError, BackboneUnavailable, json.JSONDecodeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    summary = outcome.dataset.summary()
    print(f"dataset {outcome.dataset.name}: {summary['n_sequences']} sequences, "
          f"{summary['task']}, split {summary['splits']}; study '{config.study_name}'",
          flush=True)
    devices = [config.device]
    if config.workers != 1:
        devices = worker_devices(config.workers, default_devices() if config.device == "auto"
                                 else [config.device])
        print(f"{len(devices)} workers: {', '.join(devices)}", flush=True)
    stop = threading.Event()
    try:
        report = run_search(config, outcome.dataset, args.out, storage=args.storage,
                            listeners=[PrintListener()], should_stop=stop.is_set,
                            dataset_path=outcome.stored.path, devices=devices)
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
    best, base = report["best"], report["baseline"]
    metric = report["metric"]
    print(f"\n{report['n_trials']} trials: {report['n_complete']} complete, "
          f"{report['n_pruned']} pruned, {report['n_failed']} failed "
          f"in {report['wall_seconds']:.1f} s")
    print(f"best (trial {best['trial']}): {best['description']}")
    print(f"  {metric}: validation {_fmt(best['val'].get(metric))}, held-out test "
          f"{_fmt(best['test'].get(metric))}; {best['n_parameters']:,} parameters")
    print(f"reference ({base['model']}): validation {_fmt(base['val'].get(metric))}, test "
          f"{_fmt(base.get('test', {}).get(metric))}")
    print(f"wrote {Path(args.out) / 'report.json'} and {best['model_dir']}")
    return EXIT_OK


def _study_store(args: argparse.Namespace) -> str | None:
    """The shared study database from --storage or $ESM_NAS_STORAGE, registered (its
    password stays in this process); None, with the message printed, when missing or bad."""
    from nas_core.storage import STORAGE_ENV, register

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
    import signal

    from nas_core.backbones import BackboneUnavailable
    from nas_core.storage import Heartbeat, public_url
    from nas_core.workers import DatabaseUnreachable, WorkerError, join

    url = _study_store(args)
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


def cmd_finalise(args: argparse.Namespace) -> int:
    from nas_core.study import finalise
    from nas_core.workers import WorkerError, connect, dataset_for

    url = _study_store(args)
    if url is None:
        return EXIT_INVALID
    try:
        study = connect(args.study, url, wait_seconds=10)
        report = finalise(study, dataset_for(study, args.data), args.out,
                          trial_number=args.trial, device=args.device)
    except (WorkerError, ValueError, RuntimeError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    best = report["best"]
    print(f"trial {best['trial']}: held-out test {report['metric']} "
          f"{_fmt(best['test'].get(report['metric']))}; wrote {best['model_dir']}")
    return EXIT_OK


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def cmd_predict(args: argparse.Namespace) -> int:
    from nas_core.predict import PredictionInputError, predict_file
    from nas_core.reading import DataFileError

    try:
        frame, problems, metrics = predict_file(args.model, args.data, device=args.device)
    except PredictionInputError as exc:
        for p in exc.problems:
            print(p, file=sys.stderr)
        return EXIT_INVALID
    except (DataFileError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    for p in problems:
        print(p, file=sys.stderr)
    frame.to_csv(args.out, index=False)
    print(f"wrote {len(frame)} predictions to {args.out}")
    if metrics:
        print("metrics against the labels in the input: " + ", ".join(
            f"{k} {v:.4f}" for k, v in metrics.items() if v is not None))
    return EXIT_OK


def cmd_push(args: argparse.Namespace) -> int:
    from nas_core.hub import PublishConfig, PublishError, publish

    try:
        config = PublishConfig(repo=args.repo, private=not args.public, license=args.license)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    try:
        url = publish(args.model_dir, config,
                      progress=lambda message, fraction: print(f"[{fraction:4.0%}] {message}",
                                                               flush=True))
    except PublishError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"published {url}")
    return EXIT_OK


def register(sub) -> None:
    from nas_core.cli import _add_data_args
    from nas_core.metrics import DIRECTIONS
    from nas_core.study import OBJECTIVES, PRUNERS, SAMPLERS

    p = sub.add_parser("search", help="run an architecture search and test the best model")
    _add_data_args(p)
    p.add_argument("--backbone", required=True,
                   help="comma-separated registry names (esm2_t6_8M,...) or local checkpoints")
    p.add_argument("--trials", type=int, default=None, help="total trials of the study")
    p.add_argument("--timeout", type=float, default=None, help="wall-clock limit in seconds")
    p.add_argument("--storage", default=None,
                   help="Optuna storage URL (default: SQLite in the workspace)")
    p.add_argument("--study", default=None, help="study name; an existing name resumes it")
    p.add_argument("--sampler", default="tpe", choices=SAMPLERS)
    p.add_argument("--pruner", default="median", choices=PRUNERS)
    p.add_argument("--objective", default="metric", choices=OBJECTIVES)
    p.add_argument("--metric", default=None, choices=sorted(DIRECTIONS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--patience", type=int, default=3)
    p.add_argument("--max-epochs", type=int, default=None)
    p.add_argument("--adaptation", default=None, help="e.g. lora or frozen,partial")
    p.add_argument("--max-parameters", type=int, default=None)
    p.add_argument("--space", default=None, help="JSON file narrowing the search space")
    p.add_argument("--workers", default="1",
                   help="worker processes on this machine: a number, or 'auto' (one per GPU)")
    p.add_argument("--out", required=True, help="folder for report.json and best_model/")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("worker", help="join an existing study and run its queued trials until "
                       "the budget is reached (one per GPU, on any machine)")
    p.add_argument("--storage", default=None,
                   help="study database URL (default: $ESM_NAS_STORAGE; prefer the variable "
                   "or ~/.pgpass for passwords: command lines are visible to other users)")
    p.add_argument("--study", required=True, help="name of the study to join")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: the study's)")
    p.add_argument("--data", default=None,
                   help="this machine's copy of the study's dataset folder or data.csv "
                   "(default: where the study says it is)")
    p.add_argument("--heartbeat-interval", type=int, default=30)
    p.add_argument("--grace-period", type=int, default=120,
                   help="seconds without a heartbeat before a trial counts as dead and is "
                   "queued again")
    p.add_argument("--db-wait", type=float, default=300,
                   help="seconds to wait for a lost database before giving up")
    p.add_argument("--seed-offset", type=int, default=None,
                   help="sampler seed offset of this worker (default: from the process id)")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("finalise", help="test the best (or a chosen) trial of a study once on "
                       "the held-out split and export it; run it where that trial's weights are")
    p.add_argument("--storage", default=None, help="study database URL (default: "
                   "$ESM_NAS_STORAGE)")
    p.add_argument("--study", required=True)
    p.add_argument("--data", default=None, help="this machine's copy of the study's dataset")
    p.add_argument("--trial", type=int, default=None, help="trial number (default: the best)")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", required=True, help="folder for report.json and best_model/")
    p.set_defaults(func=cmd_finalise)

    p = sub.add_parser("predict", help="predict new sequences with a saved model")
    p.add_argument("model", help="model directory (or Hub repository id)")
    p.add_argument("data", help="CSV/TSV/Excel/FASTA with a sequence column; labels optional")
    p.add_argument("--out", required=True, help="CSV to write")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("push", help="publish a model directory to the Hugging Face Hub "
                       "(token from HF_TOKEN, endpoint from HF_ENDPOINT)")
    p.add_argument("model_dir")
    p.add_argument("--repo", required=True, help="'name' or 'namespace/name'")
    visibility = p.add_mutually_exclusive_group()
    visibility.add_argument("--private", action="store_true", default=True,
                            help="private repository (the default)")
    visibility.add_argument("--public", action="store_true", help="public repository")
    p.add_argument("--license", default="mit")
    p.set_defaults(func=cmd_push)
