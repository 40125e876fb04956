"""The model card (README.md of the exported repository): Hub metadata + the evidence.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import pandas as pd
import yaml

from nas_core.backbones.registry import REGISTRY, resolve
from nas_core.common.metric_names import METRIC_NAMES, mae_meaning
from nas_core.common.report import BestModel, Report
from nas_core.common.tasks import Task
from nas_core.common.text import md_text
from nas_core.data.pair_splits import EXPLANATION as PAIR_SPLIT_EXPLANATION
from nas_core.data.pair_splits import WORDS as PAIR_SPLIT_WORDS
from nas_core.modeling.architecture import Architecture
from nas_core.modeling.pruning import Compaction
from nas_core.publishing.charts import make_curves_chart, make_identity_histogram

logger = logging.getLogger(__name__)
CURVES_IMAGE = "training_curves.png"
IDENTITY_IMAGE = "test_identity.png"
CARD_REPORT = "esm_nas_report.json"  # the report a card was written from, published with it


def base_model(backbone: str) -> str | None:
    """The public checkpoint the model was cut from; None for local or demo backbones."""
    if backbone in REGISTRY:
        return REGISTRY[backbone].source
    return backbone if any(s.source == backbone for s in REGISTRY.values()) else None


_TASK_NAMES = {Task.REGRESSION: "Protein property regression",
               Task.RESIDUE_CLASSIFICATION: "Per-residue classification",
               Task.RESIDUE_REGRESSION: "Per-residue regression",
               Task.PAIR_BINARY: "Protein-protein interaction classification",
               Task.PAIR_MULTICLASS: "Protein pair classification",
               Task.PAIR_REGRESSION: "Protein pair regression (affinity)"}


def card_metadata(report: Report, *, license: str = "", model_name: str = "model") -> dict:
    """The card's YAML header; no ``license`` key unless the publisher chose one."""
    best = report.best
    task = report.task
    meta: dict = {
        **({"license": license} if license else {}),
        "library_name": "transformers",
        "pipeline_tag": "token-classification" if task.per_residue else "text-classification",
        "tags": ["protein", "esm2", "esm", "biology", "neural-architecture-search",
                 "esm-nas-studio", "regression" if task.is_regression else "classification",
                 *(["per-residue"] if task.per_residue else [])],
    }
    source = base_model(best.backbone)
    if source:
        meta["base_model"] = source
    metrics = [{"type": key, "name": f"Held-out test {METRIC_NAMES.get(key, key)}",
                "value": round(float(value), 4)}
               for key, value in best.test.items() if value is not None and key != "loss"]
    meta["model-index"] = [{
        "name": model_name,
        "results": [{
            "task": {"type": meta["pipeline_tag"],
                     "name": _TASK_NAMES.get(task, "Protein sequence classification")},
            "dataset": {"name": report.dataset.name, "type": "custom",
                        "split": "held-out test"},
            "metrics": metrics,
        }],
    }]
    return meta


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _ci(report: Report, key: str) -> str:
    return _interval((report.best.test_ci or {}).get(key))


def _interval(ci) -> str:
    return f"{ci[0]:.3f} – {ci[1]:.3f}" if ci else "n/a"


def comparison_sentence(report: Report) -> str:
    """One sentence: is the best model better than the reference by more than the noise?"""
    cmp = report.vs_reference
    metric = cmp.metric if cmp else report.metric
    name = METRIC_NAMES.get(metric, metric)
    if cmp is None or cmp.difference is None:
        return f"The difference from the reference model in {name} could not be estimated."
    text = (f"Against the reference model the {name} differs by {cmp.difference:+.3f} "
            f"(paired bootstrap 95% CI {_interval(cmp.ci)}): ")
    return text + {"better": "better by more than the noise.",
                   "worse": "worse by more than the noise.",
                   "within noise": "within the noise of a test set this size."}[cmp.verdict]


