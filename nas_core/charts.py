"""Altair charts as pure functions of data frames: testable without Streamlit."""

from __future__ import annotations

import altair as alt
import pandas as pd


def make_length_histogram(frame: pd.DataFrame) -> alt.Chart:
    lengths = pd.DataFrame({"length": frame["sequence"].str.len(),
                            "split": frame.get("split", "all")})
    return alt.Chart(lengths, title="Sequence length").mark_bar().encode(
        x=alt.X("length:Q", bin=alt.Bin(maxbins=40), title="residues"),
        y=alt.Y("count():Q", title="sequences", stack=True),
        color=alt.Color("split:N", sort=["train", "valid", "test"]),
        tooltip=["split:N", "count():Q"],
    ).properties(height=220)


def make_label_chart(frame: pd.DataFrame, task: str) -> alt.Chart:
    """Class balance per split (classification) or the label distribution (regression)."""
    data = frame[["label", "split"]].copy()
    if task == "regression":
        return alt.Chart(data, title="Label distribution").mark_bar().encode(
            x=alt.X("label:Q", bin=alt.Bin(maxbins=40), title="label"),
            y=alt.Y("count():Q", title="sequences", stack=True),
            color=alt.Color("split:N", sort=["train", "valid", "test"]),
        ).properties(height=220)
    data["label"] = data["label"].astype(str)
    return alt.Chart(data, title="Class balance").mark_bar().encode(
        y=alt.Y("label:N", title=None),
        x=alt.X("count():Q", title="sequences"),
        color=alt.Color("split:N", sort=["train", "valid", "test"]),
        tooltip=["label:N", "split:N", "count():Q"],
    ).properties(height=max(80, 30 * data["label"].nunique()))
