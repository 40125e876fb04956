"""Model commands: ``predict`` new sequences, ``compress`` a finished search's model, ``push`` a
model to the Hugging Face Hub and ``download-backbone`` an ESM-2 checkpoint."""

from __future__ import annotations

import argparse
import os
import sys

from nas_core.backbones.download import DownloadError, download, gigabytes
from nas_core.backbones.registry import REGISTRY
from nas_core.cli.common import EXIT_FAILED, EXIT_INVALID, EXIT_OK, add_field
from nas_core.compression.compress import (
    RESULTS,
    CompressCancelled,
    CompressConfig,
    CompressError,
    compress,
    parse_targets,
)
from nas_core.data.reading import DataFileError
from nas_core.design.suggest import SuggestConfig, SuggestError, suggest
from nas_core.modeling.distillation import DistillConfig
from nas_core.publishing.hub import PublishConfig, PublishError, publish
from nas_core.publishing.predict import PredictionInputError, predict_file


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="predict new sequences with a saved model")
    p.add_argument("model", help="model directory (or Hub repository id)")
    p.add_argument("data", help="CSV/TSV/Excel/FASTA with a sequence column; labels optional")
    p.add_argument("--out", required=True, help="CSV to write")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("suggest", help="test these next: rank unlabelled candidate sequences "
                       "with a finished search's ensemble (or best model) and pick a diverse "
                       "batch to make and measure")
    p.add_argument("run_dir", help="the search's --out folder (ensemble_model/ or best_model/)")
    p.add_argument("candidates", help="FASTA, CSV, TSV or Excel file of candidate sequences")
    add_field(p, SuggestConfig, "batch")
    add_field(p, SuggestConfig, "goal")
    add_field(p, SuggestConfig, "target_class", "--class")
    add_field(p, SuggestConfig, "rule")
    add_field(p, SuggestConfig, "diversity", type=float)
    add_field(p, SuggestConfig, "seed")
    p.add_argument("--out", required=True, help="CSV to write the ranked batch to")
    p.set_defaults(func=cmd_suggest)

    p = sub.add_parser("compress", help="smaller variants of a finished search's model: heads "
                       "and feed-forward width pruned by importance, recovered by distillation; "
                       "each tested once on the held-out split and timed")
    p.add_argument("run_dir", help="the search's --out folder (report.json, best_model/)")
    p.add_argument("--targets", default="0.75,0.5,0.25",
                   help="target sizes as shares of the model's parameters, comma-separated "
                   "(0.05 to 1; default: 0.75,0.5,0.25)")
    p.add_argument("--out", required=True, help=f"folder for {RESULTS} and the variants")
    p.add_argument("--data", default=None, help="the stored dataset folder the search ran on "
                   "(default: where its report says)")
    add_field(p, CompressConfig, "importance")
    add_field(p, CompressConfig, "depth_baseline", "--no-depth-baseline",
              help="Skip the depth-only truncations of the same sizes (faster; no "
              "comparison on the curve).")
    add_field(p, CompressConfig, "device")
    add_field(p, DistillConfig, "epochs", "--epochs", type=int)
    add_field(p, DistillConfig, "alpha", type=float)
    add_field(p, DistillConfig, "temperature", type=float)
    p.set_defaults(func=cmd_compress)

    p = sub.add_parser("push", help="publish a model directory to the Hugging Face Hub "
                       "(token from HF_TOKEN, endpoint from HF_ENDPOINT)")
    p.add_argument("model_dir")
    add_field(p, PublishConfig, "repo", required=True)
    visibility = p.add_mutually_exclusive_group()
    add_field(visibility, PublishConfig, "private", action="store_true", default=True)
    visibility.add_argument("--public", action="store_true", help="public repository")
    add_field(p, PublishConfig, "license")
    p.set_defaults(func=cmd_push)

    p = sub.add_parser("download-backbone", help="fetch an ESM-2 checkpoint into the Hugging "
                       "Face cache before a search needs it (size, progress, resumes an "
                       "interrupted download; endpoint from HF_ENDPOINT)")
    p.add_argument("name", help=f"registry name: {', '.join(REGISTRY)}")
    p.set_defaults(func=cmd_download)


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


def cmd_suggest(args: argparse.Namespace) -> int:
    goal = "class" if args.target_class is not None and args.goal == "maximize" else args.goal
    try:
        config = SuggestConfig(batch=args.batch, goal=goal, target_class=args.target_class,
                               rule=args.rule, diversity=args.diversity, seed=args.seed)
        result = suggest(args.run_dir, args.candidates, config)
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
