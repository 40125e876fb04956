"""After the search: the chosen trial evaluated once on the held-out test split, beside the
reference model, with the trust report; exported with its model card; report.json written."""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from nas_core.backbones.registry import resolve
from nas_core.common.metrics import bootstrap_ci, compute_metrics
from nas_core.common.probabilities import scaled_outputs
from nas_core.data import homology
from nas_core.data.dataset import Dataset, is_regression, is_residue
from nas_core.evaluation import trust
from nas_core.evaluation.baseline import fit_baseline
from nas_core.evaluation.calibration import (
    calibration_report,
    ensemble_ece,
    fit_temperature,
    flatten,
)
from nas_core.evaluation.ensemble import DEFAULT_SIZE, choose_members, member_row
from nas_core.modeling.architecture import Architecture
from nas_core.modeling.batches import encode_split
from nas_core.modeling.build import count_parameters, load_trial_checkpoint
from nas_core.modeling.training import evaluate, resolve_device
from nas_core.publishing.card import write_model_card
from nas_core.publishing.export import export_ensemble, export_model
from nas_core.publishing.predict import combine, prediction_columns, residue_rows
from nas_core.search.budget import in_budget
from nas_core.search.config import CONFIG_ATTR, STRATEGIES
from nas_core.search.optuna_internals import storage_url
from nas_core.search.storage import fail_reasons, public_url
from nas_core.search.study import choose_trial

ENSEMBLE_DIR = "ensemble_model"


@dataclass
class Evaluated:
    """The model's outputs on the validation and test splits, with their targets."""

    metrics: dict[str, dict]
    outputs: dict[str, np.ndarray]
    targets: dict[str, np.ndarray]


def finalise(study: optuna.Study, dataset: Dataset, out_dir: str | Path, *,
             trial_number: int | None = None, device: str = "auto",
             wall_seconds: float | None = None, ensemble_size: int | None = None) -> dict:
    """Evaluate the chosen trial once on the held-out test split; export it; write report.json.

    ``ensemble_size`` (default: the search's setting, or none for a chosen trial): with 2 or
    more, also the ensemble of the best architectures, tested and exported beside the best
    model (``ensemble_model/``).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    trial = choose_trial(study, trial_number)
    torch_device = resolve_device(device)
    model, tokenizer = load_trial_checkpoint(trial_weights(study, trial))
    model.to(torch_device)
    metric = study.user_attrs["metric"]
    ev = _evaluate(model, tokenizer, dataset, torch_device)
    calibrated = _calibrate(model, dataset.task, ev)
    y, output = ev.targets["test"], ev.outputs["test"]
    identity = test_identity(dataset)
    frame = dataset.part("test")[["id", "sequence", "label"]].copy()
    frame["nearest_train_identity"] = identity
    if is_residue(dataset.task):  # one row per residue, the protein's identity on each
        predictions = residue_rows(
            [str(i) if i else f"test {n + 1}" for n, i in enumerate(frame["id"])],
            list(frame["sequence"]), dataset.task, dataset.label_names, output,
            list(frame["label"]), frame[["nearest_train_identity"]])
    else:
        predictions = prediction_columns(frame, dataset.task, dataset.label_names, output)
    n_parameters = count_parameters(model)
    uncertainty = {"level": 0.9, "threshold": trust.conformal(
        dataset.task, ev.targets["val"], ev.outputs["val"], 0.9)}
    train_sequences = list(dataset.part("train")["sequence"])
    report = build_report(study, dataset, metric)
    report["best"] = _best_block(trial, ev, n_parameters, out_dir / "best_model",
                                 is_residue(dataset.task))
    report["best"]["test_ci"] = bootstrap_ci(dataset.task, y, output)
    trusted, reference = _reference_and_trust(dataset, y, output, identity, metric)
    report.update(trusted)
    report["uncertainty"] = uncertainty
    if calibrated:
        report["calibration"] = calibrated
    if ensemble_size is None:  # a chosen trial (a Pareto point) is exported on its own
        configured = study.user_attrs.get(CONFIG_ATTR, {}).get("ensemble_size", DEFAULT_SIZE)
        ensemble_size = 1 if trial_number is not None else int(configured)
    built = _ensemble(study, dataset, trial, model, ev, ensemble_size, torch_device, metric,
                      reference, identity)
    if built is not None:
        report["ensemble"] = built.report
        report["ensemble"]["model_dir"] = str(out_dir / ENSEMBLE_DIR)
    if wall_seconds is not None:
        report["wall_seconds"] = round(wall_seconds, 2)
    # Everything is written into a staging folder first and moved into place only when
    # complete: a full disk (or any failure) leaves an earlier result of this folder intact.
    stage = out_dir / f".finalising-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    try:
        stage.mkdir()
        predictions.to_csv(stage / "test_predictions.csv", index=False)
        export_model(model, tokenizer, stage / "best_model", extra={
            "study": study.study_name, "trial": trial.number, "metric": metric,
            "dataset_fingerprint": dataset.fingerprint, "val_metrics": ev.metrics["val"],
            "test_metrics": ev.metrics["test"], "n_parameters": n_parameters,
            "conformal": uncertainty,
            "novelty_identity": homology.default_identity(train_sequences),
            **observed_range(dataset)},
            train_sequences=train_sequences)
        write_model_card(stage / "best_model", report)
        names = ["best_model", "test_predictions.csv"]
        if built is not None and built.models:
            export_ensemble(built.models, tokenizer, stage / ENSEMBLE_DIR, extra={
                "study": study.study_name, "trials": [m["trial"] for m in built.report[
                    "members"]], "metric": metric, "dataset_fingerprint": dataset.fingerprint,
                "val_metrics": built.report["val"], "test_metrics": built.report["test"],
                "n_parameters": built.report["n_parameters"],
                "conformal": built.report["uncertainty"],
                "novelty_identity": homology.default_identity(train_sequences),
                **observed_range(dataset)},
                member_extra=[{"trial": m["trial"]} for m in built.report["members"]],
                temperature=built.report.get("temperature", 1.0),
                train_sequences=train_sequences)
            write_model_card(stage / ENSEMBLE_DIR, ensemble_card_report(report))
            names.append(ENSEMBLE_DIR)
        elif (out_dir / ENSEMBLE_DIR).is_dir():  # an older ensemble no longer matches
            (out_dir / ENSEMBLE_DIR).replace(stage / f"previous-{ENSEMBLE_DIR}")
        (stage / "report.json").write_text(json.dumps(report, indent=2,
                                                      default=_json_default))
        for name in (*names, "report.json"):  # report last
            target = out_dir / name
            if target.is_dir():
                target.replace(stage / f"previous-{name}")
            (stage / name).replace(target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return report


def trial_weights(study: optuna.Study, trial: FrozenTrial) -> Path:
    """The trial's checkpoint folder on this machine; refused with the fix when it is not."""
    checkpoint = Path(trial.user_attrs.get("checkpoint", ""))
    if not (checkpoint / "trainable.safetensors").is_file():
        raise FileNotFoundError(
            f"the weights of trial {trial.number} are not on this machine ({checkpoint}): it "
            f"ran on {trial.user_attrs.get('host', 'another machine')}. Run `python -m "
            f"nas_core finalise --study {study.study_name} --trial {trial.number} --out DIR` "
            "there, share the workspace's runs/ folder between the machines, or choose "
            "another trial.")
    return checkpoint


