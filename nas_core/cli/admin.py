"""Administration: ``backup`` and ``restore`` of the study database and the workspace."""

from __future__ import annotations

import argparse

STORAGE_HELP = "study database URL (default: $ESM_NAS_STORAGE or the workspace's)"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("backup", help="back up the study database and the workspace")
    p.add_argument("out", help="a new folder for the backup")
    p.add_argument("--storage", default=None, help=STORAGE_HELP)
    p.set_defaults(handler="admin:cmd_backup")

    p = sub.add_parser("restore", help="restore a backup into an empty database and workspace")
    p.add_argument("backup", help="the backup folder")
    p.add_argument("--storage", default=None, help=STORAGE_HELP)
    p.add_argument("--force", action="store_true",
                   help="overwrite a database or workspace that is not empty")
    p.set_defaults(handler="admin:cmd_restore")
