"""The Quick preset as the Search page builds it, run on this machine (issue 31, item 2): the
old Quick (its trials cut to fit 5 minutes on a CPU: two trials, one coin toss against
another) beside the new one (24 frozen-backbone heads over several depths, poolings and head
sizes from one cached pass of the backbone, then the fine-tuning trials that still fit), side
by side on the same splits and backbone. For each: the architectures compared, the wall time
against the promise, the held-out test metric with its interval, and the reference model.

``python -m benchmarks.quick [--data acp,amp_tm] [--backbone esm2-proteomes-0.8M] [--write]``

``--backbone random-twin``: the pretrained backbone's shape with random weights, the same
searches run on it for comparison (what the pretrained weights bring).

``--backbone esm2_t6_8M-shape``: a random-weight checkpoint of ESM-2 8M's shape (6 layers of
320, 20 heads), made here: ESM-2 cannot be downloaded on this machine, and its speed, not its
weights, decides how much of Quick fits in 5 minutes (its scores are no evidence).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from benchmarks.run import append_results, machine, random_twin, say
from nas_core.backbones.loading import make_tiny_backbone
from nas_core.data.splits import assign_splits
from nas_core.data.validation import load_dataset
from nas_core.runtime.launch import run_search
from nas_core.search.config import SearchConfig
from nas_core.search.logs import quiet_optuna
from nas_core.search.presets import QUICK_SECONDS, backbone_source, fit_to_time, presets
from nas_core.search.throughput import Throughput, estimate

ROOT = Path(__file__).resolve().parent.parent
DATA = {"acp": "anticancer_vs_random.csv", "amp_tm": "amp_vs_transmembrane.csv",
        "gfp": "gfp_fluorescence.csv"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default="acp,amp_tm",
                        help="comma-separated: acp, amp_tm, gfp")
    parser.add_argument("--backbone", default="esm2-proteomes-0.8M")
    parser.add_argument("--write", action="store_true", help="append to benchmarks/RESULTS.md")
    args = parser.parse_args()
    quiet_optuna()
    promise = QUICK_SECONDS["cpu"]
    say(f"machine: {machine()}")
    say(f"Quick as the Search page builds it on {args.backbone}, fitted to its promise of "
        f"{promise / 60:.0f} min from this machine's measured speed; CPU")
    with tempfile.TemporaryDirectory() as workdir:
        os.environ["ESM_NAS_HOME"] = str(Path(workdir) / "ws")
        backbone = backbone_source(args.backbone)
        if args.backbone == "random-twin":
            backbone = str(random_twin(Path(workdir) / "random-twin"))
        elif args.backbone == "esm2_t6_8M-shape":
            backbone = str(make_tiny_backbone(Path(workdir) / "esm2_t6_8M-shape", layers=6,
                                              hidden=320, heads=20, intermediate=1280))
        for name in args.data.split(","):
            result = load_dataset(ROOT / "assets" / DATA[name])
            assert result.dataset is not None, result.problems
            dataset = assign_splits(result.dataset)[0]
            sizes = (len(dataset.part("train")), len(dataset.part("valid")),
                     float(dataset.frame["sequence"].str.len().mean()))
            say(f"{DATA[name]} ({len(dataset.frame)} sequences)")
            quick = presets((backbone,))["Quick"]
            old = replace(quick, n_trials=quick.n_trained, frozen_first=0)
            for label, preset in (("old Quick", old), ("new Quick", quick)):
                fitted, expected = fit_to_time(preset, lambda space, n, frozen=0, sizes=sizes:
                                               estimate(space, n, *sizes, "cpu", Throughput(),
                                                        frozen_first=frozen), promise)
                config = SearchConfig(f"{name}-{label.split()[0]}", fitted.space,
                                      n_trials=fitted.n_trials, seed=0, device="cpu",
                                      frozen_first=fitted.frozen_first)
                started = time.perf_counter()
                report = run_search(config, dataset, Path(workdir) / config.study_name)
                seconds = time.perf_counter() - started
                assert report is not None
                _row(label, fitted, expected.high, seconds, report)
            base = report.baseline
            say(f"  reference ({base.model}) on the same splits: held-out {report.metric} "
                f"{(base.test or {}).get(report.metric) or 0:.3f}")
    if args.write:
        append_results(f"python -m benchmarks.quick --data {args.data} --backbone "
                       f"{args.backbone}", "added with the Quick preset's frozen heads")
    return 0


def _row(label: str, fitted, promised: float, seconds: float, report) -> None:
    metric = report.metric
    best = report.best
    ci = (best.test_ci or {}).get(metric) or [float("nan")] * 2
    distinct = report.n_complete + report.n_pruned
    say(f"  {label:<10} {fitted.n_trials} trials ({fitted.frozen_first} frozen first, up to "
        f"{fitted.space.max_epochs_range[1]} epochs), "
        f"{distinct} architectures trained; {seconds:.0f} s with the final test and ensemble "
        f"(estimate up to {promised:.0f} s, promise {QUICK_SECONDS['cpu']} s); held-out "
        f"{metric} {best.test.get(metric) or 0:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]; best: "
        f"{best.description}")


if __name__ == "__main__":
    sys.exit(main())
