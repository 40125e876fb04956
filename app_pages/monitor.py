import streamlit as st

from nas_core.common.text import md_sentence, md_text
from nas_core.runtime.jobtable import JobKind, JobState
from nas_core.search.storage import current_outage
from nas_core.views.monitor import job_progress
from ui import live, resources
from ui.identity import current_user

st.title("Monitor")
root = resources.workspace()
user = current_user()
jobs = resources.jobs(root)  # from the job table: drawing needs no job manager (torch)
# what the page was drawn for: when a job starts, finishes or stops, the whole page is drawn
# again (buttons, messages, whether to keep refreshing)
states = {j.id: j.state for j in jobs}
active = any(state.active for state in states.values())


# One fragment with one timer for everything that moves: two timers on one page, one of them
# asking for a full rerun, left stale copies of the charts behind in the browser.
@st.fragment(run_every=2 if active else None)
def monitor() -> None:
    current = resources.jobs(root)
    if {j.id: j.state for j in current} != states:
        st.rerun(scope="app")
    if (outage := current_outage()) is not None:
        st.warning(f"Waiting for the study database: {md_text(outage.words)}.",
                   icon=":material/cloud_off:")
    progress = {j.id: job_progress(j, resources.study_view(j)) for j in current}
    live.jobs_table(current, progress)
    if not current:
        return
    by_id = {j.id: j for j in current}
    job_id = st.selectbox("Job", list(by_id), key="monitor_job",
                          # no state in the label: the table above shows it live
                          format_func=lambda i: f"{by_id[i].study_name} "
                          f"({by_id[i].owner_shown}, job {i})")
    job = by_id[job_id]
    view = resources.study_view(job)
    controls(job, view)
    live.live_study(view, job)
    if job.state is JobState.FINISHED and job.kind is JobKind.SEARCH and \
            st.button("See the results", icon=":material/emoji_events:", key="monitor_results"):
        st.session_state["results_job_id"] = job.id  # Results opens on this search
        st.switch_page("app_pages/results.py")


def manager():
    """The job manager, for an action: it loads torch, so the page draws without it (app.py
    starts it in the background once the first page has drawn)."""
    from ui.engine import job_manager

    return job_manager(root)


def controls(job, view) -> None:
    if job.error:
        (st.warning if job.state is JobState.INTERRUPTED else st.error)(md_text(job.error))
    if job.state is JobState.CANCELLING:
        st.info("Cancelling: the running trial stops before its next training step and is "
                "given back; finished trials are kept.")
    has_trials = view is not None and not view.trials.empty
    stopped = job.state.can_resume
    c1, c2, c3 = st.columns(3)
    is_owner = user is not None and user.may_change(job.owner)
    try:
        if c1.button("Cancel", disabled=job.state not in (JobState.QUEUED, JobState.RUNNING)
                     or not is_owner,
                     help="The running trial stops before its next training step; finished "
                     "trials are kept.", key="monitor_cancel") and user:
            manager().cancel(job.id, user)
            st.rerun(scope="app")
        if c2.button("Resume", disabled=not stopped or not has_trials or not is_owner,
                     help=("Run the Compress step again." if job.kind is JobKind.COMPRESS else
                           "Continue the search where it stopped, up to its trial budget.")
                     if has_trials else "Nothing to resume: this job never ran a trial.",
                     key="monitor_resume") and user:
            manager().resume(job.id, user)
            st.rerun(scope="app")
        # a Compress job has no trial budget to retry: Resume runs it again
        retryable = view.n_retryable if view is not None and job.kind is JobKind.SEARCH else 0
        if c3.button("Retry failed trials",
                     disabled=job.state.active or not retryable or not is_owner,
                     help=f"Run the {retryable} failed trial(s) again." if retryable
                     else "No failed trial to retry.", key="monitor_retry") and user:
            n = manager().retry_failed(job.id, user)
            st.toast(f"{n} failed trial(s) queued again." if n else "No failed trial to retry.")
            st.rerun(scope="app")
    except (PermissionError, ValueError, RuntimeError) as exc:
        st.error(md_sentence(exc))
    finished = 0 if view is None or not stopped or job.report_path.is_file() or \
        job.kind is not JobKind.SEARCH else int(
        (view.trials["state"] == "COMPLETE").sum())
    if finished:
        st.info(f"This search stopped with {finished} finished trial(s): the Results page can "
                "test the best of them once on the held-out split and export it.")
        if st.button("Test and export what it found", icon=":material/science:",
                     key="monitor_finalise"):
            st.session_state["results_job_id"] = job.id  # Results opens on this search
            st.switch_page("app_pages/results.py")
    if not is_owner:
        st.caption(f"Started by {md_text(job.owner_shown)} (from another browser or account): "
                   "you can watch; only they or an admin can cancel or resume.")


monitor()
