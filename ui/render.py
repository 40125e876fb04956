"""Render helpers: domain objects in, ``st.*`` calls out."""

from __future__ import annotations

from typing import Literal

import pandas as pd
import streamlit as st

from nas_core.common.metric_names import mae_meaning, metric_name
from nas_core.common.report import Calibration, Comparison, Report, Verdict
from nas_core.common.tasks import Task
from nas_core.common.text import md_text
from nas_core.data.dataset import Dataset, grouped_messages
from nas_core.data.pair_splits import EXPLANATION as PAIR_SPLIT_EXPLANATION
from nas_core.data.pair_splits import WORDS as PAIR_SPLIT_WORDS
from nas_core.data.store import StoredDataset
from nas_core.data.validation import ValidationResult
from nas_core.evaluation.trust import leakage_report
from nas_core.publishing import charts
from nas_core.publishing.card import comparison_sentence
from nas_core.publishing.charts import (
    make_identity_histogram,
    make_label_chart,
    make_length_histogram,
)
from nas_core.views.results import ensemble_members, identity_table


def problems(result: ValidationResult, *, key: str) -> str | None:
    """Show errors, warnings and one-click fixes; return the fix the user clicked, if any."""
    for note in result.applied_fixes:
        st.success(f"Fixed: {md_text(note)}")
    errors = result.errors
    if errors:
        st.error(f"{len(errors)} problem(s) must be fixed before this dataset can be used "
                 f"({md_text(result.source)}, {result.n_rows_read} rows read).")
        lines = grouped_messages(errors)  # the same problem on many rows: one line
        st.markdown("\n".join(f"- {md_text(line)}" for line in lines[:50]))
        if len(lines) > 50:
            st.caption(f"... and {len(lines) - 50} more: download them all to fix the file.")
        if len(errors) > 50:
            st.download_button(f"Download all {len(errors)} problems (CSV)",
                               pd.DataFrame([{"where": ", ".join(p.where), "problem": p.message}
                                             for p in errors]).to_csv(index=False),
                               file_name="problems.csv", mime="text/csv",
                               key=f"{key}-problems-csv")
    clicked = None
    for fix, text in result.offered_fixes.items():
        if st.button(md_text(text), key=f"{key}-fix-{fix}", type="primary"):
            clicked = fix
    for p in result.warnings:
        st.warning(md_text(p.message))
    return clicked


def dataset_overview(dataset: Dataset, notes: list) -> None:
    summary = dataset.summary()
    cols = st.columns(4)
    if summary.n_proteins is not None:
        cols[0].metric("Pairs", f"{summary.n_sequences:,}",
                       help=f"{summary.n_proteins:,} distinct proteins")
    else:
        cols[0].metric("Sequences", summary.n_sequences)
    task = summary.task
    if task.per_residue:  # the long words would not fit the column
        cols[1].metric("Task, per residue", "values" if task.is_regression else "classes",
                       help=task.words)
    elif task.per_pair:
        cols[1].metric("Task, per pair", task.label_kind, help=task.words)
    else:
        cols[1].metric("Task", task, help=task.words)
    length = summary.length
    cols[2].metric("Length", f"{length.min:g}–{length.max:g}")
    splits = summary.splits or {}
    cols[3].metric("Train / valid / test",
                   f"{splits.get('train', 0)} / {splits.get('valid', 0)} / "
                   f"{splits.get('test', 0)}")
    for note in notes:
        (st.warning if note.severity == "warning" else st.info)(md_text(note.message))
    if summary.n_labelled_residues is not None:
        st.caption(f"One label per residue: {summary.n_labelled_residues:,} labelled "
                   "residues (residues marked '-', 'nan' or masked are ignored). Proteins stay "
                   "whole: each lies in one split.")
    if summary.classes is not None:
        total = sum(summary.classes.values())
        unit = " residues" if task.per_residue else ""
        st.caption("Classes: " + ", ".join(
            f"**{md_text(k)}** {v:,}{unit} ({100 * v / total:.0f}%)"
            for k, v in summary.classes.items()))
    elif summary.label is not None:
        lab = summary.label
        st.caption(f"Label from {lab.min:.4g} to {lab.max:.4g}, mean {lab.mean:.4g}")
    left, right = st.columns(2)
    left.altair_chart(make_length_histogram(dataset.frame), width="stretch")
    right.altair_chart(make_label_chart(dataset.frame, dataset.task), width="stretch")
    if summary.pair_split:
        st.caption(f"Proteins: {summary.n_proteins:,}, lengths counted once each. Split: "
                   f"**{PAIR_SPLIT_WORDS[summary.pair_split]}**. "
                   f"{PAIR_SPLIT_EXPLANATION[summary.pair_split]}")
    test = dataset.part("test")
    if "nearest_train_identity" in test and test["nearest_train_identity"].notna().any():
        columns = ["nearest_train_identity"] + (["nearest_train_identity_2"] if dataset.pairs
                                                 else [])  # a pair: its closer partner
        st.altair_chart(make_identity_histogram(leakage_report(
            test[columns].max(axis=1).to_numpy(dtype=float))), width="stretch")


