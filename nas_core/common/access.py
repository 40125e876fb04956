"""Who is acting, and what they may change.

A :class:`Person` is whatever the instance's sign-in mode vouches for: the e-mail of an OpenID
Connect account, the user name a trusted proxy sends, or, on a single workstation, a random
identifier remembered by the browser (with the name its user typed). Jobs, datasets and models
record ``Person.key`` as their owner; only that owner, or an admin, may cancel, resume, delete
or publish them.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from nas_core.common.workspace import subdir

ADMINS_ENV = "ESM_NAS_ADMINS"
LOCAL_PREFIX = "local:"
_BROWSER_ID = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class Person:
    key: str  # what is recorded as the owner; unique per person in the instance's mode
    name: str = ""  # what other people see
    admin: bool = False

    def __post_init__(self) -> None:
        if not self.key or not self.key.strip():
            raise ValueError("say who is acting: an identity is needed.")

    @property
    def shown(self) -> str:
        return self.name or self.key

    def may_change(self, owner: str) -> bool:
        return self.admin or self.key == owner


def check_owner(person: Person, owner: str, owner_name: str, what: str) -> None:
    """Raise PermissionError unless ``person`` owns the thing (or is an admin)."""
    if person.may_change(owner):
        return
    if not owner:
        raise PermissionError(f"this {what} has no recorded owner (it came from the command "
                              "line): only an admin can change it.")
    raise PermissionError(f"only {owner_name or owner}, who owns this {what}, or an admin can "
                          "do that.")


def admins(configured: list[str] | tuple[str, ...] | None = None) -> frozenset[str]:
    """Admin identities: the app's secrets (``[access] admins``) plus ``$ESM_NAS_ADMINS``."""
    names = [*(configured or ()), *os.environ.get(ADMINS_ENV, "").split(",")]
    return frozenset(n.strip().lower() for n in names if n.strip())


def new_browser_id() -> str:
    return secrets.token_hex(16)


def valid_browser_id(value: object) -> bool:
    return isinstance(value, str) and bool(_BROWSER_ID.fullmatch(value))


class LocalNames:
    """The names typed on a single workstation, remembered per browser identifier, so that a
    reload keeps both the name and the owner's buttons. No security is claimed: anyone with the
    browser's cookie is its owner."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(subdir("people", root)) / "local_names.json"

    def _all(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, browser_id: str) -> str:
        return str(self._all().get(browser_id, ""))

    def set(self, browser_id: str, name: str) -> None:
        names = self._all()
        if names.get(browser_id) == name:
            return
        names[browser_id] = name
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(names, indent=1))
        tmp.replace(self.path)


def local_person(browser_id: str, name: str) -> Person:
    return Person(key=LOCAL_PREFIX + browser_id, name=name.strip())