def _evaluate(model, tokenizer, dataset: Dataset, device) -> Evaluated:
    ev = Evaluated({}, {}, {})
    for split, name in (("valid", "val"), ("test", "test")):
        part = dataset.part(split)
        ev.targets[name] = dataset.label_index(part["label"])
        data = encode_split(list(part["sequence"]), ev.targets[name], tokenizer)
        ev.metrics[name], ev.outputs[name] = evaluate(model, data, device=device,
                                                      pad_id=tokenizer.pad_token_id,
                                                      raw_targets=ev.targets[name])
    return ev


def _calibrate(model, task: str, ev: Evaluated) -> dict | None:
    """Classification: fit the temperature on the validation split, give it to the model (its
    export and predictions use it) and re-score both splits with the calibrated
    probabilities; the report's calibration block says how much the test calibration error
    fell. Regression: nothing to calibrate."""
    if is_regression(task):
        return None
    report = calibration_report(task, ev.targets["val"], ev.outputs["val"],
                                ev.targets["test"], ev.outputs["test"])
    model.info = replace(model.info, temperature=report["temperature"])
    for name in ("val", "test"):
        ev.outputs[name] = scaled_outputs(task, ev.outputs[name], report["temperature"])
        ev.metrics[name] = compute_metrics(task, ev.targets[name], ev.outputs[name])
    return report


def _best_block(trial: FrozenTrial, ev: Evaluated, n_parameters: int, model_dir: Path,
                per_residue: bool = False) -> dict:
    arch = trial.user_attrs["architecture"]
    return {
        "trial": trial.number, "params": trial.params, "architecture": arch,
        "description": Architecture.from_dict(arch).describe(per_residue),
        "val": ev.metrics["val"], "test": ev.metrics["test"],
        "n_parameters": n_parameters, "best_epoch": trial.user_attrs.get("best_epoch"),
        "backbone_untrained": resolve(arch["backbone"]).untrained,
        "history": trial.user_attrs.get("history", []),
        "model_dir": str(model_dir),
        **compaction_block(trial.user_attrs),
    }


