"""Render helpers: domain objects in, ``st.*`` calls out."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from nas_core.charts import make_label_chart, make_length_histogram
from nas_core.data import Dataset, ValidationResult
from nas_core.datastore import StoredDataset


def problems(result: ValidationResult, *, key: str) -> str | None:
    """Show errors, warnings and one-click fixes; return the fix the user clicked, if any."""
    for note in result.applied_fixes:
        st.success(f"Fixed: {note}")
    errors = result.errors
    if errors:
        st.error(f"{len(errors)} problem(s) must be fixed before this dataset can be used "
                 f"({result.source}, {result.n_rows_read} rows read).")
        shown = errors[:50]
        st.markdown("\n".join(f"- {p.message}" for p in shown))
        if len(errors) > len(shown):
            st.caption(f"... and {len(errors) - len(shown)} more (the CLI `python -m nas_core "
                       "validate` lists all).")
    clicked = None
    for fix, text in result.offered_fixes.items():
        if st.button(text, key=f"{key}-fix-{fix}", type="primary"):
            clicked = fix
    for p in result.warnings:
        st.warning(p.message)
    return clicked


def dataset_overview(dataset: Dataset, notes: list) -> None:
    summary = dataset.summary()
    cols = st.columns(4)
    cols[0].metric("Sequences", summary["n_sequences"])
    cols[1].metric("Task", summary["task"])
    length = summary["length"]
    cols[2].metric("Length", f"{length['min']}–{length['max']}")
    splits = summary.get("splits", {})
    cols[3].metric("Train / valid / test",
                   f"{splits.get('train', 0)} / {splits.get('valid', 0)} / "
                   f"{splits.get('test', 0)}")
    for note in notes:
        (st.warning if note.severity == "warning" else st.info)(note.message)
    if "classes" in summary:
        total = sum(summary["classes"].values())
        st.caption("Classes: " + ", ".join(f"**{k}** {v} ({100 * v / total:.0f}%)"
                                            for k, v in summary["classes"].items()))
    else:
        lab = summary["label"]
        st.caption(f"Label from {lab['min']:.4g} to {lab['max']:.4g}, mean {lab['mean']:.4g}")
    left, right = st.columns(2)
    left.altair_chart(make_length_histogram(dataset.frame), width="stretch")
    right.altair_chart(make_label_chart(dataset.frame, dataset.task), width="stretch")


def stored_datasets(records: list[StoredDataset]) -> None:
    if not records:
        st.info("No dataset stored yet: upload one or use the example above.")
        return
    table = pd.DataFrame([{
        "name": r.name, "task": r.task, "sequences": r.n_sequences,
        "classes": ", ".join(r.label_names or []) or "—", "id": r.id,
        "added": pd.Timestamp(r.created, unit="s").strftime("%Y-%m-%d %H:%M"),
    } for r in records])
    st.dataframe(table, hide_index=True, width="stretch")
