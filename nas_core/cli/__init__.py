"""``python -m nas_core`` / ``esm-nas``: everything the app does, headless, through the same
engine calls. One module per command group; each registers its commands here."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from nas_core.cli import admin, data, models, pretrain, search
from nas_core.common.workspace import storage_problem
from nas_core.search.logs import quiet_optuna


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="esm-nas",
                                     description="ESM-NAS Studio engine, headless (also "
                                     "`python -m nas_core`).")
    sub = parser.add_subparsers(dest="command", required=True)
    data.register(sub)
    search.register_commands(sub)
    models.register(sub)
    pretrain.register(sub)
    admin.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet_optuna()
    try:
        return args.func(args)
    except Exception as exc:  # a full or read-only disk is one message, never a traceback
        problem = storage_problem(exc)
        if problem is None:
            raise
        print(f"error: {problem}", file=sys.stderr)
        return 1
