"""Altair charts as pure functions of data frames: testable without Streamlit.
"""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from nas_core.common.metric_names import metric_name
from nas_core.common.report import Calibration, Leakage
from nas_core.common.tasks import Task


def make_length_histogram(frame: pd.DataFrame) -> alt.Chart:
    """Lengths per split; of pairs, each protein once (with the split of its first pair)."""
    lengths = pd.DataFrame({"sequence": frame["sequence"],
                            "split": frame.get("split", "all")})
    pairs = "sequence_2" in frame
    if pairs:
        second = pd.DataFrame({"sequence": frame["sequence_2"],
                               "split": frame.get("split", "all")})
        lengths = pd.concat([lengths, second]).drop_duplicates("sequence")
    lengths["length"] = lengths["sequence"].str.len()
    lengths = lengths.drop(columns="sequence")
    return alt.Chart(lengths, title="Protein length" if pairs else "Sequence length"
                     ).mark_bar().encode(
        x=alt.X("length:Q", bin=alt.Bin(maxbins=40), title="residues"),
        y=alt.Y("count():Q", title="proteins" if pairs else "sequences", stack=True),
        color=alt.Color("split:N", sort=["train", "valid", "test"]),
        tooltip=["split:N", "count():Q"],
    ).properties(height=220)


def residue_label_counts(frame: pd.DataFrame, task: Task) -> pd.DataFrame:
    """Labelled residues per class and split, or (values) per value bin and split: counted
    here, so a chart of 300,000 residues carries a few dozen rows."""
    rows = []
    for split, part in frame.groupby(frame["split"].fillna("unsplit")):
        if task == Task.RESIDUE_REGRESSION:
            values = pd.Series([float(v) for text in part["label"] for v in str(text).split()])
            values = values[np.isfinite(values)]
            rows.append(pd.DataFrame({"value": values, "split": split}))
        else:
            counts = pd.Series(list("".join(part["label"].astype(str)))).value_counts()
            counts = counts.drop("-", errors="ignore")
            rows.append(pd.DataFrame({"label": counts.index, "count": counts.to_numpy(),
                                      "split": split}))
    out = pd.concat(rows, ignore_index=True)
    if task == Task.RESIDUE_REGRESSION:
        edges = np.histogram_bin_edges(out["value"], bins=40)
        out["bin"] = pd.cut(out["value"], edges, include_lowest=True).map(lambda b: b.left)
        out = out.groupby(["bin", "split"], observed=True).size().reset_index(name="count")
        out["bin"] = out["bin"].astype(float)
    return out


def make_label_chart(frame: pd.DataFrame, task: Task) -> alt.Chart:
    """Class balance per split (classification) or the label distribution (regression);
    per residue, counted over labelled residues."""
    if task == Task.RESIDUE_CLASSIFICATION:
        counts = residue_label_counts(frame, task)
        return alt.Chart(counts, title="Class balance (residues)").mark_bar().encode(
            y=alt.Y("label:N", title=None), x=alt.X("count:Q", title="labelled residues"),
            color=alt.Color("split:N", sort=["train", "valid", "test"]),
            tooltip=["label:N", "split:N", "count:Q"]).properties(height=alt.Step(36))
    if task == Task.RESIDUE_REGRESSION:
        counts = residue_label_counts(frame, task)
        return alt.Chart(counts, title="Per-residue values").mark_bar().encode(
            x=alt.X("bin:Q", title="value"), y=alt.Y("count:Q", title="labelled residues",
                                                    stack=True),
            color=alt.Color("split:N", sort=["train", "valid", "test"])).properties(height=220)
    data = frame[["label", "split"]].copy()
    if task.label_kind == Task.REGRESSION:
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
    ).properties(height=alt.Step(36))  # discrete axis: size per class, not in total


