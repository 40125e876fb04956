"""Who is acting, and what they may change.

A :class:`Person` is whatever the instance's sign-in mode vouches for: the e-mail of an OpenID
Connect account, the user name a trusted proxy sends, or, on a single workstation, a random
identifier remembered by the browser (with the name its user typed). Jobs, datasets and models
record ``Person.key`` as their owner; only that owner, or an admin, may cancel, resume, delete
or publish them.
"""

from __future__ import annotations

import hmac
import ipaddress
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


PROXY_SECRET_HEADER = "X-ESM-NAS-Proxy-Secret"  # set by the proxy beside the user header


def listens_on_loopback(address: str | None) -> bool:
    """Whether a server bound to ``address`` is reachable from this machine only (an empty
    address is every interface)."""
    text = (address or "").strip().strip("[]").lower()
    if text == "localhost":
        return True
    try:
        return ipaddress.ip_address(text).is_loopback
    except ValueError:
        return False


def proxy_setup_problem(address: str | None, secret: str | None, header: str) -> str | None:
    """Why header sign-in cannot be trusted as configured, or None. The user header is
    trusted only from the proxy: the server must listen on loopback (only a proxy on this
    machine reaches it), or the proxy must prove itself with a shared secret."""
    if listens_on_loopback(address) or (secret and len(secret) >= 16):
        return None
    if secret:
        return ("ESM_NAS_PROXY_SECRET is too short to be a secret: give it at least 16 random "
                "characters (for example `python -c \"import secrets; "
                "print(secrets.token_urlsafe(32))\"`).")
    return (f"Sign-in by the {header} header is configured, but this server listens on "
            f"{address or 'every network address'}: any client could send that header itself "
            "and be signed in as anyone, administrators included. Bind the server to "
            "127.0.0.1 behind the proxy (server.address in .streamlit/config.toml, or "
            "--server.address 127.0.0.1), or set ESM_NAS_PROXY_SECRET here and have the proxy "
            f"send it in the {PROXY_SECRET_HEADER} header (docs/deployment.md). Until then no "
            "page is served.")


def proxy_secret_matches(sent: str | None, secret: str | None) -> bool:
    """The request carries the shared secret (constant-time), or no secret is configured."""
    if not secret:
        return True
    return hmac.compare_digest((sent or "").encode(), secret.encode())
