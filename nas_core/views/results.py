"""What the Results page shows of a finished job: report, test predictions, model download."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pandas as pd

from nas_core.common.metric_names import metric_name
from nas_core.common.report import Intervals, Metrics, Report, load_report
from nas_core.common.workspace import COMPRESS_RESULTS, interrupted, subdir


def test_predictions(out_dir: str | Path) -> pd.DataFrame | None:
    path = Path(out_dir) / "test_predictions.csv"
    return pd.read_csv(path) if path.is_file() else None


def zip_directory(directory: str | Path) -> bytes:
    """The model directory as a zip (what the download button hands out)."""
    directory = Path(directory)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                archive.write(path, Path(directory.name) / path.relative_to(directory))
    return buffer.getvalue()


def metrics_table(report: Report) -> pd.DataFrame:
    """Best model and reference side by side, validation and held-out test."""
    metric = report.metric
    rows = []
    blocks: list[tuple[str, Metrics | None, Metrics | None, Intervals | None]] = [
        ("best architecture", report.best.val, report.best.test, report.best.test_ci)]
    ensemble = report.ensemble
    if ensemble is not None and ensemble.members:
        blocks.append((f"ensemble of {len(ensemble.members)}", ensemble.val, ensemble.test,
                       ensemble.test_ci))
    blocks.append(("reference model", report.baseline.val, report.baseline.test,
                   report.baseline.test_ci))
    for who, val, test, test_ci in blocks:
        for split, values, ci in (("validation", val, None),
                                  ("held-out test", test, (test_ci or {}).get(metric))):
            values = values or {}
            name = metric_name(metric)
            rows.append({"model": who, "split": split, name: values.get(metric),
                         f"{name} 95% CI": f"{ci[0]:.3f} – {ci[1]:.3f}" if ci else "",
                         **{metric_name(k): v for k, v in values.items() if k != metric}})
    return pd.DataFrame(rows)


def identity_table(report: Report) -> pd.DataFrame | None:
    """Held-out test metric by identity to the nearest training sequence."""
    rows = report.by_identity
    if not rows:
        return None
    return pd.DataFrame([{"identity to training": r.bin, "test sequences": r.n,
                          metric_name(report.metric): r.value,
                          "95% CI": f"{r.ci[0]:.3f} – {r.ci[1]:.3f}" if r.ci else ""}
                         for r in rows])


def results_dir(root=None) -> Path:
    """Where every job's report and exported models live: the only folder the app loads
    local models from."""
    return subdir("results", root)


def workspace_models(root=None) -> dict[str, Path]:
    """Exported models in the workspace, newest first: label -> model directory."""
    found = []
    for config in [*results_dir(root).glob("*/**/best_model/config.json"),
                   *results_dir(root).glob("*/**/ensemble_model/config.json")]:
        report = load_report(config.parent.parent)
        if report is None:
            label = f"{config.parent.parent.name} — {config.parent.name} (no report)"
        else:
            label = _model_label(report, config.parent.name == "ensemble_model")
        found.append((config.stat().st_mtime, label, config.parent))
    return {label: path for _, label, path in sorted(found, reverse=True)}


COMPRESS_KINDS = {"reference": "chosen model (uncompressed)",
                  "pruned": "heads and width pruned, distilled",
                  "depth": "layers cut (depth only), distilled"}


def load_compression(out_dir: str | Path) -> dict | None:
    path = Path(out_dir) / COMPRESS_RESULTS
    if interrupted(out_dir):  # killed while writing: its variants may be half-written
        return None
    return json.loads(path.read_text()) if path.is_file() else None


def compression_points(result: dict) -> pd.DataFrame:
    """One row per model of a Compress run: size, held-out and validation metric, speed."""
    metric = result["metric"]
    rows = []
    for entry in result["entries"]:
        rows.append({
            "model": COMPRESS_KINDS.get(entry["kind"], entry["kind"]), "kind": entry["kind"],
            "target": entry["target"], "parameters": entry["n_parameters"],
            "share": entry["n_parameters"] / result["teacher"]["n_parameters"],
            "layers": entry["n_layers"],
            "heads per layer": "/".join(map(str, sorted(set(entry.get("heads", []))))) or "all",
            "feed-forward width": "/".join(map(str, sorted(set(entry.get("ffn", []))))) or "all",
            f"validation {metric_name(metric)}": entry["val"].get(metric),
            f"test {metric_name(metric)}": entry["test"].get(metric),
            "sequences/s": entry.get("throughput"), "speed-up": entry.get("speedup"),
            "path": entry["path"]})
    return pd.DataFrame(rows)


def _model_label(report: Report, ensemble: bool) -> str:
    """How a finished search's exported model is named in the model pickers."""
    if ensemble and report.ensemble is not None:
        which = f"ensemble of {len(report.ensemble.members)}"
        test = (report.ensemble.test or {}).get(report.metric)
    else:
        which, test = f"trial {report.best.trial}", report.test_value()
    return (f"{report.study} — {which} ({report.task}, test {report.metric} "
            f"{float('nan') if test is None else test:.3f})")


def ensemble_members(report: Report) -> pd.DataFrame | None:
    """The ensemble's members: trial, architecture, validation score, size."""
    members = report.ensemble.members if report.ensemble else []
    if not members:
        return None
    name = metric_name(report.metric)
    return pd.DataFrame([{"trial": m.trial, "architecture": m.description,
                          f"validation {name}": m.val, "parameters": m.n_parameters,
                          "temperature": m.temperature} for m in members])
