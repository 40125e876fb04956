"""The publish form of the Results page."""

from __future__ import annotations

import hashlib
import os

import streamlit as st

from nas_core.common.text import md_sentence, md_text
from nas_core.publishing.config import PublishConfig
from nas_core.publishing.hub import PublishError, check_token, publish


def _configured_token() -> tuple[str | None, str | None]:
    """(token, where it comes from) from the environment or Streamlit secrets."""
    if os.environ.get("HF_TOKEN"):
        return os.environ["HF_TOKEN"], "the HF_TOKEN environment variable"
    try:
        if "HF_TOKEN" in st.secrets:
            return str(st.secrets["HF_TOKEN"]), "the app's secrets"
    except (FileNotFoundError, KeyError, st.errors.StreamlitSecretNotFoundError):
        pass
    return None, None


@st.cache_data(ttl=600, show_spinner=False, max_entries=8)
def _account(token: str) -> str | None:
    """The Hub account of the server's token, for the default repository name."""
    try:
        return check_token(token)
    except PublishError:
        return None


def publish_form(model_dir: str, default_name: str, *, key: str = "publish",
                 title: str = "Publish to the Hugging Face Hub") -> None:
    """The form for one model folder (``key`` keeps two forms on one page apart). When the
    page shows another model, the form starts afresh: it never carries the previous model's
    repository name, choices, error or link over to this one (the token stays)."""
    # The browser keeps a form field's unsent text for as long as its key lives, and sends it
    # with the form: one key for two models offered (and published) one model's name for the
    # other, even after the page had redrawn the box with the right one. So the fields get new
    # keys each time the form shows another model (a visit); what happened (error, link) is
    # kept per model.
    state = st.session_state
    if state.get(f"{key}_for") != model_dir:
        state[f"{key}_for"] = model_dir
        state[f"{key}_visit"] = state.get(f"{key}_visit", 0) + 1
    fields_key = f"{key}_{state[f'{key}_visit']}"
    token_key = f"{fields_key}_token"
    key = f"{key}_{hashlib.sha1(model_dir.encode()).hexdigest()[:8]}"
    st.subheader(title)
    failed = st.session_state.get(f"{key}_error")
    if failed:
        st.error(f"Not published: {md_text(failed)} Nothing was retrained; press Retry when "
                 "ready.")
    if st.session_state.get(f"{key}_url"):
        st.success(f"Published: {st.session_state[f'{key}_url']}")
    token, origin = _configured_token()
    account = _account(token) if token else None
    fields = PublishConfig.__dataclass_fields__
    help_for = {name: f.metadata["help"] for name, f in fields.items()}
    # Enter in a box must not publish: only the button does
    with st.form(f"{fields_key}_form", enter_to_submit=False):
        repo = st.text_input("Repository name", f"{account}/{default_name}" if account
                             else default_name, key=f"{fields_key}_repo",
                             help=help_for["repo"])
        if not account:
            st.caption("Without an 'organisation/' prefix the model goes under the token's "
                       "own account.")
        private = st.checkbox("Private", True, key=f"{fields_key}_private",
                              help=help_for["private"])
        licence = st.selectbox("Licence", fields["license"].metadata["choices"],
                               key=f"{fields_key}_license", help=help_for["license"],
                               format_func=lambda c: c or "None chosen (all rights reserved)")
        with_training = st.checkbox("Include the training sequences", False,
                                    key=f"{fields_key}_training",
                                    help=help_for["include_training_sequences"])
        if token:
            st.caption(f"Using the token from {origin}.")
        else:
            token = st.text_input("Hugging Face token (write access)", type="password",
                                  key=token_key,
                                  help="Used for this upload only: never saved or logged.")
        submitted = st.form_submit_button("Retry" if failed else "Publish", type="primary")
    if not submitted:
        return
    try:
        config = PublishConfig(repo=repo, private=private, license=licence,
                               include_training_sequences=with_training)
    except ValueError as exc:
        st.error(md_sentence(exc))
        return
    bar = st.progress(0.0, text="Starting")
    try:
        url = publish(model_dir, config, token=token or None,
                      progress=lambda message, fraction: _show(bar, message, fraction))
    except PublishError as exc:
        st.session_state[f"{key}_error"] = str(exc)
        st.session_state.pop(f"{key}_url", None)
    else:
        st.session_state.pop(f"{key}_error", None)
        st.session_state[f"{key}_url"] = url
    st.rerun()  # show the outcome above the form, with the button relabelled


def _show(bar, message: str, fraction: float) -> None:
    bar.progress(fraction, text=message)
