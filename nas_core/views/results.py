"""What the Results page shows of a finished job: report, test predictions, model download."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pandas as pd

from nas_core.common.metrics import metric_name
from nas_core.common.workspace import COMPRESS_RESULTS, subdir


def load_report(out_dir: str | Path) -> dict | None:
    path = Path(out_dir) / "report.json"
    return json.loads(path.read_text()) if path.is_file() else None


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


def metrics_table(report: dict) -> pd.DataFrame:
    """Best model and reference side by side, validation and held-out test."""
    metric = report["metric"]
    rows = []
    blocks = [("best architecture", report["best"])]
    ensemble = report.get("ensemble") or {}
    if ensemble.get("members"):
        blocks.append((f"ensemble of {len(ensemble['members'])}", ensemble))
    blocks.append(("reference model", report["baseline"]))
    for who, block in blocks:
        for split, key in (("validation", "val"), ("held-out test", "test")):
            values = block.get(key) or {}
            ci = (block.get("test_ci") or {}).get(metric) if key == "test" else None
            name = metric_name(metric)
            rows.append({"model": who, "split": split, name: values.get(metric),
                         f"{name} 95% CI": f"{ci[0]:.3f} – {ci[1]:.3f}" if ci else "",
                         **{metric_name(k): v for k, v in values.items() if k != metric}})
    return pd.DataFrame(rows)


def identity_table(report: dict) -> pd.DataFrame | None:
    """Held-out test metric by identity to the nearest training sequence."""
    rows = report.get("by_identity")
    if not rows:
        return None
    return pd.DataFrame([{"identity to training": r["bin"], "test sequences": r["n"],
                          metric_name(report["metric"]): r["value"],
                          "95% CI": f"{r['ci'][0]:.3f} – {r['ci'][1]:.3f}" if r["ci"] else ""}
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
        report = load_report(config.parent.parent) or {}
        ensemble = config.parent.name == "ensemble_model"
        best = report.get("ensemble" if ensemble else "best") or {}
        which = (f"ensemble of {len(best.get('members', []))}" if ensemble
                 else f"trial {best.get('trial')}")
        label = (f"{report.get('study', config.parent.parent.name)} — {which}"
                 f" ({report.get('task', '?')}, test {report.get('metric', '')} "
                 f"{best.get('test', {}).get(report.get('metric'), float('nan')):.3f})")
        found.append((config.stat().st_mtime, label, config.parent))
    return {label: path for _, label, path in sorted(found, reverse=True)}


COMPRESS_KINDS = {"reference": "chosen model (uncompressed)",
                  "pruned": "heads and width pruned, distilled",
                  "depth": "layers cut (depth only), distilled"}


def load_compression(out_dir: str | Path) -> dict | None:
    path = Path(out_dir) / COMPRESS_RESULTS
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


def ensemble_members(report: dict) -> pd.DataFrame | None:
    """The ensemble's members: trial, architecture, validation score, size."""
    members = (report.get("ensemble") or {}).get("members")
    if not members:
        return None
    name = metric_name(report["metric"])
    return pd.DataFrame([{"trial": m["trial"], "architecture": m["description"],
                          f"validation {name}": m["val"], "parameters": m["n_parameters"],
                          "temperature": m.get("temperature")} for m in members])
