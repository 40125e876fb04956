import streamlit as st

from nas_core.common.text import md_text
from nas_core.runtime.launch import evaluate_point, point_dir
from nas_core.views.results import load_report, metrics_table, test_predictions, zip_directory
from ui import render, resources
from ui.identity import current_user
from ui.publish import publish_form

st.title("Results")
root = resources.workspace()
manager = resources.job_manager(root)
finished = [j for j in manager.jobs() if j.report_path.is_file()]
if not finished:
    st.info("No finished search yet. Results appear here once a search has run its trials "
            "and its best model has been tested on the held-out split.")
    st.stop()
job = st.selectbox("Search", finished, key="results_job",
                   format_func=lambda j: f"{j.study_name} ({j.owner_shown})")
out_dir = job.out_dir
report = load_report(out_dir)
if report.get("pareto"):
    points = [p["trial"] for p in report["pareto"]]
    chosen = st.selectbox(
        "Pareto point", points, index=points.index(report["best"]["trial"]),
        format_func=lambda n: next(f"trial {p['trial']}: {report['metric']} "
                                   f"{p[report['metric']]:.3f}, {p['n_parameters']:,} "
                                   "parameters" for p in report["pareto"] if p["trial"] == n),
        key="results_point", help="Smaller models score a little lower: pick the trade-off.")
    if chosen != report["best"]["trial"]:
        out_dir = point_dir(job, chosen)
        if load_report(out_dir) is None:
            with st.spinner(f"Testing trial {chosen} on the held-out split..."):
                evaluate_point(job, chosen, root)
        report = load_report(out_dir)
render.results(report, test_predictions(out_dir), metrics_table(report))
model_dir = report["best"]["model_dir"]
st.download_button("Download the model (zip)", lambda: zip_directory(model_dir),
                   file_name=f"{job.study_name}-trial{report['best']['trial']}.zip",
                   mime="application/zip", key="results_download")
user = current_user()
if user and user.may_change(job.owner):
    publish_form(model_dir, f"{job.study_name}-trial{report['best']['trial']}")
else:
    st.subheader("Publish to the Hugging Face Hub")
    st.caption(f"Only {md_text(job.owner_shown)}, who ran this search, or an admin can "
               "publish its model. You can download it above.")