def curves_frame(history: pd.DataFrame, quantity: str) -> pd.DataFrame:
    """Long format (trial, epoch, split, value) of train/validation ``loss`` or ``mae``."""
    if history.empty:
        return pd.DataFrame(columns=["trial", "epoch", "split", quantity])
    long = history.melt(id_vars=["trial", "epoch"], value_vars=[f"train_{quantity}",
                                                               f"val_{quantity}"],
                        var_name="split", value_name=quantity)
    long["split"] = long["split"].str.split("_").str[0].replace({"val": "validation"})
    return long.dropna()


def make_curves_chart(history: pd.DataFrame, quantity: str = "loss",
                      highlight: int | None = None) -> alt.Chart:
    """Train (dashed) and validation (solid) curves per epoch, one colour per trial; the
    highlighted trial (the running one) is drawn on top, the others faded."""
    data = curves_frame(history, quantity)
    data["current"] = data["trial"] == highlight if highlight is not None else True
    title = {"loss": "Loss per epoch", "mae": "Mean absolute error per epoch"}[quantity]
    return alt.Chart(data, title=title).mark_line(point=True).encode(
        x=alt.X("epoch:Q", title="epoch", axis=alt.Axis(tickMinStep=1, format="d")),
        y=alt.Y(f"{quantity}:Q", title=quantity.upper() if quantity == "mae" else quantity,
                scale=alt.Scale(zero=False)),
        color=alt.Color("trial:N", legend=alt.Legend(columns=2, symbolLimit=30)),
        strokeDash=alt.StrokeDash("split:N", sort=["validation", "train"]),
        opacity=alt.condition("datum.current", alt.value(1.0), alt.value(0.25)),
        detail="split:N",
        tooltip=["trial:N", "epoch:Q", "split:N", alt.Tooltip(f"{quantity}:Q", format=".4f")],
    ).properties(height=260)


def make_best_so_far_chart(trials: pd.DataFrame, direction: str, metric: str) -> alt.Chart:
    done = trials[trials["state"] == "COMPLETE"].sort_values("number")[["number", "value"]]
    done = done.dropna()
    best = done["value"].cummax() if direction == "maximize" else done["value"].cummin()
    data = done.assign(best=best.to_numpy())
    base = alt.Chart(data, title=f"Best validation {metric_name(metric)} so far")
    points = base.mark_circle(opacity=0.5).encode(
        x=alt.X("number:Q", title="trial", axis=alt.Axis(tickMinStep=1, format="d")),
        y=alt.Y("value:Q", title=metric_name(metric),
                                                   scale=alt.Scale(zero=False)),
        tooltip=["number:Q", alt.Tooltip("value:Q", format=".4f")])
    line = base.mark_line(interpolate="step-after", color="#2e7d6b").encode(
        x="number:Q", y="best:Q")
    return (points + line).properties(height=220)


def make_pareto_chart(trials: pd.DataFrame, metric: str, front: list[int]) -> alt.Chart:
    data = trials[trials["state"] == "COMPLETE"][["number", "value", "n_parameters",
                                                   "description"]].copy()
    data["on_front"] = data["number"].isin(front)
    return alt.Chart(data, title=f"{metric} against model size").mark_point(filled=True).encode(
        x=alt.X("n_parameters:Q", title="parameters", scale=alt.Scale(type="log")),
        y=alt.Y("value:Q", title=metric_name(metric), scale=alt.Scale(zero=False)),
        color=alt.Color("on_front:N", title="Pareto front"),
        size=alt.condition("datum.on_front", alt.value(90), alt.value(40)),
        tooltip=["number:Q", "n_parameters:Q", alt.Tooltip("value:Q", format=".4f"),
                 "description:N"],
    ).properties(height=260)


def make_importance_chart(frame: pd.DataFrame) -> alt.Chart:
    return alt.Chart(frame, title="Which choices mattered").mark_bar().encode(
        x=alt.X("importance:Q"), y=alt.Y("parameter:N", sort="-x", title=None),
        tooltip=["parameter:N", alt.Tooltip("importance:Q", format=".3f")],
    ).properties(height=max(80, 22 * len(frame)))