def stored_datasets(records: list[StoredDataset]) -> None:
    if not records:
        st.info("No dataset stored yet: upload one or use the example above.")
        return
    table = pd.DataFrame([{
        "name": r.name, "task": r.task, "sequences": r.n_sequences,
        "classes": ", ".join(r.label_names or []) or "—", "id": r.id,
        "owner": r.owner_name or r.owner or "command line",
        "added": pd.Timestamp(r.created, unit="s").strftime("%Y-%m-%d %H:%M"),
    } for r in records])
    st.dataframe(table, hide_index=True, width="stretch")


# -- results ----------------------------------------------------------------------------------
def results(report: Report, predictions, metrics_frame) -> None:
    best = report.best
    metric = report.metric
    verdict_box(report.verdict)
    if report.budget_note:
        st.warning(md_text(report.budget_note))
    st.markdown(f"**Best architecture** (trial {best.trial}): {md_text(best.description)}.")
    test, base = best.test.get(metric), (report.baseline.test or {}).get(metric)
    delta, colour = reference_delta(report.vs_reference, test, base)
    cols = st.columns(4)
    cols[0].metric(f"Held-out test {metric_name(metric)}", _fmt(test), delta=delta,
                   delta_color=colour,
                   help="Against the reference model, with the verdict of the paired "
                   "bootstrap: green only when better by more than the noise.")
    cols[1].metric(f"Validation {metric_name(metric)}", _fmt(best.val.get(metric)))
    cols[2].metric("Parameters", f"{best.n_parameters:,}")
    cols[3].metric("Trials complete", f"{report.n_complete} / {report.n_trials}")
    st.caption(f"Reference: {md_text(report.baseline.model)} (fitted in "
               f"{report.baseline.seconds or 0:.2f} s on the same splits).")
    pair_split = report.dataset.summary.pair_split
    if pair_split:
        st.markdown(f"**Split: {PAIR_SPLIT_WORDS.get(pair_split, pair_split)}.** "
                    f"{PAIR_SPLIT_EXPLANATION.get(pair_split, '')} Intervals resample proteins, "
                    "not pairs.")
    st.dataframe(metrics_frame, hide_index=True, width="stretch")
    st.caption(mae_meaning(report.task))
    if report.vs_reference:
        st.markdown(comparison_sentence(report))
    if report.calibration:
        calibration(report.calibration)
    leakage = report.leakage
    if leakage:
        st.subheader("How new are the test proteins?")
        if leakage.warning:
            st.warning(md_text(leakage.warning))
        left, right = st.columns(2)
        left.altair_chart(charts.make_identity_histogram(leakage), width="stretch")
        right.dataframe(identity_table(report), hide_index=True, width="stretch")
        right.caption("The <30% row is the honest estimate for proteins unlike the training "
                      "set.")
    if predictions is not None:
        if report.task.per_residue:
            residue_results(report, predictions)
        else:
            _predictions_chart(report, predictions)


