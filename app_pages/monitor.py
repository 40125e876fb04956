import streamlit as st

from nas_core.common.text import md_text
from nas_core.views.monitor import job_progress
from ui import render, resources
from ui.identity import current_user

st.title("Monitor")
root = resources.workspace()
manager = resources.job_manager(root)
user = current_user()
jobs = manager.jobs()
active = any(j.state in ("queued", "running") for j in jobs)


@st.fragment(run_every=2 if active else None)
def jobs_panel() -> None:
    current = manager.jobs()
    progress = {j.id: job_progress(j, resources.study_view(j))
                for j in current}
    render.jobs_table(current, progress)


jobs_panel()
if not jobs:
    st.stop()

job_id = st.selectbox("Job", [j.id for j in jobs], key="monitor_job",
                      # no state in the label: the table above shows it live
                      format_func=lambda i: next(f"{j.study_name} ({j.owner_shown}, job {j.id})"
                                                 for j in jobs if j.id == i))
job = manager.get(job_id)
if job.error:
    (st.warning if job.state == "interrupted" else st.error)(md_text(job.error))
c1, c2, c3 = st.columns(3)
is_owner = user is not None and user.may_change(job.owner)
try:
    if c1.button("Cancel", disabled=job.state not in ("queued", "running") or not is_owner,
                 help="The current trial stops at the end of its epoch; completed trials are "
                 "kept.", key="monitor_cancel") and user:
        manager.cancel(job.id, user)
        st.rerun()
    if c2.button("Resume", disabled=job.state not in ("cancelled", "interrupted", "failed")
                 or not is_owner, key="monitor_resume") and user:
        manager.resume(job.id, user)
        st.rerun()
    if c3.button("Retry failed trials", disabled=job.state in ("queued", "running")
                 or not is_owner, key="monitor_retry") and user:
        n = manager.retry_failed(job.id, user)
        st.toast(f"{n} failed trial(s) queued again." if n else "No failed trial to retry.")
        st.rerun()
except (PermissionError, ValueError, RuntimeError) as exc:
    st.error(md_text(exc))
if not is_owner:
    st.caption(f"Started by {md_text(job.owner_shown)} (from another browser or account): you can "
               "watch; only they or an admin can cancel or resume.")


@st.fragment(run_every=2 if job.state in ("queued", "running") else None)
def live_panel() -> None:
    current = manager.get(job_id)
    if current.state != job.state:
        st.rerun(scope="app")  # buttons and messages above follow the job's new state
    render.live_study(resources.study_view(current), current)
    if current.state == "finished":
        st.page_link("app_pages/results.py", label="See the results",
                     icon=":material/emoji_events:")


live_panel()
