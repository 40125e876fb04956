"""``python -m nas_core``: everything the app does, headless, through the same engine calls."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from nas_core import data as data_mod
from nas_core.datastore import ImportOutcome, import_dataset
from nas_core.reading import DataFileError
from nas_core.splits import METHODS, SplitOptions

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", help="CSV, TSV, Excel (.xlsx) or FASTA file (optionally .gz)")
    p.add_argument("--seq-col", help="column holding the sequences (default: detected)")
    p.add_argument("--label-col", help="column holding the labels (default: detected)")
    p.add_argument("--task", default="auto", choices=["auto", *data_mod.TASKS])
    p.add_argument("--fix", action="append", default=[], choices=sorted(data_mod.FIXES),
                   metavar="FIX", help="apply a named fix, e.g. drop_conflicts (repeatable); "
                   f"choices: {', '.join(sorted(data_mod.FIXES))}")
    p.add_argument("--split", default="homology", choices=METHODS,
                   help="homology: whole clusters of similar sequences per split (default, "
                   "recommended); random: stratified at random; column: the file's split "
                   "column (required then)")
    p.add_argument("--identity", type=float, default=None,
                   help="homology split: identity that keeps sequences together (default 0.3 "
                   "for proteins, 0.5 for short peptides)")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the split")


def _stage(message: str, fraction: float) -> None:
    print(f"[{fraction:4.0%}] {message}", file=sys.stderr, flush=True)


def ingest(args: argparse.Namespace, out=sys.stdout, store=None,
           progress=_stage) -> ImportOutcome | None:
    """Read, validate and split from CLI args; None (message printed) if the file is unusable."""
    try:
        options = data_mod.IngestOptions(seq_col=args.seq_col, label_col=args.label_col,
                                         task=args.task, fixes=frozenset(args.fix))
        return import_dataset(args.data, options=options, store=store,
                              split_options=SplitOptions(method=args.split,
                                                         identity=args.identity,
                                                         seed=args.split_seed),
                              progress=progress)
    except (DataFileError, ValueError) as exc:
        print(f"error: {exc}", file=out)
        return None


def print_problems(result: data_mod.ValidationResult, out=sys.stdout) -> None:
    for note in result.applied_fixes:
        print(f"fixed: {note}", file=out)
    for problem in result.problems:
        print(problem, file=out)
    for fix, text in result.offered_fixes.items():
        print(f"fix available: {text} -> rerun with --fix {fix}", file=out)


def cmd_validate(args: argparse.Namespace) -> int:
    outcome = ingest(args, out=sys.stdout if not args.json else sys.stderr)
    if outcome is None:
        if args.json:
            print(json.dumps({"ok": False, "problems": [{"severity": "error",
                                                          "code": "unreadable_file"}]}))
        return EXIT_INVALID
    result, notes, summary = outcome.result, outcome.notes, None
    if outcome.ok:
        summary = outcome.dataset.summary()
        summary["fingerprint"] = outcome.dataset.fingerprint
    if args.json:
        print(json.dumps({
            "ok": outcome.ok, "source": result.source, "rows_read": result.n_rows_read,
            "summary": summary, "applied_fixes": result.applied_fixes,
            "offered_fixes": result.offered_fixes,
            "problems": [{"severity": p.severity, "code": p.code, "message": p.message,
                          "where": list(p.where), "fix": p.fix}
                         for p in result.problems + notes],
        }, indent=2))
    else:
        print_problems(result)
        if summary:
            for note in notes:
                print(note)
            print(format_summary(summary))
    return EXIT_OK if outcome.ok else EXIT_INVALID


def format_summary(summary: dict) -> str:
    lines = [f"{summary['n_sequences']} sequences, task: {summary['task']}"]
    length = summary["length"]
    lines.append(f"length: {length['min']}-{length['max']} residues "
                 f"(median {length['median']:g})")
    if "classes" in summary:
        total = sum(summary["classes"].values())
        lines.append("classes: " + ", ".join(f"{k} {v} ({100 * v / total:.0f}%)"
                                             for k, v in summary["classes"].items()))
    if "label" in summary:
        lab = summary["label"]
        lines.append(f"label: {lab['min']:.4g} to {lab['max']:.4g} (mean {lab['mean']:.4g}, "
                     f"sd {lab['std']:.3g})")
    if "splits" in summary:
        lines.append("split: " + ", ".join(f"{k} {v}" for k, v in summary["splits"].items()))
    if "fingerprint" in summary:
        lines.append(f"fingerprint: {summary['fingerprint'][:16]}")
    return "\n".join(lines)


def cmd_split(args: argparse.Namespace) -> int:
    import time

    started = time.perf_counter()
    outcome = ingest(args)
    if outcome is None:
        return EXIT_INVALID
    if not outcome.ok:
        print_problems(outcome.result)
        return EXIT_INVALID
    for note in outcome.notes:
        print(note)
    frame = outcome.dataset.frame
    columns = [c for c in ("id", "sequence", "label", "split", "nearest_train_identity")
               if c in frame.columns]
    frame[columns].to_csv(args.out, index=False)
    test = frame.loc[frame["split"] == "test", "nearest_train_identity"]
    print(f"wrote {len(frame)} rows to {args.out} in {time.perf_counter() - started:.1f} s; "
          f"test sequences' identity to their nearest training sequence: median "
          f"{test.median():.2f}, max {test.max():.2f}")
    return EXIT_OK


def cmd_make_tiny_backbone(args: argparse.Namespace) -> int:
    from nas_core.backbones import make_tiny_backbone, resolve

    try:
        path = make_tiny_backbone(args.dir, layers=args.layers, hidden=args.hidden,
                                  heads=args.heads)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    print(f"wrote {resolve(str(path)).label} to {path}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m nas_core",
                                     description="ESM-NAS Studio engine, headless.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="check a labelled dataset and summarise it")
    _add_data_args(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("split", help="split a dataset into train/valid/test and write it with "
                       "each sequence's identity to its nearest training sequence")
    _add_data_args(p)
    p.add_argument("--method", dest="split", choices=METHODS,
                   help="same as --split")
    p.add_argument("--out", required=True, help="CSV to write")
    p.set_defaults(func=cmd_split)

    p = sub.add_parser("make-tiny-backbone",
                       help="write a random-weight ESM-2-shaped checkpoint (tests, offline demo)")
    p.add_argument("dir")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--heads", type=int, default=4)
    p.set_defaults(func=cmd_make_tiny_backbone)

    p = sub.add_parser("backup", help="back up the study database and the workspace")
    p.add_argument("out", help="a new folder for the backup")
    p.add_argument("--storage", default=None,
                   help="study database URL (default: $ESM_NAS_STORAGE or the workspace's)")
    p.set_defaults(func=cmd_backup)

    p = sub.add_parser("restore", help="restore a backup into an empty database and workspace")
    p.add_argument("backup", help="the backup folder")
    p.add_argument("--storage", default=None,
                   help="study database URL (default: $ESM_NAS_STORAGE or the workspace's)")
    p.add_argument("--force", action="store_true",
                   help="overwrite a database or workspace that is not empty")
    p.set_defaults(func=cmd_restore)

    _register_more(sub)
    return parser


def cmd_backup(args: argparse.Namespace) -> int:
    from nas_core.backup import BackupError, backup
    from nas_core.storage import configured_url

    try:
        manifest = backup(args.out, configured_url(secret=args.storage))
    except (BackupError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"backed up {len(manifest['studies'])} studies from {manifest['storage']} and the "
          f"workspace {manifest['workspace']} to {args.out}")
    return EXIT_OK


def cmd_restore(args: argparse.Namespace) -> int:
    from nas_core.backup import BackupError, restore
    from nas_core.storage import configured_url

    try:
        manifest = restore(args.backup, configured_url(secret=args.storage), force=args.force)
    except (BackupError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"restored {len(manifest['studies'])} studies and the workspace from {args.backup} "
          f"(backup of {manifest['created']})")
    return EXIT_OK


def _register_more(sub) -> None:
    """The search, predict and push commands live in their own module."""
    from nas_core import cli_search

    cli_search.register(sub)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)
