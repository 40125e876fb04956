"""ESM-NAS Studio: `streamlit run app.py`."""

import logging
import threading
import time
import uuid

import streamlit as st

from nas_core.common.text import md_text
from nas_core.common.workspace import storage_problem, workspace_root
from nas_core.search.logs import quiet_optuna
from ui import identity

logger = logging.getLogger("esm_nas.app")
ENGINE_DELAY_S = 5.0  # after the first page: time for the server to send it
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


def _start_engine(root: str) -> None:
    # Importing torch holds the interpreter lock for seconds at a time: started at once, it
    # kept the server from sending the page it had just run (Home drawn in 4.5 s instead of 2)
    time.sleep(ENGINE_DELAY_S)
    from ui.engine import job_manager

    job_manager(root)


@st.cache_resource(show_spinner=False)
def _engine_started(root: str) -> threading.Thread:
    """Once per server process, after the first page has drawn: load the engine and start
    the job manager (it recovers jobs a restart interrupted and runs the queue), so the first
    page is not kept waiting for PyTorch and the next one finds it loaded."""
    thread = threading.Thread(target=_start_engine, args=(root,), name="esm-nas-engine",
                              daemon=True)
    thread.start()
    return thread


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
    _engine_started(str(workspace_root()))
except Exception as exc:  # never a traceback for a visitor: a message and an error id
    problem = storage_problem(exc)
    if problem is not None:  # a full or read-only disk: what to do, in one message
        st.error(md_text(problem))
    else:
        error_id = uuid.uuid4().hex[:8]
        logger.exception("page failed (error %s)", error_id)  # the details: the server log
        st.error(f"Something went wrong on this page (error {error_id}). Nothing you stored "
                 "was lost; try again, or tell the administrator the error id (the details "
                 "are in the server's log).")
        user = identity.current_user()
        if identity.mode() == "local" or (user is not None and user.admin):
            st.exception(exc)  # the workstation's own user, or an administrator
