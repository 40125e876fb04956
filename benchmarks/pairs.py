"""Protein pairs on the shipped E. coli interactions (issue 32): what a random pair split
hides, and what encoding each protein once saves.

1. **Cost of the frozen path**: pooled features of every training and validation pair from
   one pass per distinct protein (what a frozen trial uses) against one pass per pair partner
   (each pair encoded on its own); the same head trained on both, to show equal results.
2. **Leakage**: the same search (frozen-backbone heads, shared encoder, symmetric or ordered
   combination; per-protein cache) on the pairs split with both partners unseen and split at
   random, on the pretrained backbone and on its random-weight twin, beside the reference
   (logistic regression on both partners' composition, combined symmetrically). Held-out
   average precision (AUPR) and ROC-AUC with 95% intervals that resample proteins.

``python -m benchmarks.pairs [--backbone esm2-proteomes-0.8M] [--trials 16] [--write]``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.run import append_results, machine, random_twin, say
from nas_core.common.tasks import Task
from nas_core.data.options import IngestOptions, SplitOptions
from nas_core.data.pair_splits import WORDS, proteins_of
from nas_core.data.store import import_dataset
from nas_core.modeling.architecture import Architecture
from nas_core.modeling.batches import EVAL_MAX_TOKENS, Encoded
from nas_core.modeling.cache import RepresentationCache
from nas_core.modeling.modules import HeadModel, TaskInfo, init_head
from nas_core.modeling.training import TrainSettings, evaluate, train
from nas_core.runtime.launch import run_search
from nas_core.search.config import SearchConfig
from nas_core.search.logs import quiet_optuna
from nas_core.search.presets import backbone_source
from nas_core.search.space import SearchSpace

ROOT = Path(__file__).resolve().parent.parent
PAIRS = ROOT / "assets" / "pairs"


def load(kind: str):
    outcome = import_dataset(PAIRS / "ecoli_pairs.tsv",
                             proteins=PAIRS / "ecoli_proteins.fasta.gz",
                             options=IngestOptions(fixes=frozenset({"drop_conflicts"})),
                             split_options=SplitOptions(pairs=kind))
    assert outcome.dataset is not None, outcome.result.problems
    return outcome.dataset, outcome.notes


def interval(ci: dict | None, metric: str) -> str:
    low, high = (ci or {}).get(metric) or (float("nan"), float("nan"))
    return f"[{low:.3f}, {high:.3f}]"


def leakage(backbones: dict[str, str], trials: int, workdir: Path) -> None:
    say("2. The same search on two splits of the same pairs (frozen heads on the per-protein "
        f"cache, {trials} trials each; CPU)")
    space_kw = dict(adaptations=("frozen",), pair_heads=("symmetric", "concat"),
                    max_epochs_range=(10, 10), batch_sizes=(64, 128))
    for kind in ("both_unseen", "random"):
        dataset, _ = load(kind)
        test = dataset.part("test")
        positives = float((test["label"] == "1.0").mean())
        say(f"  {WORDS[kind]}: {len(dataset.part('train')):,} train / "
            f"{len(dataset.part('valid')):,} valid / {len(test):,} test pairs; test "
            f"{positives:.0%} interacting (the AUPR of a random ranking)")
        for label, backbone in backbones.items():
            config = SearchConfig(f"pairs-{kind}-{label}", SearchSpace(
                backbones=(backbone,), **space_kw), n_trials=trials, seed=0, device="cpu",
                ensemble_size=1)
            started = time.perf_counter()
            report = run_search(config, dataset, workdir / config.study_name)
            assert report is not None
            best = report.best
            say(f"    {label:<22} AUPR {best.test['average_precision']:.3f} "
                f"{interval(best.test_ci, 'average_precision')}, ROC-AUC "
                f"{best.test['roc_auc']:.3f} {interval(best.test_ci, 'roc_auc')} "
                f"({time.perf_counter() - started:.0f} s; {best.description})")
        base = report.baseline
        say(f"    {'reference':<22} AUPR {base.test['average_precision']:.3f} "
            f"{interval(base.test_ci, 'average_precision')}, ROC-AUC "
            f"{base.test['roc_auc']:.3f} {interval(base.test_ci, 'roc_auc')} ({base.model})")


def cost(backbone: str, workdir: Path) -> None:
    say("1. Frozen path: pooled features once per protein vs once per pair partner "
        "(training + validation pairs of the both-unseen split; the same head on both)")
    dataset, _ = load("both_unseen")
    frame = dataset.frame[dataset.frame["split"] != "test"].reset_index(drop=True)
    proteins, partners = proteins_of(frame)
    cpu = torch.device("cpu")
    cache = RepresentationCache(workdir / "cache-protein")
    started = time.perf_counter()
    per_protein = np.asarray(cache.pooled(backbone, proteins, [4], device=cpu,
                                          max_tokens=EVAL_MAX_TOKENS)[("mean", 4)])
    protein_s = time.perf_counter() - started
    each = list(frame["sequence"]) + list(frame["sequence_2"])
    cache = RepresentationCache(workdir / "cache-pair")
    started = time.perf_counter()
    per_pair = np.asarray(cache.pooled(backbone, each, [4], device=cpu,
                                       max_tokens=EVAL_MAX_TOKENS)[("mean", 4)])
    pair_s = time.perf_counter() - started
    say(f"  {len(frame):,} pairs, {len(proteins):,} distinct proteins: per protein "
        f"{protein_s:.1f} s, per pair partner ({len(each):,} passes) {pair_s:.1f} s: "
        f"{pair_s / protein_s:.1f}x faster")
    n = len(frame)
    pair_features = np.concatenate([per_pair[:n], per_pair[n:]])  # rows of the pairs
    index = np.arange(2 * n).reshape(2, n).T  # pair i: rows i and n + i
    arch = Architecture(backbone=backbone, n_layers=4, pair_head="symmetric", head_layers=1,
                        head_width=128, lr=1e-3, batch_size=64, max_epochs=10)
    info = TaskInfo.fitted(Task.PAIR_BINARY, dataset.label_names,
                           dataset.label_index(frame["label"]))
    y = dataset.label_index(frame["label"])
    train_rows = (frame["split"] == "train").to_numpy()
    scores = []
    for features, rows in ((per_protein, partners), (pair_features, index)):
        model = HeadModel(arch, info, features.shape[1])
        init_head(model, 0)
        ids = [np.zeros(3, dtype=np.int64)] * len(features)  # lengths only order batches
        data = {s: Encoded(ids, y[mask], features=features, partners=rows[mask])
                for s, mask in (("train", train_rows), ("valid", ~train_rows))}
        settings = TrainSettings(metric="average_precision", device=cpu, seed=0)
        result = train(model, data["train"], data["valid"], y[~train_rows], settings, pad_id=1)
        model.load_state_dict(result.best_state, strict=False)
        scores.append(evaluate(model, data["valid"], device=cpu, pad_id=1,
                               raw_targets=y[~train_rows])[0]["average_precision"])
    say(f"  the same head, validation AUPR: per-protein features {scores[0]:.4f}, per-pair "
        f"features {scores[1]:.4f} (max feature difference "
        f"{np.abs(per_protein[partners[:, 0]] - per_pair[:n]).max():.1e})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backbone", default="esm2-proteomes-0.8M")
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--write", action="store_true", help="append to benchmarks/RESULTS.md")
    args = parser.parse_args()
    quiet_optuna()
    say(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        os.environ["ESM_NAS_HOME"] = str(workdir / "ws")
        backbone = backbone_source(args.backbone)
        twin = str(random_twin(workdir / "random-twin", args.backbone))
        cost(backbone, workdir)
        leakage({f"{args.backbone} (pretrained)": backbone,
                 "its random-weight twin": twin}, args.trials, workdir)
    if args.write:
        append_results(f"python -m benchmarks.pairs --backbone {args.backbone} --trials "
                       f"{args.trials}", "added with protein pairs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
