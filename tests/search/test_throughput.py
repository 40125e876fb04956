"""The run-time estimate: measured once per backbone and adaptation on this machine, then
remembered; the Quick preset cut to fit its promise (issue 17, items 1 and 3). How close the
estimate comes to the real time is a benchmark (benchmarks/run.py --only estimate), not a
timed test."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import nas_core.search.throughput as throughput_mod
from nas_core.modeling.batches import effective_batch, length_batches
from nas_core.search.presets import fit_to_time, presets
from nas_core.search.space import SearchSpace
from nas_core.search.throughput import (
    Estimate,
    StepTimes,
    Throughput,
    estimate,
    trial_seconds,
)


def test_step_times_are_measured_once_and_remembered(workspace, tiny_backbone, monkeypatch):
    table = Throughput()
    first = table.get(str(tiny_backbone), 2, "lora", 8, 30.0, "cpu")
    assert first.train_s > 0 and first.eval_s > 0 and first.build_s > 0
    assert first.length == 32 and first.batch == 8  # measured at the length's bucket
    monkeypatch.setattr(throughput_mod, "measure", lambda *a, **k: pytest.fail("measured again"))
    assert Throughput().get(str(tiny_backbone), 2, "lora", 8, 27.0, "cpu") == first
    (workspace / "throughput.json").write_text("{not json")  # a damaged file: measured anew
    monkeypatch.undo()
    assert Throughput().get(str(tiny_backbone), 2, "lora", 8, 27.0, "cpu").train_s > 0


def test_the_estimate_follows_the_budget_and_the_adaptation(workspace, tiny_backbone):
    space = SearchSpace(backbones=(str(tiny_backbone),), adaptations=("lora",),
                        max_epochs_range=(4, 4), batch_sizes=(8,))
    table = Throughput()
    one = estimate(space, 2, 200, 40, 30.0, "cpu", table)
    assert one.measured and 0 < one.low < one.high
    assert estimate(space, 4, 200, 40, 30.0, "cpu", table).high == pytest.approx(
        2 * one.high, rel=1e-6)
    longer = replace(space, max_epochs_range=(8, 8))
    assert estimate(longer, 2, 200, 40, 30.0, "cpu", table).per_trial > one.per_trial
    times = table.get(str(tiny_backbone), 2, "lora", 8, 30.0, "cpu")
    # a frozen trial trains only its head on the cached representations
    assert trial_seconds(times, "frozen", 4, 200, 40) < trial_seconds(times, "lora", 4, 200, 40)
    # a backbone not downloaded yet is guessed from its size, and says so
    rough = estimate(replace(space, backbones=("esm2_t6_8M",)), 2, 200, 40, 30.0, "cpu",
                     table)
    assert not rough.measured and rough.high > 0


def test_quick_is_cut_to_fit_its_time_and_says_so(tiny_backbone):
    quick = presets((str(tiny_backbone),))["Quick"]
    assert quick.frozen_first >= 20 and quick.n_trained >= 4  # many cheap heads, then more

    def estimate_for(space, n, frozen):  # a frozen head 0.1 s, other trials 10 s per epoch
        seconds = frozen * 0.1 + (n - frozen) * space.max_epochs_range[1] * 10.0
        return Estimate(seconds * 0.4, seconds, seconds / n, True)

    fitted, expected = fit_to_time(quick, estimate_for, 120)
    assert expected.high <= 120
    assert fitted.frozen_first == quick.frozen_first  # the cheap trials are kept
    assert (fitted.n_trained, fitted.space.max_epochs_range[1]) == (2, 5)
    assert "finish within 2 min" in fitted.description
    assert f"{quick.frozen_first} frozen-backbone heads" in fitted.description
    assert "then 2 trials" in fitted.description and "up to 5 epochs" in fitted.description
    roomy, _ = fit_to_time(quick, estimate_for, 10_000)
    assert roomy.n_trials == quick.n_trials and roomy.space == quick.space
    tight, slow = fit_to_time(quick, estimate_for, 10)
    assert (tight.n_trained, tight.space.max_epochs_range[1]) == (2, 2)
    assert "even it takes longer than" in tight.description and slow.high > 10


def test_frozen_trials_first_are_counted_at_their_own_cost(workspace, tiny_backbone):
    space = SearchSpace(backbones=(str(tiny_backbone),), adaptations=("frozen", "lora"),
                        max_epochs_range=(4, 4), batch_sizes=(8,))
    table = Throughput()
    plain = estimate(space, 10, 200, 40, 30.0, "cpu", table)
    first = estimate(space, 10, 200, 40, 30.0, "cpu", table, frozen_first=8)
    assert first.high < plain.high  # eight frozen heads cost less than eight mixed trials
    assert estimate(space, 10, 200, 40, 30.0, "cpu", table, frozen_first=10).high < first.high


def test_the_estimate_counts_the_steps_that_filled_batches_make():
    """Issue 33: the learning-rate rule changes no step count, and the estimate counts the
    steps that filling makes at the data's own length (before, 20-residue peptides were
    counted as 32-residue ones: half as many steps again as training made), each step timed
    at its length bucket with about the same tokens."""
    times = StepTimes(train_s=1.0, eval_s=0.0, build_s=0.0, batch=0, length=0)
    for residues in (12, 20, 30, 60, 300):
        lengths = np.full(1000, residues + 2)  # with <cls> and <eos>
        real = len(length_batches(lengths, 32, max_tokens=32768, min_tokens=4096))
        timed = effective_batch(32, throughput_mod._length_bucket(residues) + 2, 4096)
        assert abs(timed * (throughput_mod._length_bucket(residues) + 2) - 4096) <= 410 or \
            timed == 32  # a timed step holds what a real one does
        counted = trial_seconds(replace(times, batch=timed), "lora", 1, 1000, 0,
                                effective_batch(32, residues + 2, 4096))
        assert abs(counted - real) <= 1, (residues, counted, real)
