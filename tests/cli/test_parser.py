"""The command line answers at once: building the parser (``--help``, a mistyped flag) loads
no heavy library, and every command it lists resolves to its function."""

from __future__ import annotations

import argparse
import subprocess
import sys

from nas_core.cli import build_parser
from nas_core.cli.commands import command
from tests.helpers import ROOT

HEAVY = ("torch", "transformers", "peft", "pandas", "numpy", "scipy", "sklearn", "optuna",
         "sqlalchemy", "altair")


def test_help_loads_no_heavy_library():
    code = ("import sys\nfrom nas_core.cli import build_parser\n"
            "parser = build_parser()\n"
            "for sub in parser._subparsers._group_actions[0].choices.values():\n"
            "    sub.format_help()\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_every_command_names_a_function_that_exists():
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert len(sub.choices) >= 14
    for name, parser in sub.choices.items():
        handler = parser.get_default("handler")
        assert handler, name
        assert callable(command(handler)), name


def test_a_usage_error_answers_before_any_import():
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "nas_core", "search",
                          "--no-such-flag"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 2
    assert "unrecognized arguments" in out.stderr or "required" in out.stderr
    assert "| torch" not in out.stderr and "| pandas" not in out.stderr