def make_confusion_chart(frame: pd.DataFrame, labels: list[str]) -> alt.Chart:
    """``frame`` has columns ``label`` (measured) and ``prediction``."""
    counts = frame.groupby(["label", "prediction"]).size().reset_index(name="count")
    base = alt.Chart(counts, title="Held-out test: confusion matrix").encode(
        x=alt.X("prediction:N", sort=labels, title="predicted"),
        y=alt.Y("label:N", sort=labels, title="measured"))
    cells = base.mark_rect().encode(color=alt.Color("count:Q", scale=alt.Scale(
        scheme="greens")), tooltip=["label:N", "prediction:N", "count:Q"])
    text = base.mark_text(fontSize=14).encode(text="count:Q")
    return (cells + text).properties(height=alt.Step(70))


def make_scatter_chart(frame: pd.DataFrame) -> alt.Chart:
    """Predicted against measured (regression), with the identity line."""
    lo = float(min(frame["label"].min(), frame["prediction"].min()))
    hi = float(max(frame["label"].max(), frame["prediction"].max()))
    points = alt.Chart(frame, title="Held-out test: predicted vs measured").mark_circle(
        opacity=0.6).encode(
        x=alt.X("label:Q", title="measured", scale=alt.Scale(domain=[lo, hi])),
        y=alt.Y("prediction:Q", title="predicted", scale=alt.Scale(domain=[lo, hi])),
        tooltip=["label:Q", "prediction:Q"])
    diagonal = alt.Chart(pd.DataFrame({"x": [lo, hi], "y": [lo, hi]})).mark_line(
        strokeDash=[4, 4], color="gray").encode(x="x:Q", y="y:Q")
    return (points + diagonal).properties(height=300)


def make_track_chart(rows: pd.DataFrame, task: Task, labels: list[str] | None = None
                     ) -> alt.Chart:
    """Measured against predicted along the sequence of one or a few proteins (the long
    per-residue table: ``id``, ``position``, ``prediction``, optionally ``label``), one panel
    per protein: classes as coloured tracks, values as two lines."""
    keep = ["id", "position", "residue", "prediction"] + (["label"] if "label" in rows else [])
    long = rows[keep].melt(id_vars=["id", "position", "residue"], var_name="track",
                           value_name="value")
    long["track"] = long["track"].map({"label": "measured", "prediction": "predicted"})
    if task == Task.RESIDUE_REGRESSION:
        chart = alt.Chart(long).mark_line(point=False).encode(
            x=alt.X("position:Q", title="residue"), y=alt.Y("value:Q", title="value"),
            color=alt.Color("track:N", sort=["measured", "predicted"], title=None),
            tooltip=["position:Q", "residue:N", "track:N", "value:Q"])
    else:
        long = long.dropna(subset=["value"])
        long["end"] = long["position"] + 1
        chart = alt.Chart(long).mark_rect().encode(
            x=alt.X("position:Q", title="residue"), x2="end:Q",
            y=alt.Y("track:N", sort=["measured", "predicted"], title=None),
            color=alt.Color("value:N", sort=labels, title="class"),
            tooltip=["position:Q", "residue:N", "track:N", "value:N"])
    return chart.properties(height=60 if task != Task.RESIDUE_REGRESSION else 140,
                            width=640).facet(
        row=alt.Row("id:N", title=None), title="Measured and predicted along the sequence")