def leakage_section(report: Report, *, image: bool = True) -> list[str]:
    """The identity of test sequences to their nearest training sequence, and the test metric
    in each identity bin."""
    leak = report.leakage
    if not leak:
        return []
    metric = METRIC_NAMES.get(report.metric, report.metric)
    lines = ["## How new are the test proteins?", "",
             f"Identity of each of the {leak.n} test sequences to its nearest training "
             f"sequence (MMseqs2; median {_fmt(leak.median)}):", "",
             "| identity | test sequences | " + metric + " | 95% CI |", "|---|---|---|---|"]
    for row in report.by_identity:
        lines.append(f"| {row.bin} | {row.n} | {_fmt(row.value)} | {_interval(row.ci)} |")
    if image:
        lines += ["", f"![Test sequences by identity to the nearest training sequence]"
                  f"({IDENTITY_IMAGE})"]
    lines.append("")
    lines.append("Histogram (identity: sequences): " + ", ".join(
        f"{h.start:.1f}–{h.end:.1f}: {h.count}" for h in leak.histogram) + ".")
    if leak.warning:
        lines += ["", f"**Warning:** {md_text(leak.warning)}"]
    return lines + [""]


def render_card(report: Report, *, repo_id: str = "your-name/your-model", license: str = "",
                has_curves: bool = True, identity_image: bool = True) -> str:
    meta = card_metadata(report, license=license, model_name=repo_id.split("/")[-1])
    lines = ["---", yaml.safe_dump(meta, sort_keys=False).strip(), "---", "",
             f"# {md_text(repo_id.split('/')[-1])}", ""]
    if report.verdict is not None:  # the first thing a reader sees
        lines += [f"> **Before you use this model:** {md_text(report.verdict.markdown())}", ""]
    lines += _summary_section(report)
    lines += (ensemble_sections(report) if report.is_ensemble_card
              else _search_sections(report, has_curves))
    lines += _test_section(report)
    lines += calibration_section(report)
    lines += [""] + leakage_section(report, image=identity_image)
    lines += _limitations_section(report)
    lines += _usage_section(report.task, repo_id, report.is_ensemble_card)
    lines += ["## Licence", "", f"Published under `{license}`." if license else
              "No licence was chosen when this model was published: all rights are reserved "
              "by its authors until they choose one. Ask them before reusing it.", ""]
    return "\n".join(lines)


def _summary_section(report: Report) -> list[str]:
    """What the model predicts, and the data it learnt from."""
    data, task = report.dataset.summary, report.task
    lab = data.label
    if task == Task.RESIDUE_CLASSIFICATION:
        classes = ", ".join(f"{md_text(k)} ({v:,} residues)"
                            for k, v in (data.classes or {}).items())
        what = (f"A **per-residue** model: predicts a class for every residue of a protein "
                f"sequence. Classes (one character each, as in the training label strings): "
                f"{classes}. Metrics are pooled over all labelled residues of the held-out "
                "proteins, except 'per protein' ones (averaged over proteins); intervals "
                "resample proteins, not residues.")
    elif task == Task.RESIDUE_REGRESSION and lab:
        what = (f"A **per-residue** model: predicts a value for every residue of a protein "
                f"sequence (the labels ranged from {lab.min:.3g} to {lab.max:.3g}, mean "
                f"{lab.mean:.3g}). Metrics are pooled over all labelled residues of the "
                "held-out proteins, except 'per protein' ones; intervals resample proteins.")
    elif task.per_pair:
        measured = (f"a measured value (regression; the label ranged from {lab.min:.3g} to "
                    f"{lab.max:.3g}, mean {lab.mean:.3g})" if task.is_regression and lab else
                    "a class: " + ", ".join(f"{md_text(k)} ({v} pairs)"
                                            for k, v in (data.classes or {}).items()))
        what = (f"A **pair** model: predicts, for two proteins, {measured}, from their "
                "amino-acid sequences. Intervals resample proteins, not pairs: pairs that "
                "share a protein are not independent.")
    elif task.label_kind == Task.REGRESSION and lab:
        what = (f"Predicts a measured protein property (regression; the label ranged from "
                f"{lab.min:.3g} to {lab.max:.3g}, mean {lab.mean:.3g}) from the "
                "amino-acid sequence.")
    else:
        classes = ", ".join(f"{md_text(k)} ({v})" for k, v in (data.classes or {}).items())
        what = f"Classifies protein sequences ({task}) into: {classes}."
    counted = (f"{data.n_sequences} pairs of {data.n_proteins} proteins"
               if data.n_proteins is not None else f"{data.n_sequences} sequences")
    split = ", ".join(f"{k} {v}" for k, v in (data.splits or {}).items())
    if data.pair_split:
        split = (f"**{PAIR_SPLIT_WORDS.get(data.pair_split, data.pair_split)}**: {split}. "
                 f"{PAIR_SPLIT_EXPLANATION.get(data.pair_split, '')} The test split was used "
                 "once, after the search.")
    else:
        split += (". Identical sequences never cross splits; the test split was used once, "
                  "after the search.")
    return [what, "", "Found by ESM-NAS Studio with a neural architecture "
            "search over ESM-2 protein language model variants.", "",
            "## Data", "",
            f"- {counted} of {data.length.min:g}–"
            f"{data.length.max:g} residues (median {data.length.median:g}); "
            f"dataset {md_text(report.dataset.name)}, fingerprint "
            f"`{report.dataset.fingerprint[:16]}`.",
            "- Split: " + split,
            "- No raw sequences are included in this card.", *lineage_lines(report), ""]


