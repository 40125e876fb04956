"""The Results page's Compress section: start the step, then its accuracy-vs-size curve, and
export or publish any point of it."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from nas_core.common.metric_names import metric_name
from nas_core.common.report import Report
from nas_core.common.text import md_sentence, md_text
from nas_core.compression.compress import teacher_of
from nas_core.compression.config import CompressConfig, CompressError, estimated_seconds, planned
from nas_core.publishing import charts
from nas_core.publishing.hub import suggested_repo_name
from nas_core.views.monitor import format_eta
from nas_core.views.results import compression_points, load_compression, zip_directory
from ui.publish import publish_form

TARGET_CHOICES = (0.9, 0.75, 0.5, 0.33, 0.25, 0.1)
_HELP = {name: f.metadata.get("help", "")
         for name, f in CompressConfig.__dataclass_fields__.items()}


def compress_section(manager, job, report: Report, user) -> None:
    st.subheader("Compress")
    st.caption("Smaller versions of this model for cheaper, faster prediction: the attention "
               "heads and feed-forward neurons that matter least on your training data are "
               "removed, and the smaller model learns to reproduce this one's outputs "
               "(distillation). Each is tested once on the held-out split and timed on this "
               "machine, beside a model cut to fewer layers of the same size.")
    try:
        teacher_of(Path(job.out_dir))
    except CompressError as exc:
        st.info(md_sentence(exc))
        return
    runs = manager.compressions(job.id)
    allowed = user is not None and user.may_change(job.owner)
    active = next((j for j in runs if j.state.active), None)
    with st.form(f"compress_form_{job.id}", enter_to_submit=False, border=False):
        targets = st.multiselect("Target sizes (share of this model's parameters)",
                                 TARGET_CHOICES, default=[0.75, 0.5, 0.25],
                                 format_func="{:.0%}".format, help=_HELP["targets"],
                                 key=f"compress_targets_{job.id}")
        depth = st.checkbox("Also cut layers to the same sizes, for comparison", True,
                            help=_HELP["depth_baseline"], key=f"compress_depth_{job.id}")
        if targets:
            planned_config = CompressConfig(targets=tuple(targets), depth_baseline=depth)
            seconds = estimated_seconds(report, planned_config)
            st.caption(f"{planned(planned_config)} variant(s)" + (
                f": about {format_eta(seconds)} on this machine, from this model's own "
                "training time."
                if seconds else "."))
        start = st.form_submit_button(
            "Compress", disabled=not allowed or active is not None,
            help=None if allowed else "Only the person who ran this search, or an admin, can.")
    if start and user is not None:
        try:
            manager.submit_compress(job.id, CompressConfig(targets=tuple(sorted(
                targets, reverse=True)), depth_baseline=depth), user)
        except (ValueError, PermissionError) as exc:
            st.error(md_sentence(exc))
        else:
            st.rerun()
    if active is not None:
        st.info(f"Compressing ({active.state}): follow it, with its curves, on the Monitor "
                "page.")
        st.page_link("app_pages/monitor.py", label="Follow it on Monitor",
                     icon=":material/monitoring:")
    done = next((j for j in runs if load_compression(j.out_dir) is not None), None)
    if done is None:
        if runs and runs[0].state.can_resume:
            st.warning(f"The last Compress job {runs[0].state}"
                       + (f": {md_text(runs[0].error)}" if runs[0].error else "."))
        return
    show_compression(load_compression(done.out_dir) or {}, report, allowed, done.id)


def show_compression(result: dict, report: Report, allowed: bool, run_id: str) -> None:
    metric = result["metric"]
    points = compression_points(result)
    test_col = f"test {metric_name(metric)}"
    if result.get("backbone_untrained"):
        st.caption("The backbone has random (untrained) weights: a demo, not ESM-2.")
    left, right = st.columns(2)
    left.altair_chart(charts.make_compression_chart(points, test_col), width="stretch")
    right.altair_chart(charts.make_compression_chart(points, test_col, x="sequences/s"),
                       width="stretch")
    st.dataframe(points.drop(columns=["kind", "path", "target"]), hide_index=True,
                 width="stretch", column_config={"share": st.column_config.NumberColumn(
                     format="percent")})
    for skip in result.get("skipped", []):
        st.caption(f"Not made: {skip['kind']} at {skip['target']:.0%}: {md_text(skip['reason'])}")
    variants = points[points["kind"] != "reference"]
    if variants.empty:
        return
    labels = {row.path: f"{row.model}: {row.parameters:,} parameters ({row.share:.0%}), "
              f"{metric_name(metric)} {row[test_col]:.3f}" if row[test_col] is not None else
              f"{row.model}: {row.parameters:,} parameters ({row.share:.0%})"
              for _, row in variants.iterrows()}
    chosen = st.selectbox("Export or publish", list(labels), format_func=labels.__getitem__,
                          key=f"compress_point_{run_id}")
    st.download_button("Download this model (zip)", lambda: zip_directory(chosen),
                       file_name=f"{Path(chosen).name}.zip", mime="application/zip",
                       key=f"compress_download_{run_id}")
    if allowed:
        share = float(variants.loc[variants["path"] == chosen, "share"].iloc[0])
        publish_form(chosen, f"{suggested_repo_name(report)}-{round(share * 100)}pct",
                     key="publish_compressed", title="Publish this compressed model")
