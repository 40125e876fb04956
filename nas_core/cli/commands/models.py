"""What ``predict``, ``suggest``, ``compress``, ``push`` and ``download-backbone`` do."""

from __future__ import annotations

import argparse
import os
import sys

from nas_core.backbones.download import DownloadError, download, gigabytes
from nas_core.backbones.registry import REGISTRY
from nas_core.cli.flags import EXIT_FAILED, EXIT_INVALID, EXIT_OK
from nas_core.compression.compress import CompressCancelled, compress
from nas_core.compression.config import RESULTS, CompressConfig, CompressError, parse_targets
from nas_core.data.reading import DataFileError
from nas_core.design.config import SuggestConfig
from nas_core.design.suggest import SuggestError, suggest
from nas_core.modeling.compaction_options import DistillConfig
from nas_core.publishing.config import PublishConfig
from nas_core.publishing.hub import PublishError, publish
from nas_core.publishing.predict import PredictionInputError, predict_file


def cmd_download(args: argparse.Namespace) -> int:
    if args.name not in REGISTRY:
        print(f"error: '{args.name}' is not in the registry ({', '.join(REGISTRY)}).",
              file=sys.stderr)
        return EXIT_INVALID
    shown = {"percent": -1}

    def progress(done: int, total: int) -> None:
        percent = int(100 * done / total) if total else 0
        if percent != shown["percent"]:
            shown["percent"] = percent
            print(f"[{percent:3d}%] {gigabytes(done)} of {gigabytes(total)}", file=sys.stderr,
                  flush=True)

    try:
        folder = download(args.name, endpoint=os.environ.get("HF_ENDPOINT") or None,
                          progress=progress)
    except DownloadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"{args.name} is in the Hugging Face cache: {folder}")
    return EXIT_OK


def cmd_predict(args: argparse.Namespace) -> int:
    try:
        frame, problems, metrics = predict_file(args.model, args.data, device=args.device,
                                                proteins=args.proteins, bait=args.bait)
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


def cmd_suggest(args: argparse.Namespace) -> int:
    goal = "class" if args.target_class is not None and args.goal == "maximize" else args.goal
    try:
        config = SuggestConfig(batch=args.batch, goal=goal, target_class=args.target_class,
                               rule=args.rule, diversity=args.diversity, seed=args.seed)
        result = suggest(args.run_dir, args.candidates, config, proteins=args.proteins)
    except (SuggestError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    result.frame.to_csv(args.out, index=False)
    print(f"wrote {len(result.frame)} ranked candidates to {args.out} (model: "
          f"{result.model_dir.name}, rule {config.rule})")
    return EXIT_OK


def cmd_compress(args: argparse.Namespace) -> int:
    try:
        distill = DistillConfig(alpha=args.alpha, temperature=args.temperature,
                                epochs=args.epochs)
        config = CompressConfig(targets=parse_targets(args.targets),
                                depth_baseline=args.depth_baseline, importance=args.importance,
                                device=args.device, distill=distill)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    try:
        result = compress(args.run_dir, args.out, config, data=args.data,
                          progress=lambda text: print(text, flush=True))
    except CompressError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except (CompressCancelled, KeyboardInterrupt):
        print("stopped: nothing was written to compress.json.", file=sys.stderr)
        return EXIT_FAILED
    metric = result["metric"]
    for entry in result["entries"]:
        test = entry["test"].get(metric)
        print(f"{entry['kind']:9s} {entry['target']:>5.0%} {entry['n_parameters']:>12,} "
              f"parameters  validation {metric} {entry['val'].get(metric, float('nan')):.4f}  "
              f"test {test if test is None else round(test, 4)}  "
              f"{entry['throughput']:.1f} seq/s ({entry['speedup']:.2f}x)")
    for skip in result["skipped"]:
        print(f"skipped {skip['kind']} at {skip['target']:.0%}: {skip['reason']}")
    if result["backbone_untrained"]:
        print("note: the backbone has random (untrained) weights: a demo, not ESM-2.")
    print(f"wrote {args.out}/{RESULTS} in {result['wall_seconds']:.1f} s")
    return EXIT_OK


def cmd_push(args: argparse.Namespace) -> int:
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
