"""Where and how a model is published on the Hugging Face Hub: the repository's name, visibility
and licence, checked against the Hub's rules before anything is uploaded."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,94}[A-Za-z0-9]$|^[A-Za-z0-9]$")


def validate_repo_name(repo: str) -> str:
    """``name`` or ``namespace/name`` following the Hub's naming rules."""
    repo = repo.strip()
    parts = repo.split("/")
    if not repo or len(parts) > 2:
        raise ValueError(f"'{repo}' is not a repository name: use 'name' or 'namespace/name'.")
    for part in parts:
        if not _NAME.match(part) or "--" in part or ".." in part:
            raise ValueError(
                f"'{part}' is not allowed in a Hub repository name: use letters, digits, '-', "
                "'_' and '.', start and end with a letter or digit, no '--' or '..', at most "
                "96 characters.")
    if parts[-1].endswith(".git"):
        raise ValueError("a repository name cannot end in '.git'.")
    return repo


LICENCES = ("", "apache-2.0", "mit", "cc-by-4.0", "cc-by-sa-4.0", "cc-by-nc-4.0",
            "cc-by-nc-sa-4.0", "bsd-3-clause", "gpl-3.0", "cc0-1.0", "other")


@dataclass(frozen=True)
class PublishConfig:
    repo: str = field(metadata={"help": "Repository name: 'name' (under your account) or "
                                        "'organisation/name'."})
    private: bool = field(default=True, metadata={
        "help": "Private repositories are visible only to you and your organisation."})
    license: str = field(default="", metadata={
        "help": "Licence of the published model, as a Hub licence identifier; none chosen by "
        "default (the card then says so: all rights reserved until you choose one).",
        "choices": LICENCES})
    include_training_sequences: bool = field(default=False, metadata={
        "help": "Also upload the training sequences, so users of the published model get the "
        "'unlike the training data' flag. Off by default: they may be unpublished data."})

    def __post_init__(self) -> None:
        object.__setattr__(self, "repo", validate_repo_name(self.repo))
