"""After the search: the chosen trial evaluated once on the held-out test split, beside the
reference model, with the trust report; exported with its model card; report.json written."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import torch
from optuna.trial import FrozenTrial, TrialState

from nas_core.backbones.registry import resolve
from nas_core.common.metrics import bootstrap_ci, compute_metrics
from nas_core.common.probabilities import scaled_outputs
from nas_core.common.progress import StepProgress, Steps
from nas_core.common.report import (
    REPORT_FILE,
    Baseline,
    BestModel,
    Calibration,
    Comparison,
    DatasetRef,
    Ensemble,
    Failure,
    Lineage,
    ParetoPoint,
    Report,
    Uncertainty,
    Verdict,
)
from nas_core.common.tasks import Task
from nas_core.common.workspace import writing
from nas_core.data import homology
from nas_core.data.dataset import Dataset
from nas_core.data.pair_splits import proteins_of
from nas_core.evaluation import trust
from nas_core.evaluation.baseline import fit_baseline
from nas_core.evaluation.calibration import (
    calibration_report,
    ensemble_ece,
    fit_temperature,
    flatten,
)
from nas_core.evaluation.ensemble import choose_members, member_row
from nas_core.evaluation.verdict import judge
from nas_core.modeling.architecture import Architecture
from nas_core.modeling.batches import encode_rows
from nas_core.modeling.build import count_parameters, load_trial_checkpoint
from nas_core.modeling.modules import SequencePredictor
from nas_core.modeling.training import evaluate, resolve_device
from nas_core.publishing.card import write_model_card
from nas_core.publishing.export import export_ensemble, export_model
from nas_core.publishing.predict import combine, prediction_columns, residue_rows
from nas_core.search.budget import in_budget
from nas_core.search.config import CONFIG_ATTR, STRATEGIES, SearchConfig
from nas_core.search.optuna_internals import storage_url
from nas_core.search.storage import fail_reasons, public_url
from nas_core.search.study import choose_trial

ENSEMBLE_DIR = "ensemble_model"
BEST_DIR = "best_model"
PREDICTIONS_FILE = "test_predictions.csv"


@dataclass
class Evaluated:
    """The model's outputs on the validation and test splits, with their targets."""

    metrics: dict[str, dict]
    outputs: dict[str, np.ndarray]
    targets: dict[str, np.ndarray]


@dataclass
class Tested:
    """The chosen trial's model, tested once on the held-out split (calibrated first)."""

    trial: FrozenTrial
    model: SequencePredictor
    tokenizer: Any
    ev: Evaluated
    calibration: Calibration | None
    identity: np.ndarray  # each test sequence's identity to its nearest training sequence
    # pairs: each test pair's two protein indices (intervals resample proteins, not pairs)
    partners: np.ndarray | None = None