def verdict_box(verdict: Verdict | None) -> None:
    """The plain verdict on a model, first on the page (nothing when nothing is against it)."""
    if verdict is not None:
        st.error(md_text(verdict.sentence), icon=":material/report:")
        if verdict.advice:
            st.markdown("**What to try next:**\n" + "\n".join(
                f"- {md_text(a[:1].upper() + a[1:])}" for a in verdict.advice))


def ensemble(report: Report) -> None:
    """The ensemble of the best architectures beside the single best model and the reference.
    """
    block = report.ensemble
    if not block:
        return
    if not block.members:  # no ensemble: no section, one line saying why
        st.caption(md_text(block.note or "No ensemble."))
        return
    st.subheader("Ensemble of the best architectures")
    verdict_box(block.verdict)
    metric = report.metric
    name = metric_name(metric)
    st.markdown(f"The {len(block.members)} best trials by validation {name} (different "
                "architectures preferred over near-copies), each calibrated on the validation "
                "split, their probabilities (or values) averaged. Where they disagree, the "
                "**uncertainty** in Predict and *Test these next* is high.")
    cols = st.columns(3)
    cols[0].metric(f"Ensemble, held-out test {name}", _fmt((block.test or {}).get(metric)))
    cols[1].metric(f"Best single model, test {name}", _fmt(report.test_value()))
    cols[2].metric("Parameters, all members", f"{block.n_parameters or 0:,}")
    for label, vs in (("the best single model", block.vs_best),
                      ("the reference model", block.vs_reference)):
        if vs and vs.difference is not None and vs.ci:
            st.markdown(f"Against {label} on the same test sequences: {name} difference "
                        f"{vs.difference:+.3f} (95% CI {vs.ci[0]:+.3f} to "
                        f"{vs.ci[1]:+.3f}): **{vs.verdict}**.")
    if block.ece is not None:
        averaged = (f" ({_fmt(block.ece_averaged)} for the plain average: averaging "
                    "members that disagree makes it less sure than it should be, which the "
                    f"ensemble's own temperature, T = {block.temperature or 1:.2f} fitted on "
                    "the validation split, corrects)" if block.ece_averaged is not None
                    else "")
        st.caption(f"Expected calibration error of the ensemble's probabilities on the "
                   f"held-out test: {_fmt(block.ece)}{averaged}.")
    st.dataframe(ensemble_members(report), hide_index=True, width="stretch",
                 key="results_ensemble_members")
    if block.skipped:
        st.caption("Left out: " + "; ".join(f"trial {s.trial} ({md_text(s.reason)})"
                                            for s in block.skipped))


def suggestion(frame) -> None:
    """The ranked batch of 'Test these next', with what each column means."""
    st.dataframe(frame, hide_index=True, width="stretch", key="suggest_table",
                 column_config={"why": st.column_config.TextColumn("why", width="large")})
    st.caption("**prediction** / **p_…**: the ensemble's mean; **uncertainty**: how much its "
               "members disagree (standard deviation); **acquisition**: the rule's score; "
               "**nearest_train_identity**: identity to the most similar training sequence "
               "(pairs: of the first partner; **..._2** of the second); "
               "**identity_to_batch**: to the most similar candidate ranked above it.")


def _predictions_chart(report: Report, predictions) -> None:
    if report.task.is_regression:
        st.altair_chart(charts.make_scatter_chart(predictions), width="stretch")
    else:
        labels = report.dataset.summary.classes or {}
        st.altair_chart(charts.make_confusion_chart(predictions.astype(
            {"label": str, "prediction": str}), list(labels)), width="stretch")


