from __future__ import annotations

import optuna
import pytest

from nas_core.modeling.architecture import Architecture
from nas_core.search.space import SearchSpace, suggest_architecture
from nas_core.search.study import make_sampler, safe_name


def test_space_round_trips_through_json():
    space = SearchSpace(backbones=("esm2_t6_8M",), adaptations=("lora",), lora_ranks=(8,),
                        max_parameters=5_000_000)
    again = SearchSpace.from_dict(__import__("json").loads(space.to_json()))
    assert again == space


@pytest.mark.parametrize("kwargs,message", [
    ({"backbones": ()}, "at least one backbone"),
    ({"adaptations": ("prefix",)}, "not allowed"),
    ({"lr_range": (1e-2, 1e-4)}, "above high"),
    ({"lr_range": (0.0, 1e-3)}, "log scales"),
    ({"contrastive_weight_range": (0.0, 2.0)}, "lambda lies in"),
    ({"batch_sizes": (0,)}, "positive values"),
])
def test_bad_spaces_are_refused_with_the_fix(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SearchSpace(**kwargs)


def test_parameter_budget_cuts_depth_and_excludes_backbones():
    space = SearchSpace(backbones=("esm2_t6_8M", "esm2_t12_35M"), max_parameters=20_000_000)
    usable = space.usable_backbones()
    assert set(usable) == {"esm2_t6_8M", "esm2_t12_35M"}
    low, high = space.depth_bounds(usable["esm2_t12_35M"])
    assert low == 1 and high < 12
    assert usable["esm2_t12_35M"].parameters_at_depth(high) <= 20_000_000
    assert usable["esm2_t12_35M"].parameters_at_depth(high + 1) > 20_000_000
    with pytest.raises(ValueError, match="no backbone fits"):
        SearchSpace(backbones=("esm2_t12_35M",), max_parameters=100_000).usable_backbones()


def test_pinned_dimensions_are_not_searched():
    space = SearchSpace(backbones=("esm2_t6_8M",), layers_range=(3, 3), adaptations=("lora",),
                        lora_ranks=(8,), lora_alpha_ratios=(2.0,), lora_targets=("query,value",),
                        poolings=("mean",), head_layers_range=(1, 1), head_widths=(128,),
                        activations=("gelu",), batch_sizes=(16,),
                        contrastive_weight_range=(0.0, 0.0), heads_kept=(1.0,), ffn_kept=(1.0,))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    arch = suggest_architecture(trial, space)
    assert set(trial.params) == {"lora_dropout", "dropout", "lr", "weight_decay"}
    assert (arch.n_layers, arch.adaptation, arch.lora_rank, arch.lora_alpha) == (3, "lora", 8,
                                                                                   16.0)
    assert arch.contrastive_weight == 0.0
    assert "ESM-2 8M cut to 3 of 6 layers, LoRA rank 8 on query/value, mean pooling, one " \
           "hidden layer of 128 (gelu)" in arch.describe()


def test_every_dimension_is_sampled_over_many_trials():
    space = SearchSpace(backbones=("esm2_t6_8M", "esm2_t12_35M"))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen: dict[str, set] = {"adaptation": set(), "pooling": set(), "backbone": set(),
                            "heads_kept": set(), "ffn_kept": set()}
    for _ in range(120):
        arch = suggest_architecture(study.ask(), space)
        seen["adaptation"].add(arch.adaptation)
        seen["heads_kept"].add(arch.heads_kept)
        seen["ffn_kept"].add(arch.ffn_kept)
        if arch.adaptation == "frozen":  # nothing trained in the backbone: nothing to prune
            assert not arch.compacted
        seen["pooling"].add(arch.pooling)
        seen["backbone"].add(arch.backbone)
        assert 1 <= arch.n_layers <= (6 if arch.backbone == "esm2_t6_8M" else 12)
        if arch.adaptation == "partial":
            assert 1 <= arch.finetune_layers <= arch.n_layers
    assert seen["adaptation"] == {"frozen", "lora", "dora", "ia3", "partial", "full"}
    assert seen["heads_kept"] == {1.0, 0.75, 0.5}
    assert seen["ffn_kept"] == {1.0, 0.75, 0.5, 0.25}
    assert seen["pooling"] == {"mean", "cls", "attention"}
    assert len(seen["backbone"]) == 2


def test_architecture_round_trip():
    arch = Architecture(backbone="esm2_t6_8M", n_layers=2, adaptation="partial",
                        finetune_layers=1, contrastive_weight=0.3)
    assert Architecture.from_dict(arch.to_dict()) == arch
    assert "contrastive loss weight 0.30" in arch.describe()


def test_study_names_never_share_a_folder():
    names = ["exp 1", "exp/1", "exp_1", "exp_1-" + "0" * 12, "..", "ünïcode"]
    folders = [safe_name(n) for n in names]
    assert len(set(folders)) == len(names), folders
    assert safe_name("exp_1") == "exp_1"  # a safe name keeps its folder (existing studies)
    assert all("/" not in f and f not in (".", "..") for f in folders)


@pytest.mark.parametrize("sampler", ["tpe", "random", "nsga2", "gp", "rl"])
def test_every_strategy_samples_heads_and_width(sampler):
    space = SearchSpace(backbones=("esm2_t6_8M",), adaptations=("lora", "full"))
    study = optuna.create_study(sampler=make_sampler(sampler, 0), direction="maximize")
    seen = set()
    for i in range(12):
        trial = study.ask()
        arch = suggest_architecture(trial, space)
        seen.add((arch.heads_kept, arch.ffn_kept))
        assert {"heads_kept", "ffn_kept"} <= set(trial.params)
        study.tell(trial, float(i % 5))
    assert len(seen) > 1, seen
