"""What the Monitor page draws: the jobs table and a job's live curves. Light on purpose (no
torch, transformers or scikit-learn): a fresh server draws Monitor without loading them."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from nas_core.common.metric_names import mae_meaning
from nas_core.publishing import charts
from nas_core.runtime.jobtable import JobKind
from nas_core.views.monitor import format_eta, importances, trial_table


def jobs_table(jobs, progress) -> None:
    """``progress``: job id -> nas_core.views.monitor.Progress."""
    if not jobs:
        st.info("No search yet: start one on the Search page.")
        return
    rows = []
    for job in jobs:
        p = progress[job.id]
        state = job.state + (f" (#{job.queue_position} in queue)" if job.queue_position else "")
        rows.append({
            "job": job.id, "study": job.study_name, "owner": job.owner_shown, "state": state,
            "progress": p.fraction,
            "trials": f"{p.done}/{p.total}" if p.total else str(p.done),
            "best": p.best, "ETA": format_eta(p.eta_seconds), "device": job.device or "",
            "started": pd.Timestamp(job.started or job.created, unit="s").strftime(
                "%Y-%m-%d %H:%M"),
        })
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", column_config={
        "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0),
        "best": st.column_config.NumberColumn("best", format="%.4f"),
        # wide enough for "1 h 05 min" / "12 min 08 s", whatever the first value was
        "ETA": st.column_config.TextColumn("ETA", width=110)})


def live_study(view, job) -> None:
    if view is not None and view.darts is not None and not view.darts.empty:
        st.caption("One-shot (DARTS) search: how the super-network's architecture weights "
                   "move while it trains; the strongest choices become the trials below.")
        st.altair_chart(charts.make_darts_chart(view.darts))
    if view is None or view.trials.empty:
        st.info("Waiting for the first trial..." if job.state.active
                else "This job has no trials: start a new search on the Search page.")
        return
    if job.kind is JobKind.PRETRAIN:
        pretraining_curve(view)
        return
    running = view.running_trial()
    if running is not None:
        st.caption(f"Trial {running} is training. Faded lines: earlier trials.")
    if not view.history.empty:
        left, right = st.columns(2)
        left.altair_chart(charts.make_curves_chart(view.history, "loss", running),
                          width="stretch")
        right.altair_chart(charts.make_curves_chart(view.history, "mae", running),
                           width="stretch")
        if view.task:
            right.caption(mae_meaning(view.task))
    if (view.trials["state"] == "COMPLETE").any():
        left, right = st.columns(2)
        left.altair_chart(charts.make_best_so_far_chart(view.trials, view.directions[0],
                                                        view.metric), width="stretch")
        if view.multi_objective:
            front = view.pareto_front()
            right.altair_chart(charts.make_pareto_chart(view.trials, view.metric, front),
                               width="stretch")
    if (view.trials["state"] == "COMPLETE").sum() >= 5:
        frame = importances(job.study_name, job.storage)
        if frame is not None:
            st.altair_chart(charts.make_importance_chart(frame), width="stretch")
    st.dataframe(trial_table(view), hide_index=True, width="stretch")


def pretraining_curve(view) -> None:
    """A pretraining job: its held-out perplexity against tokens seen, and where it is."""
    if view.tokens is not None:
        t = view.tokens
        st.caption(f"{t.tokens:,} of {t.budget:,} tokens, step {t.step:,}, "
                   f"{t.tokens_per_second:,.0f} tokens/s.")
    if view.history.empty or "val_perplexity" not in view.history:
        st.info("Measuring the held-out perplexity of the starting weights...")
        return
    st.altair_chart(charts.make_perplexity_chart(view.history), width="stretch")
    st.caption("Lower is better. Held-out proteins share no family with the training ones "
               "(MMseqs2); a backbone that learnt nothing stays at the amino-acid frequencies' "
               "perplexity.")