def compaction_block(attrs: dict) -> dict:
    """A pruned-and-distilled trial's shapes, its teacher's size and validation metrics."""
    if not attrs.get("compaction"):
        return {}
    return {"compaction": attrs["compaction"],
            "teacher_n_parameters": attrs.get("teacher_n_parameters"),
            "teacher_val": attrs.get("teacher_val_metrics")}


def _reference_and_trust(dataset: Dataset, y: np.ndarray, output: np.ndarray,
                         identity: np.ndarray, metric: str) -> tuple[dict, np.ndarray]:
    """The reference model beside ours, the paired comparison and the leakage report; and
    the reference's test outputs."""
    baseline, reference = fit_baseline(dataset, return_test_output=True)
    baseline["test_ci"] = bootstrap_ci(dataset.task, y, reference)
    return {
        "baseline": baseline,
        "vs_reference": trust.compare(dataset.task, y, output, reference, metric),
        "leakage": trust.leakage_report(identity),
        "by_identity": trust.by_identity(dataset.task, y, output, identity, metric),
    }, reference


def observed_range(dataset: Dataset) -> dict:
    """Regression: the lowest and highest measured value the model learnt from (training and
    validation), the bar "expected improvement" measures new candidates against."""
    if dataset.task != "regression":
        return {}
    known = dataset.frame[dataset.frame["split"] != "test"]["label"].astype(float)
    return {"observed": {"min": float(known.min()), "max": float(known.max())}}


@dataclass
class Built:
    report: dict
    models: list


def _ensemble(study: optuna.Study, dataset: Dataset, best: FrozenTrial, best_model,
              best_ev: Evaluated, k: int, device, metric: str, reference: np.ndarray,
              identity: np.ndarray) -> Built | None:
    """The ensemble of the k best architectures, each calibrated on the validation split,
    tested once beside the best model and the reference. None when not asked for; a report
    without models when fewer than two trials can take part."""
    if k < 2:
        return None
    task = dataset.task

    def usable(trial: FrozenTrial) -> str | None:
        if trial.number == best.number:
            return None
        path = Path(trial.user_attrs.get("checkpoint", ""))
        return None if (path / "trainable.safetensors").is_file() else (
            f"its weights are not on this machine (it ran on "
            f"{trial.user_attrs.get('host', 'another machine')})")

    choice = choose_members(study, k, usable=usable)
    if len(choice.members) < 2 or best.number not in {t.number for t in choice.members}:
        return Built({"size": k, "members": [], "skipped": choice.skipped, "note": (
            "No ensemble: fewer than two finished trials could take part (the search needs "
            "more completed trials, with their weights on this machine).")}, [])
    models, evs, rows = [], [], []
    for trial in choice.members:
        if trial.number == best.number:
            model, ev = best_model, best_ev
        else:
            model, member_tokenizer = load_trial_checkpoint(trial_weights(study, trial))
            model.to(device)
            ev = _evaluate(model, member_tokenizer, dataset, device)
            _calibrate(model, task, ev)
        model.to("cpu")
        models.append(model)
        evs.append(ev)
        rows.append(member_row(trial, model, count_parameters(model), ev.metrics["val"],
                               metric))
    y = best_ev.targets["test"]
    mean = {s: combine([e.outputs[s] for e in evs])[0] for s in ("val", "test")}
    temperature = None
    if not is_regression(task):  # averaging calibrated members makes the mean less sure than
        # it should be (they disagree where they are unsure): one more temperature, fitted on
        # the validation split to the averaged probabilities, puts that right
        averaged_ece = ensemble_ece(task, y, mean["test"])
        temperature = round(fit_temperature(*flatten(task, best_ev.targets["val"],
                                                     mean["val"])), 4)
        mean = {s: scaled_outputs(task, m, temperature) for s, m in mean.items()}
    block = {
        "size": k, "members": rows, "skipped": choice.skipped,
        "val": compute_metrics(task, best_ev.targets["val"], mean["val"]),
        "test": compute_metrics(task, y, mean["test"]),
        "test_ci": bootstrap_ci(task, y, mean["test"]),
        "n_parameters": sum(r["n_parameters"] for r in rows),
        "vs_best": trust.compare(task, y, mean["test"], best_ev.outputs["test"], metric),
        "vs_reference": trust.compare(task, y, mean["test"], reference, metric),
        "by_identity": trust.by_identity(task, y, mean["test"], identity, metric),
        "uncertainty": {"level": 0.9, "threshold": trust.conformal(
            task, best_ev.targets["val"], mean["val"], 0.9)},
    }
    if temperature is not None:
        block["temperature"] = temperature
        block["ece_averaged"] = averaged_ece  # before the ensemble's own temperature
        block["ece"] = ensemble_ece(task, y, mean["test"])
    return Built(block, models)


