"""Who is using this browser session, in the instance's one sign-in mode.

- **sign-in**: ``[auth]`` in Streamlit secrets. Nothing shows before an OpenID Connect login;
  the owner is the account's e-mail (an account with neither e-mail nor name is refused).
- **proxy**: ``$ESM_NAS_USER_HEADER`` names the header that the lab's authenticating reverse
  proxy sets. A request without it is refused, and the header is trusted only from the proxy:
  no page is served unless the server listens on loopback only, or ``$ESM_NAS_PROXY_SECRET``
  is set and every request carries it (``X-ESM-NAS-Proxy-Secret``, set by the proxy).
- **local** (a single workstation): a random identifier kept in a browser cookie, with the name
  its user typed, remembered in the workspace. It survives reloads and cannot be taken by typing
  someone's name, but anyone who can use that browser (or copy its cookie) is its owner: it is
  not security.

Admins (``[access] admins = [...]`` in secrets, or ``$ESM_NAS_ADMINS``) may change anyone's
jobs, datasets and models.
"""

from __future__ import annotations

import os

import streamlit as st

from nas_core.common.access import (
    PROXY_SECRET_HEADER,
    LocalNames,
    Person,
    admins,
    local_person,
    new_browser_id,
    proxy_secret_matches,
    proxy_setup_problem,
    valid_browser_id,
)
from nas_core.common.text import md_text
from nas_core.common.workspace import workspace_root

KEY = "user_name"
HEADER_ENV = "ESM_NAS_USER_HEADER"
SECRET_ENV = "ESM_NAS_PROXY_SECRET"
COOKIE = "esm_nas_browser"
_BROWSER_KEY = "browser_id"


def _secrets_section(name: str) -> dict:
    try:
        return dict(st.secrets.get(name, {}))
    except (FileNotFoundError, KeyError, AttributeError, st.errors.StreamlitSecretNotFoundError):
        return {}


def login_configured() -> bool:
    try:
        return "auth" in st.secrets
    except (FileNotFoundError, KeyError, AttributeError, st.errors.StreamlitSecretNotFoundError):
        return False


def mode() -> str:
    if login_configured():
        return "sign-in"
    return "proxy" if os.environ.get(HEADER_ENV) else "local"


def _admins() -> frozenset[str]:
    return admins(list(_secrets_section("access").get("admins", [])))


def _signed_in() -> Person | None:
    """The OIDC account, or None before sign-in. Raises ValueError for an unusable account."""
    try:
        logged_in = bool(st.user.is_logged_in)
    except (AttributeError, KeyError):  # no session cookie yet (and under AppTest)
        logged_in = False
    if not logged_in:
        return None
    email = str(st.user.get("email") or "").strip()
    name = str(st.user.get("name") or "").strip()
    if not email and not name:
        raise ValueError("your account gives this instance neither an e-mail address nor a "
                         "name, so your jobs could not be told apart from anyone else's. Ask "
                         "the lab's administrator to release the 'email' claim.")
    key = email.lower() or f"{name} ({st.user.get('sub')})"
    return Person(key=key, name=name or email, admin=key in _admins())


def _from_proxy() -> Person | None:
    """The user the proxy names; None when the request did not come through the proxy (no
    header, or the shared secret missing or wrong)."""
    headers = st.context.headers
    if not proxy_secret_matches(headers.get(PROXY_SECRET_HEADER), os.environ.get(SECRET_ENV)):
        return None
    value = (headers.get(os.environ[HEADER_ENV]) or "").strip()
    return Person(key=value, admin=value.lower() in _admins()) if value else None


def _browser_id() -> str:
    """This browser's remembered identifier; a new one is written into a cookie."""
    state = st.session_state
    if _BROWSER_KEY not in state:
        cookie = st.context.cookies.get(COOKIE)
        state[_BROWSER_KEY] = cookie if valid_browser_id(cookie) else new_browser_id()
    ident = state[_BROWSER_KEY]
    if st.context.cookies.get(COOKIE) != ident:
        st.html(f"<script>document.cookie = '{COOKIE}={ident}; path=/; max-age=31536000; "
                "SameSite=Strict';</script>", unsafe_allow_javascript=True)
    return ident


def require_login() -> None:
    """Called by app.py before any page: nothing of the instance shows to an unknown visitor."""
    current = mode()
    if current == "sign-in":
        try:
            person = _signed_in()
        except ValueError as exc:
            st.title("ESM-NAS Studio")
            st.error(f"Signed in, but {md_text(exc)}")
            st.button("Sign out", on_click=st.logout, key="sign_out")
            st.stop()
        if person is None:
            st.title("ESM-NAS Studio")
            st.write("This lab instance is shared: sign in with your institutional account to "
                     "see and start searches.")
            st.button("Sign in", type="primary", on_click=st.login, key="sign_in")
            st.stop()
    elif current == "proxy" and (problem := proxy_setup_problem(
            st.get_option("server.address"), os.environ.get(SECRET_ENV),
            os.environ.get(HEADER_ENV, ""))):
        st.title("ESM-NAS Studio")
        st.error(problem)
        st.stop()
    elif current == "proxy" and _from_proxy() is None:
        st.title("ESM-NAS Studio")
        st.error("This instance is opened through the lab's sign-in proxy, and this request did "
                 "not come through it. Use the lab's address for ESM-NAS Studio.")
        st.stop()
    elif current == "local":
        _browser_id()


def current_user() -> Person | None:
    """The person acting now (None before sign-in). On a workstation this browser is a person
    from its first visit; its name is empty until typed."""
    current = mode()
    if current == "sign-in":
        try:
            return _signed_in()
        except ValueError:
            return None
    if current == "proxy":
        return _from_proxy()
    return local_person(_browser_id(), str(st.session_state.get(KEY, "")))


def sidebar() -> None:
    """Called once by app.py, before the page runs, so the name survives page changes."""
    who = current_user() if mode() != "local" else None
    if who:
        admin = " (admin)" if who.admin else ""
        st.sidebar.caption(f"Signed in as {md_text(who.shown)}{admin}")
        if login_configured():
            st.sidebar.button("Sign out", on_click=st.logout, key="sign_out")
        return
    names = LocalNames(str(workspace_root()))
    browser = _browser_id()
    if not st.session_state.get(KEY):
        st.session_state[KEY] = names.get(browser)  # remembered for this browser
    name = st.sidebar.text_input(
        "Your name", key=KEY,
        help="Shown on the jobs you start. This browser is remembered as their owner, so only "
        "it can cancel them: typing someone else's name gives no rights over their jobs.")
    if name.strip():
        names.set(browser, name.strip())
