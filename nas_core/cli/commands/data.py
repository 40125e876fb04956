"""What ``validate``, ``split`` and ``make-tiny-backbone`` do."""

from __future__ import annotations

import argparse
import json
import sys
import time

from nas_core.backbones.loading import make_tiny_backbone
from nas_core.backbones.registry import resolve
from nas_core.cli.commands.common import ingest, print_problems
from nas_core.cli.flags import EXIT_INVALID, EXIT_OK
from nas_core.common.report import DatasetSummary
from nas_core.data.pair_splits import WORDS as PAIR_SPLIT_WORDS


def cmd_validate(args: argparse.Namespace) -> int:
    outcome = ingest(args, out=sys.stdout if not args.json else sys.stderr)
    if outcome is None:
        if args.json:
            print(json.dumps({"ok": False, "problems": [{"severity": "error",
                                                          "code": "unreadable_file"}]}))
        return EXIT_INVALID
    result, notes, dataset = outcome.result, outcome.notes, outcome.dataset
    summary = dataset.summary() if dataset is not None else None
    if args.json:
        print(json.dumps({
            "ok": outcome.ok, "source": result.source, "rows_read": result.n_rows_read,
            "summary": None if summary is None or dataset is None else {
                **summary.to_dict(), "fingerprint": dataset.fingerprint},
            "applied_fixes": result.applied_fixes,
            "offered_fixes": result.offered_fixes,
            "problems": [{"severity": p.severity, "code": p.code, "message": p.message,
                          "where": list(p.where), "fix": p.fix}
                         for p in result.problems + notes],
        }, indent=2))
    else:
        print_problems(result)
        if summary is not None and dataset is not None:
            for note in notes:
                print(note)
            print(format_summary(summary, dataset.fingerprint))
    return EXIT_OK if outcome.ok else EXIT_INVALID


def format_summary(summary: DatasetSummary, fingerprint: str | None = None) -> str:
    lines = [f"{summary.n_sequences} sequences, task: {summary.task}"
             if summary.n_proteins is None else
             f"{summary.n_sequences} pairs of {summary.n_proteins} proteins, task: "
             f"{summary.task}"]
    if summary.pair_split:
        lines.append(f"split: {PAIR_SPLIT_WORDS.get(summary.pair_split, summary.pair_split)}")
    if summary.n_labelled_residues is not None:
        lines.append(f"one label per residue: {summary.n_labelled_residues:,} labelled "
                     "residues; proteins stay whole in the splits")
    length = summary.length
    lines.append(f"length: {length.min:g}-{length.max:g} residues (median {length.median:g})")
    if summary.classes is not None:
        total = sum(summary.classes.values())
        lines.append("classes: " + ", ".join(f"{k} {v} ({100 * v / total:.0f}%)"
                                             for k, v in summary.classes.items()))
    if summary.label is not None:
        lab = summary.label
        lines.append(f"label: {lab.min:.4g} to {lab.max:.4g} (mean {lab.mean:.4g}, "
                     f"sd {lab.std or 0:.3g})")
    if summary.splits is not None:
        lines.append("split: " + ", ".join(f"{k} {v}" for k, v in summary.splits.items()))
    if fingerprint:
        lines.append(f"fingerprint: {fingerprint[:16]}")
    return "\n".join(lines)


def cmd_split(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    outcome = ingest(args)
    if outcome is None:
        return EXIT_INVALID
    if not outcome.ok:
        print_problems(outcome.result)
        return EXIT_INVALID
    assert outcome.dataset is not None
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
    try:
        path = make_tiny_backbone(args.dir, layers=args.layers, hidden=args.hidden,
                                  heads=args.heads)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    print(f"wrote {resolve(str(path)).label} to {path}")
    return EXIT_OK