def finalise(study: optuna.Study, dataset: Dataset, out_dir: str | Path, *,
             trial_number: int | None = None, device: str = "auto",
             wall_seconds: float | None = None, ensemble_size: int | None = None,
             progress: Callable[[StepProgress], None] | None = None) -> Report:
    """Evaluate the chosen trial once on the held-out test split; export it; write report.json.

    ``ensemble_size`` (default: the search's setting, or none for a chosen trial): with 2 or
    more, also the ensemble of the best architectures, tested and exported beside the best
    model (``ensemble_model/``). ``progress`` hears of each step (the chosen model, each other
    member, the export) with the time left, measured on the steps done.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch_device = resolve_device(device)
    metric = study.user_attrs["metric"]
    if ensemble_size is None:  # a chosen trial (a Pareto point) is exported on its own
        config = saved_config(study)
        ensemble_size = 1 if trial_number is not None or config is None else \
            config.ensemble_size
    steps = Steps(1 + max(0, ensemble_size - 1) + 1, progress)
    steps.start("Testing the chosen model once on the held-out split")
    tested = _test_chosen(study, dataset, choose_trial(study, trial_number), torch_device)
    y, output = tested.ev.targets["test"], tested.ev.outputs["test"]
    trust_blocks, reference = _reference_and_trust(dataset, y, output, tested.identity, metric,
                                                   tested.partners)
    judged = _judge(study, dataset, metric, y, trust_blocks["baseline"])
    steps.finished()
    built = _ensemble(study, dataset, tested, ensemble_size, torch_device, metric, reference,
                      judged, steps)
    steps.start("Exporting the model and writing its card", total=steps.done + 1)
    report = search_report(
        study, dataset, metric,
        best=_best_block(tested, dataset.task, out_dir / BEST_DIR),
        uncertainty=Uncertainty(0.9, trust.conformal(dataset.task, tested.ev.targets["val"],
                                                     tested.ev.outputs["val"], 0.9)),
        calibration=tested.calibration, wall_seconds=wall_seconds, **trust_blocks,
        verdict=judged(output, tested.ev.metrics["test"],
                       bootstrap_ci(dataset.task, y, output, partners=tested.partners),
                       trust_blocks["vs_reference"]),
        ensemble=None if built is None else replace(  # a folder only when there are models
            built.report, model_dir=str(out_dir / ENSEMBLE_DIR) if built.models else None))
    _write_run(out_dir, report, tested, built, dataset)
    steps.finished()
    return report


def _test_chosen(study: optuna.Study, dataset: Dataset, trial: FrozenTrial,
                 device: torch.device) -> Tested:
    model, tokenizer = load_trial_checkpoint(trial_weights(study, trial))
    model.to(device)
    ev = _evaluate(model, tokenizer, dataset, device)
    calibration = _calibrate(model, dataset.task, ev)
    return Tested(trial, model, tokenizer, ev, calibration, test_identity(dataset),
                  test_partners(dataset))


def _predictions(dataset: Dataset, tested: Tested) -> pd.DataFrame:
    """The held-out test predictions, with each sequence's identity to the training set; per
    residue one row per residue, the protein's identity on each."""
    output = tested.ev.outputs["test"]
    if dataset.pairs:  # each partner's identity to its nearest training protein
        frame = dataset.part("test")[["id", "id_2", "sequence", "sequence_2", "label",
                                      "nearest_train_identity",
                                      "nearest_train_identity_2"]].copy()
        return prediction_columns(frame, dataset.task, dataset.label_names, output)
    frame = dataset.part("test")[["id", "sequence", "label"]].copy()
    frame["nearest_train_identity"] = tested.identity
    if dataset.task.per_residue:
        return residue_rows(
            [str(i) if i else f"test {n + 1}" for n, i in enumerate(frame["id"])],
            list(frame["sequence"]), dataset.task, dataset.label_names, output,
            list(frame["label"]), frame[["nearest_train_identity"]])
    return prediction_columns(frame, dataset.task, dataset.label_names, output)