def lineage_lines(report: Report) -> list[str]:
    """Where a later round of a design loop comes from."""
    lineage = report.lineage
    if not lineage:
        return []
    added = lineage.added_sequences
    return [f"- Lineage: this round's dataset extends "
            f"{md_text(lineage.parent_dataset_name or 'an earlier dataset')} (fingerprint "
            f"`{str(lineage.parent_dataset_fingerprint or '?')[:16]}`)"
            + (f" with {added} newly measured sequences" if added else "")
            + f"; the search continued study {md_text(lineage.parent_study)}, starting "
            f"from its {len(lineage.warm_start_trials)} best architectures."]


def _search_sections(report: Report, has_curves: bool) -> list[str]:
    """The architecture found and how the search found it."""
    best = report.best
    arch = Architecture.from_dict(best.architecture)
    lines = ["## Architecture", "", f"{md_text(best.description)}.", "",
             f"{best.n_parameters:,} parameters"
             + (" (adapters merged into the weights)." if arch.adaptation in ("lora", "dora",
                                                                            "ia3")
                else "."), "", *compaction_lines(best),
             "## Search", "",
             f"- Sampler `{report.sampler}`, pruner `{report.pruner}`, "
             f"objective `{report.objective}` (validation {report.metric}).",
             f"- {report.n_trials} trials: {report.n_complete} complete, "
             f"{report.n_pruned} pruned, {report.n_failed} failed; "
             f"{report.wall_or_trial_seconds:.0f} s wall time.",
             f"- Best trial {best.trial} (epoch {best.best_epoch}).", ""]
    if report.budget_note:
        lines += [f"**{md_text(report.budget_note)}**", ""]
    if has_curves:
        lines += [f"![Training and validation curves of the best trial]({CURVES_IMAGE})", ""]
    return lines


def compaction_lines(best: BestModel) -> list[str]:
    """How a compacted model was made smaller: what each layer keeps, the sizes and speeds
    before and after, and how it was distilled."""
    if not best.compaction:
        return []
    compaction = Compaction.from_dict(best.compaction)
    assert compaction is not None
    heads, ffn = compaction.heads, compaction.ffn
    per_layer = "\n".join(f"| {i + 1} | {h} of {compaction.heads_before} | {f:,} of "
                          f"{compaction.ffn_before:,} |" for i, (h, f) in
                          enumerate(zip(heads, ffn)))
    lines = ["### Compaction", "",
             "This model is a compacted ESM-2: the least important attention heads and "
             "feed-forward neurons of the trained model (importance "
             f"`{compaction.method}` on the training data) were removed "
             "physically, and the smaller model was trained to reproduce the unpruned "
             "model's outputs (knowledge distillation: soft targets at a temperature, the "
             "pooled embedding and the task loss).", "",
             "| layer | attention heads kept | feed-forward width kept |", "|---|---|---|",
             per_layer, ""]
    before = best.teacher_n_parameters
    if before:
        lines.append(f"- Parameters: {before:,} before, {best.n_parameters:,} after "
                     f"({best.n_parameters / before:.0%}).")
    speed = best.throughput
    if speed and speed.teacher and speed.model:
        lines.append(f"- Inference throughput on {speed.device or 'this machine'}: "
                     f"{speed.teacher:.1f} sequences/s before, {speed.model:.1f} after "
                     f"({speed.model / speed.teacher:.2f}x), same sequences and batches.")
    teacher = best.teacher_val
    if teacher:
        lines.append("- Validation before compaction: " + ", ".join(
            f"{METRIC_NAMES.get(k, k)} {_fmt(v)}" for k, v in teacher.items()
            if k != "loss" and v is not None) + ".")
    uses_remote = any(h != compaction.heads_before for h in heads) or len(set(ffn)) > 1
    lines += ["- " + ("Per-layer head counts are not expressible in a plain ESM config: load "
                      "it with `trust_remote_code=True` (the bundled `modeling_esm_nas.py` "
                      "and `esm_nas_shapes.py` rebuild the layers)." if uses_remote else
                      "Every layer keeps all heads and the same width: `config.json`'s "
                      "`intermediate_size` says it."), ""]
    return lines


