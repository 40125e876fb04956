"""Data commands: ``validate``, ``split``, ``make-tiny-backbone``."""

from __future__ import annotations

import argparse

from nas_core.cli.flags import add_data_args, add_field
from nas_core.data.options import SplitOptions


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="check a labelled dataset and summarise it")
    add_data_args(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler="data:cmd_validate")

    p = sub.add_parser("split", help="split a dataset into train/valid/test and write it with "
                       "each sequence's identity to its nearest training sequence")
    add_data_args(p)
    add_field(p, SplitOptions, "method", "--method", help="Same as --split.")
    p.add_argument("--out", required=True, help="CSV to write")
    p.set_defaults(handler="data:cmd_split")

    p = sub.add_parser("make-tiny-backbone",
                       help="write a random-weight ESM-2-shaped checkpoint (tests, offline demo)")
    p.add_argument("dir")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--heads", type=int, default=4)
    p.set_defaults(handler="data:cmd_make_tiny_backbone")