def ensemble_card_report(report: dict) -> dict:
    """The report as the ensemble's model card reads it: the ensemble in the best model's
    place."""
    ens = report["ensemble"]
    card = {k: v for k, v in report.items() if k not in ("calibration", "pareto")}
    card["best"] = {**report["best"], "trial": None, "test": ens["test"],
                    "test_ci": ens["test_ci"], "val": ens["val"],
                    "n_parameters": ens["n_parameters"], "history": [],
                    "description": f"an ensemble of {len(ens['members'])} architectures"}
    card["ensemble_members"] = ens["members"]
    if ens.get("temperature") is not None:
        card.update(ensemble_temperature=ens["temperature"],
                    ensemble_ece_averaged=ens["ece_averaged"], ensemble_ece=ens["ece"])
    card["vs_best"] = ens["vs_best"]
    card["vs_reference"] = ens["vs_reference"]
    card["by_identity"] = ens["by_identity"]
    card["uncertainty"] = ens["uncertainty"]
    return card


def test_identity(dataset: Dataset) -> np.ndarray:
    """Each test sequence's identity to its nearest training sequence (stored at split time;
    computed now for datasets split before that was recorded)."""
    test = dataset.part("test")
    if "nearest_train_identity" in test and test["nearest_train_identity"].notna().all():
        return test["nearest_train_identity"].to_numpy(dtype=float)
    return homology.nearest_identity(list(test["sequence"]),
                                     list(dataset.part("train")["sequence"]))


def _json_default(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)


def build_report(study: optuna.Study, dataset: Dataset, metric: str) -> dict:
    trials = study.get_trials(deepcopy=False)
    states = [t.state for t in trials]
    config = study.user_attrs.get(CONFIG_ATTR, {})
    budget = config.get("space", {}).get("max_epochs_range", [None, None])[1]
    trained = sum(t.user_attrs.get("epochs_trained", len(t.user_attrs.get("history", [])))
                  for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED))
    durations = [t.duration.total_seconds() for t in trials if t.duration]
    report = {
        "study": study.study_name,
        "storage": public_url(storage_url(study)),
        "task": dataset.task, "metric": metric,
        "direction": study.directions[0].name.lower(),
        "objective": config.get("objective", "metric"),
        "sampler": config.get("sampler"), "pruner": config.get("pruner"),
        "strategy": STRATEGIES.get(config.get("sampler"), config.get("sampler")),
        "dataset": {"name": dataset.name, "fingerprint": dataset.fingerprint,
                    "summary": dataset.summary(),
                    "path": study.user_attrs.get("dataset_path") or None},
        "n_trials": len(trials),
        "n_complete": states.count(TrialState.COMPLETE),
        "n_pruned": states.count(TrialState.PRUNED),
        "n_failed": states.count(TrialState.FAIL),
        "trial_seconds": round(sum(durations), 2),
        "epochs_trained": trained,
        "epochs_without_pruning": budget * sum(
            s in (TrialState.COMPLETE, TrialState.PRUNED) for s in states) if budget else None,
        "failures": [{"trial": n, "reason": r} for n, r in fail_reasons(trials).items()],
    }
    if study.user_attrs.get("lineage"):
        report["lineage"] = study.user_attrs["lineage"]
    budget_note = unspent_budget(trials, config.get("n_trials"))
    if budget_note:
        report["budget_note"] = budget_note
    if len(study.directions) > 1:
        report["pareto"] = [{"trial": t.number, metric: t.values[0],
                             "n_parameters": int(t.values[1])} for t in study.best_trials]
    return report


def unspent_budget(trials, n_trials: int | None) -> str | None:
    """A sentence when the search stopped before its trial budget was spent (cancelled,
    interrupted or failed, then finalised anyway); None when it was spent."""
    if not n_trials:
        return None
    done = len(in_budget(trials))
    if done >= n_trials:
        return None
    return (f"The search stopped after {done} of its {n_trials} trials: the budget was not "
            "spent, so a better architecture may exist. This is the best of the trials that "
            "finished.")