def calibration_section(report: Report) -> list[str]:
    """How trustworthy the probabilities are, before and after temperature scaling."""
    cal = report.calibration
    if not cal:
        return []
    return ["## Calibrated probabilities", "",
            f"The model's logits are divided by a temperature of {cal.temperature:.3g}, "
            "fitted on the validation split (temperature scaling): the predicted class never "
            "changes, only how sure the model says it is. Expected calibration error on the "
            f"held-out test{' residues' if report.task.per_residue else ''}: "
            f"{_fmt(cal.ece_before)} before, **{_fmt(cal.ece_after)} after** (0 means a "
            "probability of 0.8 is right 80% of the time).", "",
            "Calibrated probabilities come out of the model as it is: the bundled model class "
            "divides the logits by `config.esm_nas[\"temperature\"]`, and where plain "
            "`transformers` classes load the model the temperature is already folded into the "
            "classifier's weights. `logits.softmax(-1)` is calibrated either way.", ""]


def _test_section(report: Report) -> list[str]:
    """Held-out test metrics with intervals, beside the reference model."""
    lines = ["## Held-out test results", "",
             "| metric | best architecture | 95% CI (bootstrap) | reference model | "
             "reference 95% CI |", "|---|---|---|---|---|"]
    base = report.baseline.test or {}
    base_ci = report.baseline.test_ci or {}
    for key, value in report.best.test.items():
        if value is None:
            continue
        lines.append(f"| {METRIC_NAMES.get(key, key)} | {_fmt(value)} | {_ci(report, key)} | "
                     f"{_fmt(base.get(key))} | {_interval(base_ci.get(key))} |")
    lines += ["", f"Reference model: {md_text(report.baseline.model)}, fitted on the same "
              "splits.", "", mae_meaning(report.task)]
    if report.vs_reference:
        lines += ["", comparison_sentence(report)]
    return lines


def _limitations_section(report: Report) -> list[str]:
    n = report.dataset.summary.n_sequences
    use = ("- Research use: ranking or triaging sequences similar to the training data "
           "before experiments. Not a substitute for measurement.")
    if report.verdict is not None:  # a model that should not be used as it is says so first
        use = (f"- **Not recommended for use as it is.** {md_text(report.verdict.markdown())}")
    lines = ["## Intended use and limitations", "", use,
             "- Scores hold for sequences like those in the data; predictions for proteins "
             "unrelated to any training sequence are less reliable (the table above shows "
             "how the score falls with identity to the training set). Predictions made with "
             "ESM-NAS Studio flag such sequences when the training sequences are available.",
             f"- Trained on {n} sequences; the confidence intervals above "
             "show how much the test score could move with another sample.", ""]
    if report.best.backbone_untrained:
        lines += ["- **This model was built on an untrained demo backbone** (random "
                  "weights): it demonstrates the pipeline, not ESM-2's knowledge.", ""]
    return lines


def ensemble_sections(report: Report) -> list[str]:
    """What the ensemble is made of and how it was chosen."""
    ens = report.ensemble
    assert ens is not None
    members = ens.members
    metric = METRIC_NAMES.get(report.metric, report.metric)
    lines = ["## Architecture: an ensemble", "",
             f"An ensemble of {len(members)} architectures found by the search: the best "
             "trials by validation score, different architectures preferred over near-copies "
             "of one. Each member's probabilities were calibrated on the validation split "
             "(its own temperature); the ensemble averages them (for regression, the "
             "values). The members' **spread** (standard deviation) is the ensemble's "
             "uncertainty.", ""]
    if ens.temperature is not None:
        lines += [f"Averaging members that disagree makes the mean less sure than it should "
                  f"be, so the averaged probabilities have their own temperature, T = "
                  f"{ens.temperature:.2f}, fitted on the validation split "
                  f"(the logits are log(mean) / T). Expected calibration error on the held-out "
                  f"test: {_fmt(ens.ece_averaged)} for the plain average, "
                  f"{_fmt(ens.ece)} with it.", ""]
    lines += [f"| trial | architecture | validation {metric} | parameters |",
              "|---|---|---|---|"]
    for m in members:
        lines.append(f"| {m.trial} | {md_text(m.description)} | {_fmt(m.val)} | "
                     f"{m.n_parameters:,} |")
    lines += ["", f"{report.best.n_parameters:,} parameters in all.", ""]
    if ens.vs_best:
        vs = ens.vs_best
        lines += [f"Against the single best architecture on the same test sequences: "
                  f"{metric} difference {_fmt(vs.difference)} (95% CI "
                  f"{_interval(vs.ci)}): **{vs.verdict}**.", ""]
    return lines