def make_reliability_chart(calibration: Calibration) -> alt.Chart:
    """Reliability diagram: accuracy against confidence per bin, before and after temperature
    scaling, with the diagonal of perfect calibration."""
    rows = [{**r.to_dict(), "probabilities": when}
            for when, bins in (("as trained", calibration.reliability_before),
                               ("calibrated", calibration.reliability_after)) for r in bins]
    points = alt.Chart(pd.DataFrame(rows), title="Held-out test: reliability").mark_line(
        point=True).encode(
        x=alt.X("confidence:Q", title="confidence (top probability)",
                scale=alt.Scale(domain=[0, 1])),
        y=alt.Y("accuracy:Q", title="share right", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("probabilities:N", title=None, sort=["as trained", "calibrated"]),
        tooltip=["probabilities:N", "confidence:Q", "accuracy:Q", "count:Q"])
    diagonal = alt.Chart(pd.DataFrame({"x": [0, 1], "y": [0, 1]})).mark_line(
        strokeDash=[4, 4], color="gray").encode(x="x:Q", y="y:Q")
    return (diagonal + points).properties(height=260)


def make_identity_histogram(leakage: Leakage) -> alt.Chart:
    """Test sequences by identity to their nearest training sequence."""
    frame = pd.DataFrame([h.to_dict() for h in leakage.histogram])
    frame["identity"] = [f"{a:.1f}-{b:.1f}" for a, b in zip(frame["from"], frame["to"])]
    return alt.Chart(frame, title="Test sequences: identity to the nearest training sequence"
                     ).mark_bar().encode(
        x=alt.X("identity:N", sort=None, title="identity (MMseqs2)"),
        y=alt.Y("count:Q", title="test sequences"),
        color=alt.condition(alt.datum["from"] >= 0.9, alt.value("#c0392b"),
                            alt.value("#2e7d6b")),
        tooltip=["identity", "count"]).properties(height=220)


def make_darts_chart(history: pd.DataFrame) -> alt.Chart:
    """Architecture weights of the one-shot super-network over its training epochs."""
    return alt.Chart(history).mark_line(point=False).encode(
        x=alt.X("epoch:Q", title="super-network epoch", axis=alt.Axis(tickMinStep=1, format="d")),
        y=alt.Y("weight:Q", title="architecture weight", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("choice:N", title="choice"),
        tooltip=["group", "choice", "epoch", alt.Tooltip("weight:Q", format=".3f")],
    ).properties(width=220, height=200).facet(column=alt.Column("group:N", title=None)
                                              ).resolve_scale(color="independent")


def make_compression_chart(points: pd.DataFrame, y: str, x: str = "parameters") -> alt.Chart:
    """Accuracy against size (or speed) of the compressed variants, the depth-only cuts and
    the uncompressed model, one line per kind."""
    scale = alt.Scale(zero=False)
    base = alt.Chart(points).encode(
        x=alt.X(f"{x}:Q", title=x, scale=scale),
        y=alt.Y(f"{y}:Q", title=y, scale=scale),
        color=alt.Color("model:N", title=None, legend=alt.Legend(orient="bottom")),
        tooltip=["model", "parameters", "share", y, "sequences/s", "speed-up"])
    return (base.mark_line(point=True) + base.mark_point(size=90, filled=True)).properties(
        height=280)


def make_perplexity_chart(history: pd.DataFrame) -> alt.Chart:
    """A pretraining run's curve: held-out perplexity (every selected residue masked) and the
    training loss as perplexity, against tokens seen, beside amino-acid frequencies alone."""
    series = {"val_perplexity": "held-out proteins",
              "val_unigram_perplexity": "amino-acid frequencies alone"}
    frame = history[["tokens", *series]].rename(columns=series)
    if "train_loss" in history:
        frame["training crops"] = np.exp(history["train_loss"].astype(float))
    long = frame.melt(id_vars=["tokens"], var_name="measured on", value_name="perplexity")
    return alt.Chart(long.dropna(), title="Perplexity of masked residues").mark_line(
        point=True).encode(
        x=alt.X("tokens:Q", title="tokens seen"),
        y=alt.Y("perplexity:Q", scale=alt.Scale(zero=False)),
        color=alt.Color("measured on:N", sort=[*series.values(), "training crops"]),
        tooltip=["tokens:Q", "measured on:N", alt.Tooltip("perplexity:Q", format=".3f")])
