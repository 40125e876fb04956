"""Who is using this browser session: the login identity when the instance has one."""

from __future__ import annotations

import streamlit as st


def current_user() -> str | None:
    try:
        if st.user.is_logged_in:
            return str(st.user.get("email") or st.user.get("name"))
    except (AttributeError, KeyError, RuntimeError):
        pass  # no login configured on this instance
    name = st.sidebar.text_input(
        "Your name", key="user_name",
        help="Recorded on the jobs you start. Everyone can watch them; only you can cancel.")
    return name.strip() or None
