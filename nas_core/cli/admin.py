"""Administration: ``backup`` and ``restore`` of the study database and the workspace."""

from __future__ import annotations

import argparse
import sys

from nas_core.cli.common import EXIT_FAILED, EXIT_OK
from nas_core.runtime.backup import BackupError, backup, restore
from nas_core.search.storage import configured_url

STORAGE_HELP = "study database URL (default: $ESM_NAS_STORAGE or the workspace's)"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("backup", help="back up the study database and the workspace")
    p.add_argument("out", help="a new folder for the backup")
    p.add_argument("--storage", default=None, help=STORAGE_HELP)
    p.set_defaults(func=cmd_backup)

    p = sub.add_parser("restore", help="restore a backup into an empty database and workspace")
    p.add_argument("backup", help="the backup folder")
    p.add_argument("--storage", default=None, help=STORAGE_HELP)
    p.add_argument("--force", action="store_true",
                   help="overwrite a database or workspace that is not empty")
    p.set_defaults(func=cmd_restore)


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
