"""What ``backup`` and ``restore`` do (imported once a command line is parsed)."""

from __future__ import annotations

import argparse
import sys

from nas_core.cli.flags import EXIT_FAILED, EXIT_OK
from nas_core.runtime.backup import BackupError, backup, restore
from nas_core.search.storage import configured_url


def cmd_backup(args: argparse.Namespace) -> int:
    try:
        manifest = backup(args.out, configured_url(secret=args.storage))
    except (BackupError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"backed up {len(manifest['studies'])} studies from {manifest['storage']} and the "
          f"workspace {manifest['workspace']} to {args.out}")
    return EXIT_OK


def cmd_restore(args: argparse.Namespace) -> int:
    try:
        manifest = restore(args.backup, configured_url(secret=args.storage), force=args.force)
    except (BackupError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"restored {len(manifest['studies'])} studies and the workspace from {args.backup} "
          f"(backup of {manifest['created']})")
    return EXIT_OK
