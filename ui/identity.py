"""Who is using this browser session.

In order: the OpenID Connect login (``[auth]`` in Streamlit secrets: the instance then requires
signing in), a user header set by the lab's authenticating reverse proxy (only when
``$ESM_NAS_USER_HEADER`` names it, since anyone reaching the app directly could forge it), else
a name asked once per browser session (in the sidebar of every page).
"""

from __future__ import annotations

import os

import streamlit as st

KEY = "user_name"
HEADER_ENV = "ESM_NAS_USER_HEADER"


def login_configured() -> bool:
    try:
        return "auth" in st.secrets
    except (FileNotFoundError, KeyError, AttributeError):
        return False


def _login_identity() -> str | None:
    try:
        if st.user.is_logged_in:
            return str(st.user.get("email") or st.user.get("name"))
    except (AttributeError, KeyError, RuntimeError):
        pass  # no login configured on this instance
    header = os.environ.get(HEADER_ENV)
    if header:
        value = st.context.headers.get(header)
        if value and value.strip():
            return value.strip()
    return None


def require_login() -> None:
    """With OIDC configured, nothing of the instance shows before signing in."""
    if login_configured() and not _login_identity():
        st.title("ESM-NAS Studio")
        st.write("This lab instance is shared: sign in with your institutional account to "
                 "see and start searches.")
        st.button("Sign in", type="primary", on_click=st.login, key="sign_in")
        st.stop()


def sidebar() -> None:
    """Called once by app.py, before the page runs, so the name survives page changes."""
    who = _login_identity()
    if who:
        st.sidebar.caption(f"Signed in as {who}")
        if login_configured():
            st.sidebar.button("Sign out", on_click=st.logout, key="sign_out")
        return
    st.sidebar.text_input(
        "Your name", key=KEY,
        help="Recorded on the jobs you start. Everyone can watch them; only you can cancel.")


def current_user() -> str | None:
    name = _login_identity() or st.session_state.get(KEY, "")
    return name.strip() or None
