"""Model commands: ``predict`` new sequences, ``compress`` a finished search's model, ``push`` a
model to the Hugging Face Hub and ``download-backbone`` an ESM-2 checkpoint."""

from __future__ import annotations

import argparse

from nas_core.backbones.registry import REGISTRY
from nas_core.cli.flags import add_field, add_proteins_arg
from nas_core.compression.config import RESULTS, CompressConfig
from nas_core.design.config import SuggestConfig
from nas_core.modeling.compaction_options import DistillConfig
from nas_core.publishing.config import PublishConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="predict new sequences with a saved model")
    p.add_argument("model", help="model directory (or Hub repository id)")
    p.add_argument("data", help="CSV/TSV/Excel/FASTA with a sequence column (a pair model: "
                   "two, sequence_1 and sequence_2); labels optional")
    add_proteins_arg(p, "DATA", "protein_1 protein_2, labels optional")
    p.add_argument("--bait", default=None, metavar="SEQUENCE_OR_ID",
                   help="pair models: screen this protein (a sequence, or the ID of a record "
                   "of DATA) against every sequence of DATA, most likely partners first")
    p.add_argument("--out", required=True, help="CSV to write")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.set_defaults(handler="models:cmd_predict")

    p = sub.add_parser("suggest", help="test these next: rank unlabelled candidate sequences "
                       "with a finished search's ensemble (or best model) and pick a diverse "
                       "batch to make and measure")
    p.add_argument("run_dir", help="the search's --out folder (ensemble_model/ or best_model/)")
    p.add_argument("candidates", help="FASTA, CSV, TSV or Excel file of candidate sequences "
                   "(a pair model: candidate pairs, two sequence columns)")
    add_proteins_arg(p, "CANDIDATES", "protein_1 protein_2")
    add_field(p, SuggestConfig, "batch")
    add_field(p, SuggestConfig, "goal")
    add_field(p, SuggestConfig, "target_class", "--class")
    add_field(p, SuggestConfig, "rule")
    add_field(p, SuggestConfig, "diversity", type=float)
    add_field(p, SuggestConfig, "seed")
    p.add_argument("--out", required=True, help="CSV to write the ranked batch to")
    p.set_defaults(handler="models:cmd_suggest")

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
    p.set_defaults(handler="models:cmd_compress")

    p = sub.add_parser("push", help="publish a model directory to the Hugging Face Hub "
                       "(token from HF_TOKEN, endpoint from HF_ENDPOINT)")
    p.add_argument("model_dir")
    add_field(p, PublishConfig, "repo", required=True)
    visibility = p.add_mutually_exclusive_group()
    add_field(visibility, PublishConfig, "private", action="store_true", default=True)
    visibility.add_argument("--public", action="store_true", help="public repository")
    add_field(p, PublishConfig, "license")
    p.set_defaults(handler="models:cmd_push")

    p = sub.add_parser("download-backbone", help="fetch an ESM-2 checkpoint into the Hugging "
                       "Face cache before a search needs it (size, progress, resumes an "
                       "interrupted download; endpoint from HF_ENDPOINT)")
    p.add_argument("name", help=f"registry name: {', '.join(REGISTRY)}")
    p.set_defaults(handler="models:cmd_download")
