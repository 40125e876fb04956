"""ESM-NAS Studio: `streamlit run app.py`."""

import streamlit as st

from nas_core.common.text import md_text
from nas_core.common.workspace import storage_problem
from nas_core.search.logs import quiet_optuna
from ui import identity

quiet_optuna()  # once per script run: it only sets filters (idempotent)

st.set_page_config(page_title="ESM-NAS Studio", page_icon=":material/biotech:", layout="wide")

pages = [
    st.Page("app_pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("app_pages/data.py", title="Data", icon=":material/table_view:"),
    st.Page("app_pages/search.py", title="Search", icon=":material/travel_explore:"),
    st.Page("app_pages/monitor.py", title="Monitor", icon=":material/monitoring:"),
    st.Page("app_pages/results.py", title="Results", icon=":material/emoji_events:"),
    st.Page("app_pages/predict.py", title="Predict", icon=":material/online_prediction:"),
    st.Page("app_pages/suggest.py", title="Test these next", icon=":material/science:"),
    st.Page("app_pages/pretrain.py", title="Teach a backbone", icon=":material/school:"),
]


@st.cache_resource
def _opened() -> set[str]:
    """Pages this server process has run once: the first run loads PyTorch and the models'
    code (seconds), the later ones do not."""
    return set()


try:
    identity.require_login()
    page = st.navigation(pages)
    identity.sidebar()
    if page.url_path in _opened():
        page.run()
    else:
        with st.spinner(f"Opening {page.title} (the first time takes a few seconds)..."):
            page.run()
        _opened().add(page.url_path)
except Exception as exc:  # a full or read-only disk is one message, never a traceback
    problem = storage_problem(exc)
    if problem is None:
        raise
    st.error(md_text(problem))