def _write_run(out_dir: Path, report: Report, tested: Tested, built: Built | None,
               dataset: Dataset) -> None:
    """Everything is written into a staging folder first and moved into place only when
    complete: a full disk (or any failure) leaves an earlier result of this folder intact."""
    train = dataset.part("train")
    # pairs: the training proteins, each once (Predict flags a partner unlike all of them)
    train_sequences = (proteins_of(train)[0] if dataset.pairs else list(train["sequence"]))
    # per sequence, each one's measured label travels with it: Predict gives it back for a
    # query the model was trained on (a label per residue is too long for a FASTA header)
    labels = (None if dataset.task.per_residue or dataset.pairs
              else [str(v) for v in train["label"]])
    common = {"study": report.study, "metric": report.metric,
              "dataset_fingerprint": dataset.fingerprint,
              **({"pair_split": dataset.pair_split} if dataset.pairs else {}),
              "novelty_identity": homology.default_identity(train_sequences),
              **observed_range(dataset)}
    for stale in out_dir.glob(".finalising-*"):  # left by a run killed half-way
        shutil.rmtree(stale, ignore_errors=True)
    stage = out_dir / f".finalising-{os.getpid()}"
    try:
        stage.mkdir()
        _predictions(dataset, tested).to_csv(stage / PREDICTIONS_FILE, index=False)
        export_model(tested.model, tested.tokenizer, stage / BEST_DIR, extra={
            **common, "trial": tested.trial.number, "val_metrics": tested.ev.metrics["val"],
            "test_metrics": tested.ev.metrics["test"],
            "n_parameters": report.best.n_parameters,
            "conformal": report.uncertainty.to_dict() if report.uncertainty else None},
            train_sequences=train_sequences, train_labels=labels)
        write_model_card(stage / BEST_DIR, report)
        names = [BEST_DIR, PREDICTIONS_FILE]
        if built is not None and built.models and report.ensemble is not None:
            ens = report.ensemble
            export_ensemble(built.models, tested.tokenizer, stage / ENSEMBLE_DIR, extra={
                **common, "trials": [m.trial for m in ens.members], "val_metrics": ens.val,
                "test_metrics": ens.test, "n_parameters": ens.n_parameters,
                "conformal": ens.uncertainty.to_dict() if ens.uncertainty else None},
                member_extra=[{"trial": m.trial} for m in ens.members],
                temperature=ens.temperature or 1.0, train_sequences=train_sequences,
                train_labels=labels)
            write_model_card(stage / ENSEMBLE_DIR, report.ensemble_card())
            names.append(ENSEMBLE_DIR)
        report.write(stage / REPORT_FILE)
        with writing(out_dir, "Finalising the search"):  # a kill now leaves it marked
            if ENSEMBLE_DIR not in names and (out_dir / ENSEMBLE_DIR).is_dir():
                # an older ensemble no longer matches this report
                (out_dir / ENSEMBLE_DIR).replace(stage / f"previous-{ENSEMBLE_DIR}")
            for name in (*names, REPORT_FILE):  # report last
                target = out_dir / name
                if target.is_dir():
                    target.replace(stage / f"previous-{name}")
                (stage / name).replace(target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


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
        data = encode_rows(part, dataset.task, model.arch, ev.targets[name], tokenizer)
        ev.metrics[name], ev.outputs[name] = evaluate(model, data, device=device,
                                                      pad_id=tokenizer.pad_token_id,
                                                      raw_targets=ev.targets[name])
    return ev


def _calibrate(model, task: Task, ev: Evaluated) -> Calibration | None:
    """Classification: fit the temperature on the validation split, give it to the model (its
    export and predictions use it) and re-score both splits with the calibrated
    probabilities; the report's calibration block says how much the test calibration error
    fell. Regression: nothing to calibrate."""
    if task.is_regression:
        return None
    report = calibration_report(task, ev.targets["val"], ev.outputs["val"],
                                ev.targets["test"], ev.outputs["test"])
    model.info = replace(model.info, temperature=report.temperature)
    for name in ("val", "test"):
        ev.outputs[name] = scaled_outputs(task, ev.outputs[name], report.temperature)
        ev.metrics[name] = compute_metrics(task, ev.targets[name], ev.outputs[name])
    return report


def _best_block(tested: Tested, task: Task, model_dir: Path) -> BestModel:
    trial, ev = tested.trial, tested.ev
    arch = Architecture.from_dict(trial.user_attrs["architecture"])
    attrs = trial.user_attrs
    compacted = bool(attrs.get("compaction"))
    return BestModel(
        trial=trial.number, params=trial.params, architecture=attrs["architecture"],
        description=arch.describe(task.per_residue, task.per_pair), val=ev.metrics["val"],
        test=ev.metrics["test"], n_parameters=count_parameters(tested.model),
        best_epoch=attrs.get("best_epoch"), backbone_untrained=resolve(arch.backbone).untrained,
        history=attrs.get("history", []), model_dir=str(model_dir),
        compaction=attrs["compaction"] if compacted else None,
        teacher_n_parameters=attrs.get("teacher_n_parameters") if compacted else None,
        teacher_val=attrs.get("teacher_val_metrics") if compacted else None,
        test_ci=bootstrap_ci(task, ev.targets["test"], ev.outputs["test"],
                             partners=tested.partners))


def _reference_and_trust(dataset: Dataset, y: np.ndarray, output: np.ndarray,
                         identity: np.ndarray, metric: str, partners: np.ndarray | None = None
                         ) -> tuple[dict[str, Any], np.ndarray]:
    """The reference model beside ours, the paired comparison and the leakage report (the
    report's fields of those names); and the reference's test outputs."""
    baseline, reference = fit_baseline(dataset, return_test_output=True)
    return {
        "baseline": replace(baseline, test_ci=bootstrap_ci(dataset.task, y, reference,
                                                           partners=partners)),
        "vs_reference": trust.compare(dataset.task, y, output, reference, metric,
                                      partners=partners),
        "leakage": trust.leakage_report(identity),
        "by_identity": trust.by_identity(dataset.task, y, output, identity, metric,
                                         partners=partners),
    }, reference


def observed_range(dataset: Dataset) -> dict:
    """Regression: the lowest and highest measured value the model learnt from (training and
    validation), the bar "expected improvement" measures new candidates against."""
    if dataset.task.label_kind != Task.REGRESSION:
        return {}
    known = dataset.frame[dataset.frame["split"] != "test"]["label"].astype(float)
    return {"observed": {"min": float(known.min()), "max": float(known.max())}}


@dataclass
class Built:
    report: Ensemble
    models: list


def _judge(study: optuna.Study, dataset: Dataset, metric: str, y: np.ndarray,
           baseline: Baseline) -> Callable[..., Verdict | None]:
    """The verdict on a model's test outputs (the best model's or the ensemble's)."""
    train = dataset.part("train")
    tried = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED)
                for t in study.get_trials(deepcopy=False))
    shares = None
    if not dataset.task.is_regression and not dataset.task.per_residue:
        shares = {str(k): float(v) for k, v in
                  train["label"].astype(str).value_counts(normalize=True).items()}

    def judged(output: np.ndarray, test: dict, test_ci: dict | None,
               vs_reference: Comparison | None) -> Verdict | None:
        return judge(dataset.task, metric, y, output, test=test, test_ci=test_ci,
                     vs_reference=vs_reference,
                     reference_value=(baseline.test or {}).get(metric),
                     label_names=dataset.label_names, n_trials=tried,
                     n_train=len(train), class_shares=shares)

    return judged


