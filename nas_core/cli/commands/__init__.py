"""The commands themselves, one module per group of ``nas_core.cli``. The parser names each
command's function as ``"group:function"`` and :func:`run` imports its module only once the
command line has been parsed, so ``esm-nas --help`` or a mistyped flag never pays for torch,
transformers or pandas (pip resolves its commands the same way)."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable

from nas_core.cli.flags import EXIT_FAILED
from nas_core.common.workspace import storage_problem
from nas_core.search.logs import quiet_optuna


def command(handler: str) -> Callable[[argparse.Namespace], int]:
    """The function a parser names as ``"group:function"``."""
    group, name = handler.split(":")
    return getattr(importlib.import_module(f"{__name__}.{group}"), name)


def run(args: argparse.Namespace) -> int:
    quiet_optuna()
    try:
        return command(args.handler)(args)
    except Exception as exc:  # a full or read-only disk is one message, never a traceback
        problem = storage_problem(exc)
        if problem is None:
            raise
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_FAILED
