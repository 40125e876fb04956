"""What the commands share: reading a dataset from the command line, printing its problems and
formatting numbers."""

from __future__ import annotations

import argparse
import sys

from nas_core.data.dataset import grouped_messages
from nas_core.data.options import IngestOptions, SplitOptions
from nas_core.data.reading import DataFileError
from nas_core.data.store import DatasetStore, ImportOutcome, import_dataset
from nas_core.data.validation import ValidationResult


def stage(message: str, fraction: float) -> None:
    print(f"[{fraction:4.0%}] {message}", file=sys.stderr, flush=True)


def ingest(args: argparse.Namespace, out=sys.stdout, store: DatasetStore | None = None,
           progress=stage) -> ImportOutcome | None:
    """Read, validate and split from CLI args; None (message printed) if the file is unusable."""
    try:
        options = IngestOptions(seq_col=args.seq_col, label_col=args.label_col,
                                task=args.task, fixes=frozenset(args.fixes),
                                class_names=args.class_names or ())
        if args.mask and not args.labels:
            raise ValueError("--mask goes with --labels (the FLIP / biotrainer layout).")
        if args.proteins and args.labels:
            raise ValueError("--proteins (pairs listed by ID) and --labels (per-residue "
                             "labels) are two layouts: give one.")
        return import_dataset(args.data, options=options, store=store,
                              split_options=SplitOptions(method=args.method,
                                                         identity=args.identity,
                                                         seed=args.split_seed,
                                                         pairs=args.pair_split),
                              progress=progress, labels=args.labels, mask=args.mask,
                              proteins=args.proteins)
    except (DataFileError, ValueError) as exc:
        print(f"error: {exc}", file=out)
        return None


def print_problems(result: ValidationResult, out=None) -> None:
    out = out or sys.stdout  # looked up now: a redirected stdout is honoured
    for note in result.applied_fixes:
        print(f"fixed: {note}", file=out)
    for severity, problems in (("error", result.errors), ("warning", result.warnings)):
        for line in grouped_messages(problems):  # the same problem on many rows: one line
            print(f"{severity}: {line}", file=out)
    for fix, text in result.offered_fixes.items():
        print(f"fix available: {text} -> rerun with --fix {fix}", file=out)


def fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def interval(intervals: dict | None, metric: str) -> str:
    """' [low, high]': the 95% bootstrap interval of ``metric``, or nothing."""
    bounds = (intervals or {}).get(metric)
    return f" [{bounds[0]:.3f}, {bounds[1]:.3f}]" if bounds else ""