def _ensemble(study: optuna.Study, dataset: Dataset, best: Tested, k: int, device,
              metric: str, reference: np.ndarray,
              judged: Callable[..., Verdict | None], steps: Steps) -> Built | None:
    """The ensemble of the k best architectures, each calibrated on the validation split,
    tested once beside the best model and the reference. None when not asked for; a report
    without models when fewer than two trials can take part."""
    if k < 2:
        return None

    def usable(trial: FrozenTrial) -> str | None:
        if trial.number == best.trial.number:
            return None
        path = Path(trial.user_attrs.get("checkpoint", ""))
        return None if (path / "trainable.safetensors").is_file() else (
            f"its weights are not on this machine (it ran on "
            f"{trial.user_attrs.get('host', 'another machine')})")

    choice = choose_members(study, k, usable=usable)
    if len(choice.members) < 2 or best.trial.number not in {t.number for t in choice.members}:
        return Built(Ensemble(size=k, members=[], skipped=choice.skipped, note=(
            "No ensemble: fewer than two finished trials could take part (the search needs "
            "more completed trials, with their weights on this machine).")), [])
    models, evs, rows = [], [], []
    others = [t for t in choice.members if t.number != best.trial.number]
    for trial in choice.members:
        if trial.number != best.trial.number:
            steps.start(f"Testing ensemble member {others.index(trial) + 1} of {len(others)}",
                        total=steps.done + len(others) - others.index(trial) + 1)
        model, ev = _member(study, dataset, trial, best, device)
        if trial.number != best.trial.number:
            steps.finished()
        model.to("cpu")
        models.append(model)
        evs.append(ev)
        rows.append(member_row(trial, model, count_parameters(model), ev.metrics["val"],
                               metric))
    block = _ensemble_block(dataset.task, best, [e.outputs for e in evs], metric, reference,
                            judged)
    return Built(replace(block, size=k, members=rows, skipped=choice.skipped,
                         n_parameters=sum(r.n_parameters for r in rows)), models)


def _member(study: optuna.Study, dataset: Dataset, trial: FrozenTrial, best: Tested,
            device) -> tuple[SequencePredictor, Evaluated]:
    """One member's model, tested and calibrated (the best model as it already is)."""
    if trial.number == best.trial.number:
        return best.model, best.ev
    model, tokenizer = load_trial_checkpoint(trial_weights(study, trial))
    model.to(device)
    ev = _evaluate(model, tokenizer, dataset, device)
    _calibrate(model, dataset.task, ev)
    return model, ev


def _ensemble_block(task: Task, best: Tested, outputs: list[dict[str, np.ndarray]],
                    metric: str, reference: np.ndarray,
                    judged: Callable[..., Verdict | None]) -> Ensemble:
    """The members' mean outputs tested like the best model, beside it and the reference."""
    targets, identity, partners = best.ev.targets, best.identity, best.partners
    y = targets["test"]
    mean = {s: combine([o[s] for o in outputs])[0] for s in ("val", "test")}
    temperature = averaged_ece = None
    if not task.is_regression:  # averaging calibrated members makes the mean less sure than
        # it should be (they disagree where they are unsure): one more temperature, fitted on
        # the validation split to the averaged probabilities, puts that right
        averaged_ece = ensemble_ece(task, y, mean["test"])
        temperature = round(fit_temperature(*flatten(task, targets["val"], mean["val"])), 4)
        mean = {s: scaled_outputs(task, m, temperature) for s, m in mean.items()}
    test = compute_metrics(task, y, mean["test"])
    test_ci = bootstrap_ci(task, y, mean["test"], partners=partners)
    vs_reference = trust.compare(task, y, mean["test"], reference, metric, partners=partners)
    return Ensemble(
        size=0, members=[],
        val=compute_metrics(task, targets["val"], mean["val"]),
        test=test, test_ci=test_ci,
        vs_best=trust.compare(task, y, mean["test"], best.ev.outputs["test"], metric,
                              partners=partners),
        vs_reference=vs_reference, verdict=judged(mean["test"], test, test_ci, vs_reference),
        by_identity=trust.by_identity(task, y, mean["test"], identity, metric,
                                      partners=partners),
        uncertainty=Uncertainty(0.9, trust.conformal(task, targets["val"], mean["val"], 0.9)),
        temperature=temperature, ece_averaged=averaged_ece,
        ece=None if temperature is None else ensemble_ece(task, y, mean["test"]))


