"""Compaction benchmark: a task-trained teacher compressed to half its parameters, side by side
in one run. The teacher's backbone is ESM-2-8M-shaped (6 layers, 320 wide, 20 heads, 1,280
feed-forward) with RANDOM initial weights, or ``--backbone`` (the backbone pretrained here, or
``random-twin``: its shape with random weights), fully fine-tuned on the task here:

- compaction_quality_at_half: validation metric of the pruned + distilled variant ÷ the
  teacher's, beside a same-size depth-only truncation (distilled the same way) and the same
  pruned model trained without distillation;
- compaction_speedup_at_half: inference throughput of that variant ÷ the teacher's, same
  sequences and batches;
- compress_cost: wall time of the Compress step ÷ the teacher's trial;
- importance: Taylor (Michel et al.) against activation (Minitron) ranking, right after pruning
  and after distillation.

``python -m benchmarks.compaction [--device cuda] [--backbone DIR|random-twin] [--write]``
(about 10 minutes on 2 CPU cores for the 8M shape).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import optuna
import torch

from benchmarks.run import append_results, machine, random_twin, say
from nas_core.backbones.loading import encode, make_tiny_backbone
from nas_core.backbones.registry import resolve
from nas_core.compression.compress import compress, splits_of, throughput
from nas_core.compression.config import CompressConfig
from nas_core.data.options import SplitOptions
from nas_core.data.splits import assign_splits
from nas_core.data.store import DatasetStore
from nas_core.data.validation import load_dataset
from nas_core.modeling.batches import Encoded
from nas_core.modeling.build import merged_copy
from nas_core.modeling.compaction import DistilRun, TeacherCache, pruned_student
from nas_core.modeling.compaction_options import DistillConfig
from nas_core.modeling.pruning import Compaction, apply, importance
from nas_core.modeling.training import TrainSettings, evaluate
from nas_core.publishing.export import load_model
from nas_core.runtime.launch import run_search
from nas_core.search.config import SearchConfig
from nas_core.search.space import SearchSpace

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--data", default="anticancer_vs_random.csv",
                        help="a shipped classification dataset in assets/")
    parser.add_argument("--epochs", type=int, default=12, help="teacher's epoch budget")
    parser.add_argument("--long", type=int, default=None,
                        help="protein-length sequences (238 residues, GFP's length) timed as "
                        "well; default 256 on the CPU, 4,096 on a GPU")
    parser.add_argument("--backbone", default=None,
                        help="the teacher's backbone: a checkpoint folder, or random-twin (the "
                        "shipped pretrained backbone's shape with random weights); default an "
                        "ESM-2-8M shape with random weights")
    parser.add_argument("--write", action="store_true", help="append to benchmarks/RESULTS.md")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as workdir:
        root = Path(workdir) / "ws"
        os.environ["ESM_NAS_HOME"] = str(root)
        backbone = _backbone(args.backbone, Path(workdir))
        spec = resolve(str(backbone))
        result = load_dataset(ROOT / "assets" / args.data)
        assert result.dataset is not None, result.problems
        dataset = assign_splits(result.dataset, SplitOptions(method="homology"))[0]
        stored = DatasetStore(root).save(dataset, source=args.data)
        space = SearchSpace(backbones=(str(backbone),), layers_range=(spec.layers, spec.layers),
                            adaptations=("full",), poolings=("mean",), head_layers_range=(0, 0),
                            lr_range=(3e-4, 3e-4), weight_decay_range=(1e-4, 1e-4),
                            dropout_range=(0.1, 0.1), batch_sizes=(32,),
                            max_epochs_range=(args.epochs, args.epochs),
                            contrastive_weight_range=(0.0, 0.0), heads_kept=(1.0,),
                            ffn_kept=(1.0,))
        config = SearchConfig("teacher", space, n_trials=1, pruner="none", patience=4,
                              device=args.device)
        started = time.perf_counter()
        report = run_search(config, DatasetStore(root).load(stored.id), Path(workdir) / "run",
                            root=root, dataset_path=stored.path)
        assert report is not None
        teacher_seconds = time.perf_counter() - started
        metric = report.metric
        say(f"machine: {machine()}")
        say(f"data: {args.data} ({report.dataset.summary.n_sequences} sequences, "
            f"{metric}); teacher: {spec.name} ({spec.layers} x {spec.hidden}, {spec.heads} "
            f"heads, {spec.intermediate:,} feed-forward) "
            + ("with RANDOM initial weights" if spec.untrained else f"({spec.learnt})")
            + f", fully fine-tuned on the task; device {args.device}")

        started = time.perf_counter()
        result_c = compress(Path(workdir) / "run", Path(workdir) / "compressed",
                            CompressConfig(targets=(0.5,), device=args.device))
        compress_seconds = time.perf_counter() - started
        by_kind = {e["kind"]: e for e in result_c["entries"]}
        ref, pruned, depth = by_kind["reference"], by_kind["pruned"], by_kind.get("depth")

        # the same pruned shape, trained on the task loss alone; and activation importance
        device = torch.device(args.device)
        teacher, tokenizer = load_model(Path(workdir) / "run" / "best_model")
        teacher.to(device)
        splits = splits_of(dataset, teacher, tokenizer)
        cache = TeacherCache.of(teacher, splits["train"].data, device=device,
                                pad_id=tokenizer.pad_token_id)
        run = DistilRun(splits["train"].data, splits["valid"].data, splits["valid"].targets,
                        tokenizer.pad_token_id, TrainSettings(metric, device, patience=3),
                        DistillConfig())
        shape = Compaction(tuple(pruned["heads"]), tuple(pruned["ffn"]), spec.heads,
                           spec.intermediate)
        plain = pruned_student(teacher, shape, run, distil=False)
        activation = pruned_student(teacher, replace(shape, method="activation"), run,
                                    cache=cache)
        val_of = {name: _val(model, splits, metric, device, tokenizer.pad_token_id)
                  for name, model in (("plain", plain.model), ("activation", activation.model))}
        raw = {}
        for method in ("taylor", "activation"):  # right after pruning, before any training
            student = merged_copy(teacher)
            apply(student, replace(shape, method=method), importance(
                student, splits["train"].data, device=device, pad_id=tokenizer.pad_token_id,
                method=method))
            raw[method] = _val(student, splits, metric, device, tokenizer.pad_token_id)

        t = ref["val"][metric]
        say(f"compaction_quality_at_half: {pruned['val'][metric] / t:.3f}")
        say(f"  validation {metric}: teacher {t:.4f} ({ref['n_parameters']:,} parameters); "
            f"pruned + distilled {pruned['val'][metric]:.4f} ({pruned['n_parameters']:,}, "
            f"{pruned['n_parameters'] / ref['n_parameters']:.0%}; {pruned['heads'][0]} of "
            f"{spec.heads} heads and {pruned['ffn'][0]:,} of {spec.intermediate:,} neurons per "
            "layer); "
            + (f"depth-only truncation to {depth['n_layers']} layers, distilled "
               f"{depth['val'][metric]:.4f} ({depth['n_parameters']:,}); " if depth else "")
            + f"same pruned model without distillation {val_of['plain']:.4f}")
        say(f"  held-out test {metric}: teacher {ref['test'][metric]:.4f} "
            f"{_ci(ref, metric)}; pruned + distilled {pruned['test'][metric]:.4f} "
            f"{_ci(pruned, metric)}"
            + (f"; depth-only {depth['test'][metric]:.4f} {_ci(depth, metric)}" if depth
               else ""))
        base = report.baseline
        if base.test and base.test_ci and base.test_ci.get(metric):
            low, high = base.test_ci[metric] or (0.0, 0.0)
            say(f"  reference ({base.model}), same splits: held-out test {metric} "
                f"{base.test[metric]:.4f} [{low:.3f}, {high:.3f}]")
        say(f"compaction_speedup_at_half: {pruned['speedup']:.2f}x")
        say(f"  {ref['throughput']:.1f} vs {pruned['throughput']:.1f} sequences/s on "
            f"{result_c['throughput_sequences']} validation and test sequences, same batches "
            "(best of 3 interleaved rounds)" + (f"; depth-only {depth['throughput']:.1f} "
                                     f"({depth['speedup']:.2f}x)" if depth else ""))
        n_long = args.long or (4096 if args.device == "cuda" else 256)
        for batch in (64, 512) if args.device == "cuda" else (64,):
            long_speed = _long_throughput(by_kind, n_long, device, tokenizer, batch)
            ratio = long_speed["pruned"] / long_speed["reference"]
            say(f"  protein-length sequences: {long_speed['reference']:.1f} vs "
                f"{long_speed['pruned']:.1f} sequences/s ({ratio:.2f}x) "
                f"on {n_long:,} random sequences of 238 residues, batches of {batch}"
                + (f"; depth-only {long_speed['depth']:.1f} "
                   f"({long_speed['depth'] / long_speed['reference']:.2f}x)" if depth else ""))
        say(f"compress_cost: {compress_seconds / teacher_seconds:.2f}")
        say(f"  Compress step (0.5 target: importance, pruned + depth-only distillation, test, "
            f"timing, export) {compress_seconds:.1f} s; teacher search of one trial "
            f"{teacher_seconds:.1f} s")
        say(f"importance_taylor_vs_activation: {raw['taylor']:.4f} vs {raw['activation']:.4f} "
            "right after pruning (no training); after distillation "
            f"{pruned['val'][metric]:.4f} vs {val_of['activation']:.4f} (validation {metric})")
    if args.write:
        append_results(f"python -m benchmarks.compaction --device {args.device}"
                       + (f" --backbone {args.backbone}" if args.backbone else ""),
                       "added with compaction" if not args.backbone else
                       "compaction redone on the backbone pretrained here")
    return 0


def _backbone(choice: str | None, workdir: Path) -> Path:
    if choice is None:
        return make_tiny_backbone(workdir / "esm2_8m_shape", layers=6, hidden=320, heads=20,
                                  intermediate=1280)
    if choice == "random-twin":
        return random_twin(workdir / "random-twin")
    return Path(choice)


def _long_throughput(by_kind: dict, n: int, device: torch.device, tokenizer,
                     batch: int) -> dict:
    """Sequences per second of the exported reference, pruned and depth-only models on ``n``
    random 238-residue sequences: on short peptides a GPU's time is kernel launches, so the
    arithmetic that pruning removes shows only on protein-length inputs."""
    rng = np.random.default_rng(0)
    letters = np.array(list("ACDEFGHIKLMNPQRSTVWY"))
    sequences = ["".join(rng.choice(letters, 238)) for _ in range(n)]
    data = Encoded(encode(sequences, tokenizer), np.zeros(n))
    models = {kind: load_model(entry["path"])[0] for kind, entry in by_kind.items()}
    return throughput(models, data, device=device, pad_id=tokenizer.pad_token_id,
                      batch_size=batch, max_tokens=batch * 240)


def _val(model, splits, metric, device, pad_id) -> float:
    metrics, _ = evaluate(model, splits["valid"].data, device=device, pad_id=pad_id,
                          raw_targets=splits["valid"].targets)
    return float(metrics[metric])


def _ci(entry: dict, metric: str) -> str:
    low, high = entry["test_ci"][metric]
    return f"[{low:.3f}, {high:.3f}]"


if __name__ == "__main__":
    sys.exit(main())
