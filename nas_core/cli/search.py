"""Search commands: ``search`` (the whole search, then the held-out test), ``worker`` (join a
study on a shared store) and ``finalise`` (test and export a study's best trial)."""

from __future__ import annotations

import argparse

from nas_core.cli.flags import (
    add_data_args,
    add_field,
    field_metadata,
)
from nas_core.common.workspace import STORAGE_ENV
from nas_core.search.config import Heartbeat, SearchConfig
from nas_core.search.space import SearchSpace

STORE_HELP = ("study database URL (default: $ESM_NAS_STORAGE; prefer the variable or "
              "~/.pgpass for passwords: command lines are visible to other users)")


def register_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="run an architecture search and test the best model")
    add_data_args(p)
    p.add_argument("--backbone", required=True,
                   help="comma-separated registry names (esm2_t6_8M,...) or local checkpoints")
    add_field(p, SearchConfig, "n_trials", "--trials", default=None)
    add_field(p, SearchConfig, "timeout")
    p.add_argument("--storage", default=None,
                   help="Optuna storage URL (default: SQLite in the workspace)")
    p.add_argument("--study", default=None,
                   help=field_metadata(SearchConfig, "study_name")["help"]
                   + " (default: the dataset's name and the time)")
    for name in ("sampler", "pruner", "objective", "metric", "seed", "device", "patience",
                 "ensemble_size", "min_batch_tokens", "lr_scaling", "frozen_first"):
        add_field(p, SearchConfig, name)
    p.add_argument("--max-epochs", type=int, default=None,
                   help=field_metadata(SearchSpace, "max_epochs_range")["help"])
    p.add_argument("--adaptation", default=None,
                   help=field_metadata(SearchSpace, "adaptations")["help"]
                   + " Comma-separated, e.g. lora or frozen,partial.")
    add_field(p, SearchSpace, "max_parameters")
    p.add_argument("--space", default=None, help="JSON file narrowing the search space")
    add_field(p, SearchConfig, "workers", type=str, default="1",
              help="Worker processes on this machine: a number, or 'auto' (one per GPU). "
              "Workers on other machines join with `python -m nas_core worker`.")
    p.add_argument("--out", required=True, help="folder for report.json and best_model/")
    p.set_defaults(handler="search:cmd_search")

    p = sub.add_parser("worker", help="join an existing study and run its queued trials until "
                       "the budget is reached (one per GPU, on any machine)")
    p.add_argument("--storage", default=None, help=STORE_HELP)
    p.add_argument("--study", required=True, help="name of the study to join")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: the study's)")
    p.add_argument("--data", default=None,
                   help="this machine's copy of the study's dataset folder or data.csv "
                   "(default: where the study says it is)")
    add_field(p, Heartbeat, "interval", "--heartbeat-interval", dest="heartbeat_interval")
    add_field(p, Heartbeat, "grace", "--grace-period", dest="grace_period")
    p.add_argument("--db-wait", type=float, default=300,
                   help="seconds to wait for a lost database before giving up")
    p.add_argument("--seed-offset", type=int, default=None,
                   help="sampler seed offset of this worker (default: from the process id)")
    p.set_defaults(handler="search:cmd_worker")

    p = sub.add_parser("next-round", help="the measurements of a suggested batch came back: "
                       "add them to the search's dataset (a new dataset naming its parent) "
                       "and search again on it, as a new study that starts from the old "
                       "one's best architectures")
    p.add_argument("run_dir", help="the finished search's --out folder (report.json)")
    p.add_argument("measurements", help="CSV/TSV/Excel/FASTA of the measured sequences with "
                   "their labels, in the dataset's units or classes")
    p.add_argument("--storage", default=None, help="study database URL (default: "
                   f"${STORAGE_ENV}, else the one in the run's report)")
    p.add_argument("--study", default=None, help="name of the new study (default: the old "
                   "name with -round2, -round3...)")
    p.add_argument("--out", required=True, help="folder for the new round's report.json and "
                   "models")
    p.set_defaults(handler="search:cmd_next_round")

    p = sub.add_parser("finalise", help="test the best (or a chosen) trial of a study once on "
                       "the held-out split and export it; run it where that trial's weights are")
    p.add_argument("--storage", default=None, help=STORE_HELP)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--study", help="the study's name (with --out)")
    which.add_argument("--job", help="a cancelled, interrupted or failed job of this "
                       "workspace (as the Results page's Test and export button): its best "
                       "finished trial, into the job's results folder")
    p.add_argument("--data", default=None, help="this machine's copy of the study's dataset")
    p.add_argument("--trial", type=int, default=None, help="trial number (default: the best)")
    add_field(p, SearchConfig, "device")
    add_field(p, SearchConfig, "ensemble_size", default=None,
              help="Ensemble of the best architectures: how many (1: none; default: the "
              "search's setting).")
    p.add_argument("--out", default=None, help="folder for report.json and best_model/ "
                   "(required with --study)")
    p.set_defaults(handler="search:cmd_finalise")