def test_partners(dataset: Dataset) -> np.ndarray | None:
    """Pairs: each test pair's two indices into the test proteins (what an interval
    resamples); None for sequences."""
    return proteins_of(dataset.part("test"))[1] if dataset.pairs else None


def test_identity(dataset: Dataset) -> np.ndarray:
    """Each test sequence's identity to its nearest training sequence (stored at split time;
    computed now for datasets split before that was recorded). A pair counts as close as
    its closer partner: a pair is new only when both proteins are."""
    test = dataset.part("test")
    if dataset.pairs:
        return test[["nearest_train_identity", "nearest_train_identity_2"]].max(
            axis=1).to_numpy(dtype=float)
    if "nearest_train_identity" in test and test["nearest_train_identity"].notna().all():
        return test["nearest_train_identity"].to_numpy(dtype=float)
    return homology.nearest_identity(list(test["sequence"]),
                                     list(dataset.part("train")["sequence"]))


def saved_config(study: optuna.Study) -> SearchConfig | None:
    """The search's configuration as saved in its study (None for a study without one)."""
    saved = study.user_attrs.get(CONFIG_ATTR)
    return SearchConfig.from_dict(saved) if saved else None


def search_report(study: optuna.Study, dataset: Dataset, metric: str, *, best: BestModel,
                  baseline: Baseline, **blocks: Any) -> Report:
    """The report of the search: what it ran and spent, and the blocks finalise measured."""
    # a repeated architecture was never trained (objective), a queued trial never started
    trials = [t for t in study.get_trials(deepcopy=False)
              if "repeat_of" not in t.user_attrs and t.state != TrialState.WAITING]
    states = [t.state for t in trials]
    config = saved_config(study)
    budget = config.space.max_epochs_range[1] if config else None
    finished = (TrialState.COMPLETE, TrialState.PRUNED)
    trained = sum(t.user_attrs.get("epochs_trained", len(t.user_attrs.get("history", [])))
                  for t in trials if t.state in finished)
    durations = [t.duration.total_seconds() for t in trials if t.duration]
    lineage = study.user_attrs.get("lineage")
    wall = blocks.pop("wall_seconds", None)
    return Report(
        study=study.study_name, storage=public_url(storage_url(study)), task=dataset.task,
        metric=metric, direction=study.directions[0].name.lower(),
        objective=config.objective if config else "metric",
        sampler=config.sampler if config else None, pruner=config.pruner if config else None,
        strategy=STRATEGIES.get(config.sampler, config.sampler) if config else None,
        dataset=DatasetRef(dataset.name, dataset.fingerprint, dataset.summary(),
                           path=study.user_attrs.get("dataset_path") or None),
        n_trials=len(trials), n_complete=states.count(TrialState.COMPLETE),
        n_pruned=states.count(TrialState.PRUNED), n_failed=states.count(TrialState.FAIL),
        trial_seconds=round(sum(durations), 2), epochs_trained=trained,
        epochs_without_pruning=budget * sum(s in finished for s in states) if budget else None,
        failures=[Failure(n, r) for n, r in fail_reasons(trials).items()],
        lineage=Lineage.from_dict(lineage) if lineage else None,
        budget_note=study.user_attrs.get("space_exhausted")
        or unspent_budget(trials, config.n_trials if config else None),
        pareto=[ParetoPoint(t.number, t.values[0], int(t.values[1]))
                for t in study.best_trials] if len(study.directions) > 1 else None,
        best=best, baseline=baseline,
        wall_seconds=None if wall is None else round(wall, 2), **blocks)


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
