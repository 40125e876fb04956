"""Batch-filling benchmark: fuller batches without the accuracy cost? On the shipped peptide
sets, the same search (same space, trials and seeds) four ways, side by side in one run:

- ``fixed``: exactly the architecture's batch size (no filling), its learning rate;
- ``filled``: short peptides fill a batch to 4,096 tokens (about 180 peptides of 20 residues
  instead of 32), the architecture's learning rate (the behaviour before this benchmark);
- ``filled+sqrt`` / ``filled+linear``: filled, the learning rate scaled with the batch (square
  root or linear in how many times larger it is, after a 20-step warm-up).

Each is the held-out test metric of the search's chosen model (mean over seeds, and the spread),
the wall time of the search and the time of its trials alone (what batching changes; the final
test and export cost the same every way). Goal: a rule keeps at least 0.99 of the fixed-batch
metric in no more than a third of its time.

``python -m benchmarks.batches [--data acp,amp_tm] [--seeds 0,1,2] [--trials 3] [--write]``
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

from benchmarks.run import append_results, machine, say
from nas_core.backbones.registry import SHIPPED_DIR
from nas_core.data.splits import assign_splits
from nas_core.data.validation import load_dataset
from nas_core.runtime.launch import run_search
from nas_core.search.config import SearchConfig
from nas_core.search.logs import quiet_optuna
from nas_core.search.space import SearchSpace

ROOT = Path(__file__).resolve().parent.parent
DATA = {"acp": "anticancer_vs_random.csv", "amp_tm": "amp_vs_transmembrane.csv"}
MODES = {  # name -> (min_batch_tokens, lr_scaling)
    "fixed": (None, "none"),
    "filled": (4096, "none"),
    "filled+sqrt": (4096, "sqrt"),
    "filled+linear": (4096, "linear"),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default="acp,amp_tm", help="comma-separated: acp, amp_tm")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated search seeds")
    parser.add_argument("--trials", type=int, default=3, help="trials per search")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--write", action="store_true", help="append to benchmarks/RESULTS.md")
    args = parser.parse_args()
    quiet_optuna()
    torch.manual_seed(0)
    seeds = [int(s) for s in args.seeds.split(",")]
    backbone = SHIPPED_DIR / "esm2-proteomes-0.8M"
    say(f"machine: {machine()}")
    say(f"search: {args.trials} trials (TPE), default space on {backbone.name} (the backbone "
        f"pretrained here), seeds {args.seeds}; device {args.device}; the four ways "
        "interleaved per seed")
    with tempfile.TemporaryDirectory() as workdir:
        os.environ["ESM_NAS_HOME"] = str(Path(workdir) / "ws")
        for name in args.data.split(","):
            result = load_dataset(ROOT / "assets" / DATA[name])
            assert result.dataset is not None, result.problems
            dataset = assign_splits(result.dataset)[0]
            rows: dict[str, list[tuple[float, float, float, float]]] = {m: [] for m in MODES}
            metric, reference = "", ""
            for seed in seeds:
                for mode, (fill, rule) in MODES.items():
                    config = SearchConfig(f"{name}-{mode}-{seed}",
                                          SearchSpace(backbones=(str(backbone),)),
                                          n_trials=args.trials, seed=seed, device=args.device,
                                          min_batch_tokens=fill, lr_scaling=rule,
                                          ensemble_size=1)
                    started = time.perf_counter()
                    report = run_search(config, dataset,
                                        Path(workdir) / f"{name}-{mode}-{seed}")
                    assert report is not None
                    seconds = time.perf_counter() - started
                    metric = report.metric
                    base = report.baseline  # the same splits every way
                    reference = (f"reference ({base.model}): held-out {metric} "
                                 f"{(base.test or {}).get(metric) or 0:.3f}, MCC "
                                 f"{(base.test or {}).get('mcc') or 0:.3f}")
                    test = report.best.test
                    rows[mode].append((float(test[metric] or 0), float(test["mcc"] or 0),
                                       seconds, float(report.trial_seconds or 0)))
            _table(name, len(dataset.frame), metric, rows)
            say(f"  {reference}")
    if args.write:
        append_results(f"python -m benchmarks.batches --data {args.data} --seeds {args.seeds} "
                       f"--trials {args.trials}", "added with the learning-rate rule for "
                       "filled batches")
    return 0


def _table(name: str, n: int, metric: str,
           rows: dict[str, list[tuple[float, float, float, float]]]) -> None:
    say(f"{DATA[name]} ({n} sequences): held-out test {metric} and MCC, mean over seeds "
        "(min-max); wall time of the search (with its final test and export) and of its "
        "trials alone")
    fixed = np.array(rows["fixed"])
    for mode, values in rows.items():
        a = np.array(values)
        ratio = a[:, 0].mean() / fixed[:, 0].mean()
        wall = a[:, 3].mean() / fixed[:, 3].mean()
        say(f"  {mode:<14} {metric} {a[:, 0].mean():.3f} ({a[:, 0].min():.3f}-"
            f"{a[:, 0].max():.3f}), MCC {a[:, 1].mean():.3f} ({a[:, 1].min():.3f}-"
            f"{a[:, 1].max():.3f}); {a[:, 2].mean():.0f} s, trials {a[:, 3].mean():.1f} s"
            + (f"; {ratio:.3f} of fixed in {wall:.2f} of its trial time"
               + (" (goal met)" if ratio >= 0.99 and wall <= 1 / 3 else "")
               if mode != "fixed" else ""))


if __name__ == "__main__":
    sys.exit(main())
