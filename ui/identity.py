"""Who is using this browser session: the login identity when the instance has one, else a
name asked once per browser session (in the sidebar of every page)."""

from __future__ import annotations

import streamlit as st

KEY = "user_name"


def _login_identity() -> str | None:
    try:
        if st.user.is_logged_in:
            return str(st.user.get("email") or st.user.get("name"))
    except (AttributeError, KeyError, RuntimeError):
        pass  # no login configured on this instance
    return None


def sidebar() -> None:
    """Called once by app.py, before the page runs, so the name survives page changes."""
    if _login_identity():
        st.sidebar.caption(f"Signed in as {_login_identity()}")
        return
    st.sidebar.text_input(
        "Your name", key=KEY,
        help="Recorded on the jobs you start. Everyone can watch them; only you can cancel.")


def current_user() -> str | None:
    name = _login_identity() or st.session_state.get(KEY, "")
    return name.strip() or None
