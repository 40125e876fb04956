"""``pretrain``: teach a backbone proteins (masked-language-model training), from scratch or
continued from a backbone, on an unlabelled corpus."""

from __future__ import annotations

import argparse

from nas_core.cli.flags import add_field
from nas_core.pretraining.config import PretrainConfig

FIELDS = ("tokens", "shape", "max_length", "batch_tokens", "lr", "warmup", "weight_decay",
          "select", "validation", "identity", "eval_points", "eval_residues", "seed", "device")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pretrain", help="masked-language-model pretraining of an ESM-2-shaped "
                       "backbone on unlabelled protein sequences (from scratch with --shape, or "
                       "continued with --from); rerun the same command to resume")
    p.add_argument("corpus", help="FASTA (optionally .gz), CSV, TSV or Excel file of protein "
                   "sequences")
    p.add_argument("--out", required=True, help="folder for the backbone (a standard "
                   "checkpoint); its .pretraining/ subfolder holds the checkpoint to resume")
    add_field(p, PretrainConfig, "base", "--from")
    for name in FIELDS:
        add_field(p, PretrainConfig, name)
    p.add_argument("--ignore-labels", action="store_true",
                   help="use a labelled table's sequences, ignoring its labels")
    p.add_argument("--credit", default="", help="a line for the model card about the "
                   "corpus (its source and licence)")
    p.set_defaults(handler="pretrain:cmd_pretrain")
