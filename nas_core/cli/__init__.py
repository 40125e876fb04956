"""``python -m nas_core`` / ``esm-nas``: everything the app does, headless, through the same
engine calls. One module per command group registers its commands' flags here (light: no
pandas, torch or transformers); ``nas_core.cli.commands`` holds what they do, imported once a
command line has been parsed."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence

from nas_core.cli import admin, data, models, pretrain, search


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
    return importlib.import_module("nas_core.cli.commands").run(args)
