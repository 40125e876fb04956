from pathlib import Path

import streamlit as st

from nas_core.common.metric_names import metric_name
from nas_core.common.progress import StepProgress
from nas_core.common.report import load_report
from nas_core.common.text import md_sentence, md_text
from nas_core.publishing.hub import suggested_repo_name
from nas_core.runtime.jobtable import JobState
from nas_core.runtime.launch import evaluate_point, finalisable, finalise_stopped, point_dir
from nas_core.views.monitor import format_eta
from nas_core.views.results import metrics_table, test_predictions, zip_directory
from ui import engine, render, resources
from ui.compress import compress_section
from ui.identity import current_user
from ui.publish import publish_form

st.title("Results")
root = resources.workspace()
manager = engine.job_manager(root)
user = current_user()
jobs = manager.jobs()
stopped = [(j, n) for j in jobs if (n := finalisable(j, root))]
# A stopped search opened from Monitor: the page shows its state, not another search's
# numbers, until it is tested and exported or the visitor asks for every search's results
if st.session_state.get("results_job_id") in {j.id for j, _ in stopped}:
    st.session_state["results_focus"] = st.session_state.pop("results_job_id")
focused = [(j, n) for j, n in stopped if j.id == st.session_state.get("results_focus")]
if focused:
    j, n = focused[0]
    st.info(f"**{md_text(j.study_name)}** stopped ({j.state}) with {n} finished trial(s) of "
            f"{j.n_trials or 'no fixed number'}: test the best of them once on the held-out "
            "split and export it, as a finished search would.")
    if st.button("Show every search's results instead", key="results_unfocus"):
        st.session_state.pop("results_focus", None)
        st.rerun()
    stopped = focused + [(k, m) for k, m in stopped if k.id != j.id]
else:
    st.session_state.pop("results_focus", None)
if stopped:
    with st.expander(f"Stopped searches with finished trials ({len(stopped)})",
                     expanded=bool(focused) or not any(j.report_path.is_file() for j in jobs)):
        st.caption("A cancelled, interrupted or failed search keeps its finished trials: test "
                   "the best of them once on the held-out split and export it, as a finished "
                   "search would. Resuming it later tests again at the end.")
        for j, n in stopped:
            left, right = st.columns([3, 2])
            left.markdown(f"**{md_text(j.study_name)}** ({md_text(j.owner_shown)}): {j.state}, "
                          f"{n} finished trial(s) of {j.n_trials or 'no fixed number'}")
            allowed = user is not None and user.may_change(j.owner)
            if right.button("Test and export the best", key=f"results_finalise_{j.id}",
                            disabled=not allowed, help=None if allowed else
                            "Only the person who ran this search, or an admin, can."):
                bar = st.progress(0.0, text=f"Testing the best trial of "
                                  f"{md_text(j.study_name)} on the held-out split...")

                def shown(step: StepProgress, bar=bar) -> None:
                    left = "" if step.eta_seconds is None else \
                        f" (about {format_eta(step.eta_seconds)} left)"
                    bar.progress(step.fraction, text=f"{md_text(step.message)}: step "
                                 f"{step.done + 1} of {step.total}{left}")

                try:
                    finalise_stopped(j, user, root, progress=shown)
                except (PermissionError, ValueError, RuntimeError, FileNotFoundError) as exc:
                    st.error(md_sentence(exc))
                else:
                    st.session_state["results_job_id"] = j.id  # its results, next
                    st.session_state.pop("results_focus", None)
                    st.rerun()
finished = [j for j in jobs if j.report_path.is_file()]
if focused:  # the search asked for has no results yet: nothing else is shown as if it were
    st.stop()
if not finished:
    st.info("No finished search yet. Results appear here once a search has run its trials "
            "and its best model has been tested on the held-out split.")
    st.stop()
ids = [j.id for j in finished]
wanted = st.session_state.pop("results_job_id", None)
if wanted in ids:
    st.session_state["results_job"] = wanted
job_id = st.selectbox("Search", ids, key="results_job",
                      format_func=lambda i: next(f"{j.study_name} ({j.owner_shown}"
                                                 + ("" if j.state is JobState.FINISHED else
                                                    f", {j.state}") + ")"
                                                 for j in finished if j.id == i))
job = next(j for j in finished if j.id == job_id)
out_dir = job.out_dir
report = load_report(out_dir)
if report is None:
    st.error("This search's report could not be read: finalise it again from Monitor.")
    st.stop()
if report.pareto and report.best.trial is not None:
    front = {p.trial: p for p in report.pareto}
    metric = metric_name(report.metric)
    chosen: int = st.selectbox(
        "Pareto point", list(front), index=list(front).index(report.best.trial),
        format_func=lambda n: f"trial {n}: {metric} "
                              f"{front[n].value:.3f}, {front[n].n_parameters:,} parameters",
        key=f"results_point_{job.id}",  # each search its own front
        help="Smaller models score a little lower: pick the trade-off.")
    if chosen != report.best.trial:
        out_dir = str(point_dir(job, chosen))
        if load_report(out_dir) is None:
            with st.spinner(f"Testing trial {chosen} on the held-out split..."):
                evaluate_point(job, chosen, root)
        report = load_report(out_dir) or report
render.results(report, test_predictions(out_dir), metrics_table(report))
model_dir: str = report.best.model_dir or str(Path(out_dir) / "best_model")
st.download_button("Download the model (zip)", lambda: zip_directory(model_dir),
                   file_name=f"{job.study_name}-trial{report.best.trial}.zip",
                   mime="application/zip", key="results_download")
if user and user.may_change(job.owner):
    publish_form(model_dir, suggested_repo_name(report))
else:
    st.subheader("Publish to the Hugging Face Hub")
    st.caption(f"Only {md_text(job.owner_shown)}, who ran this search, or an admin can "
               "publish its model. You can download it above.")
# the ensemble's download and publish form only when there is one (its folder exists)
ensemble_dir = report.ensemble.model_dir if report.ensemble and report.ensemble.built and \
    report.ensemble.model_dir and Path(report.ensemble.model_dir).is_dir() else None
if ensemble_dir:
    render.ensemble(report)
    ensemble_folder: str = ensemble_dir
    st.download_button("Download the ensemble (zip)", lambda: zip_directory(ensemble_folder),
                       file_name=f"{job.study_name}-ensemble.zip", mime="application/zip",
                       key="results_ensemble_download")
    if user and user.may_change(job.owner):
        publish_form(ensemble_dir, suggested_repo_name(report) + "-ensemble",
                     key="publish_ensemble", title="Publish the ensemble")
elif report.ensemble:
    render.ensemble(report)
compress_section(manager, job, report, user)
