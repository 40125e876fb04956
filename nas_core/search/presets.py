"""Search presets for people who do not want to tune the search itself, and a run-time
estimate shown before starting.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from nas_core.backbones.download import is_downloaded
from nas_core.backbones.loading import make_tiny_backbone
from nas_core.backbones.registry import REGISTRY, BackboneSpec, resolve, shipped_backbones
from nas_core.common.workspace import subdir
from nas_core.search.space import SearchSpace
from nas_core.search.throughput import Estimate

DEMO_BACKBONE = "untrained-demo"


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    n_trials: int
    space: SearchSpace
    frozen_first: int = 0  # of n_trials: frozen-backbone trials run first (cheap)

    @property
    def n_trained(self) -> int:
        """The trials after the frozen ones (the sampler may still freeze some)."""
        return self.n_trials - self.frozen_first


QUICK_FROZEN = 24  # frozen-backbone heads Quick compares first: a fraction of a second each


def quick_description(frozen: int, trained: int, epochs: int, why: str = "") -> str:
    return (f"{frozen} frozen-backbone heads over several depths, poolings and head sizes "
            f"(they reuse one pass of the backbone: seconds in all), then {trained} trials "
            f"that may fine-tune with LoRA; up to {epochs} epochs, full-width layers{why}.")


def presets(backbones: tuple[str, ...]) -> dict[str, Preset]:
    """Quick / Balanced / Thorough over the chosen backbones. Trial pruning stays on in all;
    Quick keeps every head and neuron (a pruned model trains twice), the others search them."""
    base = SearchSpace(backbones=backbones)
    return {p.name: p for p in (
        Preset("Quick", quick_description(QUICK_FROZEN, 8, 5), QUICK_FROZEN + 8,
               replace(base, adaptations=("frozen", "lora"), max_epochs_range=(5, 5),
                       head_layers_range=(0, 1), heads_kept=(1.0,), ffn_kept=(1.0,)),
               frozen_first=QUICK_FROZEN),
        Preset("Balanced", "20 trials, up to 10 epochs; every adaptation, and heads and "
               "feed-forward width pruned and distilled in some trials.", 20,
               replace(base, max_epochs_range=(10, 10))),
        Preset("Thorough", "50 trials, up to 20 epochs; the whole space, head and width "
               "pruning included.", 50,
               replace(base, max_epochs_range=(20, 20))),
    )}


def demo_backbone(root=None) -> Path:
    """The untrained tiny ESM-2-shaped checkpoint in the workspace (made on first use)."""
    path = subdir("backbones", root) / DEMO_BACKBONE
    if not (path / "config.json").is_file():
        make_tiny_backbone(path, layers=3, hidden=32, heads=4)
    return path


def backbone_source(name: str, root=None) -> str:
    """What a backbone named as the app names it loads from: ``untrained-demo`` (made on first
    use), a backbone shipped in assets/backbones/ or made in this workspace, by its folder
    name; anything else (a registry name, a Hub id, a path) unchanged."""
    if name == DEMO_BACKBONE:
        return str(demo_backbone(root))
    for folder in (*shipped_backbones(), *workspace_backbones(root)):
        if folder.name == name:
            return str(folder)
    return name


def is_available(spec: BackboneSpec) -> bool:
    """Loadable without a download: a local directory, or in the Hugging Face cache."""
    return is_downloaded(spec.source)


# What the Quick preset promises: a search that ends within this many seconds here
QUICK_SECONDS = {"cpu": 5 * 60, "cuda": 10 * 60}


def fit_to_time(preset: Preset, estimate_for: Callable[[SearchSpace, int, int], Estimate],
                seconds: float) -> tuple[Preset, Estimate]:
    """The preset cut down (trials after the frozen ones first, then epochs, never under 2 of
    either) until its estimated run time, busy-machine margin included, fits in ``seconds``;
    with its estimate. ``estimate_for(space, n_trials, frozen_first)``. The description says
    what was chosen and why."""
    space, trained, frozen = preset.space, preset.n_trained, preset.frozen_first
    best = estimate_for(space, preset.n_trials, frozen)
    for epochs in range(space.max_epochs_range[1], 1, -1):
        shorter = replace(space, max_epochs_range=(min(space.max_epochs_range[0], epochs),
                                                   epochs))
        for n in range(preset.n_trained, 1, -1):
            found = estimate_for(shorter, frozen + n, frozen)
            if found.high <= seconds:
                why = (f", chosen from this machine's measured speed to finish within "
                       f"{seconds / 60:.0f} min")
                return replace(preset, n_trials=frozen + n, space=shorter,
                               description=_described(preset, n, epochs, why)), found
            space, trained, best = shorter, n, found
    why = f": the smallest search; even it takes longer than {seconds / 60:.0f} min here"
    return replace(preset, n_trials=frozen + trained, space=space, description=_described(
        preset, trained, space.max_epochs_range[1], why)), best


def _described(preset: Preset, trained: int, epochs: int, why: str) -> str:
    if preset.frozen_first:
        return quick_description(preset.frozen_first, trained, epochs, why)
    return (f"{trained} trials, up to {epochs} epochs{why}; frozen backbones and LoRA only.")


def offered_backbones(gpu_memory_gb: float | None, root=None) -> dict[str, BackboneSpec]:
    """Registry checkpoints that fit the GPU (all up to 150M on a CPU machine); the backbones
    pretrained here (shipped with the app, then the workspace's own, taught a user's
    proteins); last the untrained demo, the negative control. The first one available is the
    default: ESM-2 where it has been downloaded, else the shipped pretrained backbone."""
    out = {}
    for name, spec in REGISTRY.items():
        if gpu_memory_gb is None and spec.n_parameters > 2e8:
            continue
        if gpu_memory_gb is not None and spec.gpu_memory_gb() > gpu_memory_gb:
            continue
        out[name] = spec
    for path in [*shipped_backbones(), *workspace_backbones(root)]:
        out[str(path)] = resolve(str(path))
    demo = demo_backbone(root)
    out[str(demo)] = resolve(str(demo))
    return out


def workspace_backbones(root=None) -> list[Path]:
    """Backbones made in this workspace (pretrained, or taught a user's proteins), finished
    ones only (a run in progress has no config.json yet); not the demo."""
    folder = subdir("backbones", root)
    return sorted(p for p in folder.iterdir()
                  if p.name != DEMO_BACKBONE and (p / "config.json").is_file())


def gpu_memory_gb() -> float | None:
    if not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_properties(0).total_memory / 2**30


# written by benchmarks/strategies.py; shipped inside the package as package data
STRATEGY_RESULTS = Path(__file__).resolve().parent / "strategies" / "comparison.json"


def strategy_advice(path: Path = STRATEGY_RESULTS) -> str | None:
    """The one-line recommendation of the latest strategy comparison, if one was run."""
    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    advice = results.get("recommendation", {}).get("text")
    if not advice:
        return None
    return (f"{advice} Measured {results.get('date', '')} with {results.get('seeds')} seeds on "
            f"a {results.get('backbone', 'small')} backbone: see benchmarks/STRATEGIES.md.")