def residue_results(report: Report, predictions) -> None:
    """Per residue: the confusion matrix (or predicted against measured) over the labelled
    residues of the held-out proteins, and the track plot of a few of them."""
    st.subheader("Held-out proteins, residue by residue")
    labelled = predictions.dropna(subset=["label"])
    if len(labelled) > 5000 and report.task == Task.RESIDUE_REGRESSION:
        labelled = labelled.sample(5000, random_state=0)  # a chart, not the whole table
        st.caption("5,000 residues drawn at random from the held-out proteins.")
    _predictions_chart(report, labelled)
    proteins = list(dict.fromkeys(predictions["id"].astype(str)))
    chosen = st.multiselect("Proteins to draw along the sequence", proteins,
                            default=proteins[:3], key="track_proteins")
    if chosen:
        rows = predictions[predictions["id"].astype(str).isin(chosen)]
        labels = list(report.dataset.summary.classes or {})
        st.altair_chart(charts.make_track_chart(rows, report.task, labels))


def calibration(cal: Calibration) -> None:
    """The temperature and what it did to the held-out calibration error."""
    st.subheader("Can the probabilities be trusted?")
    left, right = st.columns([1, 2])
    change = (cal.ece_after or 0.0) - (cal.ece_before or 0.0)
    left.metric("Calibration error (ECE), held-out test", _fmt(cal.ece_after),
                delta=f"{change:+.3f} from {_fmt(cal.ece_before)}",
                delta_color="inverse",
                help="Expected calibration error: how far the model's confidence is from how "
                "often it is right, averaged over confidence bins. 0 is perfect.")
    left.caption(f"Temperature {cal.temperature:.3g}, fitted on the validation split: the "
                 "predicted class never changes, only how sure the model says it is. The "
                 "exported model and its predictions use it.")
    right.altair_chart(charts.make_reliability_chart(cal), width="stretch")


def residue_track(frame, task: Task, labels: list[str] | None) -> None:
    """Predict page: the prediction along a chosen sequence."""
    ids = list(dict.fromkeys(frame["id"].astype(str)))
    chosen = st.selectbox("Draw along the sequence", ids, key="predict_track")
    rows = frame[frame["id"].astype(str) == chosen]
    st.altair_chart(charts.make_track_chart(rows, task, labels))


def reference_delta(comparison: Comparison | None, test, base
                    ) -> tuple[str | None, Literal["green", "red", "gray", "off"]]:
    """The badge beside the test score and its colour, carrying the same verdict as the
    sentence below it: green better, red worse, grey within the noise (or not estimated)."""
    if test is None or base is None:
        return None, "off"
    verdict = comparison.verdict if comparison else ""
    words = {"better": "better than reference", "worse": "worse than reference",
             "within noise": "vs reference, within noise"}.get(verdict, "vs reference")
    colour: Literal["green", "red", "gray"] = (
        "green" if verdict == "better" else "red" if verdict == "worse" else "gray")
    return f"{test - base:+.3f} {words}", colour


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def made_backbones(specs: dict) -> None:
    """The backbones pretrained here: what each learnt from and how well it predicts held-out
    proteins, beside amino-acid frequencies alone."""
    if not specs:
        st.info("None yet: the first one you teach appears here and on the Search page.")
        return
    st.dataframe(pd.DataFrame([{
        "backbone": spec.name, "started from": spec.lineage.start,
        "corpus": spec.lineage.corpus, "proteins": spec.lineage.proteins,
        "tokens seen": spec.lineage.tokens_seen,
        "held-out perplexity": round(spec.lineage.validation_perplexity, 3),
        "amino-acid frequencies": round(spec.lineage.unigram_perplexity, 3),
        "folder": path} for path, spec in specs.items()]), hide_index=True, width="stretch",
        key="made_backbones")
    st.caption("Held-out perplexity: every selected residue of proteins held out by homology "
               "masked; lower is better, and a backbone that learnt nothing scores the "
               "amino-acid frequencies' number.")