def _usage_section(task: Task, repo_id: str, ensemble: bool = False) -> list[str]:
    auto = ("AutoModelForTokenClassification" if task.per_residue
            else "AutoModelForSequenceClassification")
    batch = ('batch = tokenizer(["MKTAYIAKQRQISFVKSHFSRQ"], return_tensors="pt", padding=True)'
             if not task.per_pair else
             'batch = model.pair_inputs(tokenizer, ["MKTAYIAKQRQISFVKSHFSRQ"], '
             '["MSEALKILNNIRTLRAQARE"])  # pair i: first[i] with second[i]')
    lines = ["## How to use", "", "```python", "import torch",
             f"from transformers import {auto}, AutoTokenizer", "",
             f"repo = {json.dumps(repo_id)}",  # escaped: the name may come from a user
             "tokenizer = AutoTokenizer.from_pretrained(repo)",
             f"model = {auto}.from_pretrained(repo, trust_remote_code=True).eval()",
             batch, "with torch.no_grad():", "    logits = model(**batch).logits"]
    if task.per_residue:  # token 0 is <cls>: residue i is token i + 1
        lines += ["residues = logits[0, 1:-1]  # one row per residue of the first sequence"]
    lines += (["values = logits.squeeze(-1)  # in the label's units"] if task.is_regression
              else ["probabilities = logits.softmax(-1)  # columns: model.config.id2label"])
    if ensemble:
        lines += ["spread = model(**batch).spread  # the members' disagreement: uncertainty"]
    return lines + ["```", ""]


def write_model_card(model_dir: str | Path, report: Report, *, repo_id: str | None = None,
                     license: str = "") -> Path:
    """Write README.md (and the curves image) into the exported model directory, with the
    report it was written from (``esm_nas_report.json``, nothing local to this machine)."""
    model_dir = Path(model_dir)
    history = pd.DataFrame(report.best.history)
    has_curves = identity_image = False
    if not history.empty:
        history["trial"] = report.best.trial
        has_curves = _save_png(make_curves_chart(history, "loss").properties(width=520),
                               model_dir / CURVES_IMAGE)
    if report.leakage:
        identity_image = _save_png(make_identity_histogram(report.leakage).properties(
            width=520), model_dir / IDENTITY_IMAGE)
    card = render_card(report, repo_id=repo_id or f"your-name/{report.study}",
                       license=license, has_curves=has_curves, identity_image=identity_image)
    path = model_dir / "README.md"
    path.write_text(card)
    public_report(report).write(model_dir / CARD_REPORT)
    return path


def _save_png(chart, path: Path) -> bool:
    """Draw ``chart`` as a PNG beside the card; a chart that cannot be drawn (no PNG engine,
    vl-convert failing on this machine) leaves the card without that image, never a finished
    search without its model."""
    try:
        chart.save(str(path), scale_factor=2)
    except (ValueError, RuntimeError, OSError) as exc:
        if isinstance(exc, OSError) and exc.errno is not None:
            raise  # a full or read-only disk is the caller's to report
        logger.warning("model card: %s not drawn (%s)", path.name, exc)
        return False
    return True


def public_report(report: Report) -> Report:
    """The report without anything local to this machine (paths, the storage URL; a local
    backbone folder named as the checkpoint it stands for)."""
    public = report.public()
    backbone = public.best.backbone
    if backbone not in REGISTRY and "/" in backbone:
        spec = resolve(backbone)
        arch = {**public.best.architecture,
                "backbone": spec.source if spec.name in REGISTRY else spec.name}
        public = replace(public, best=replace(public.best, architecture=arch))
    return public
