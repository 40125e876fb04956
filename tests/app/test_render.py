"""Render helpers that decide what a person reads."""

from __future__ import annotations

from nas_core.common.report import Comparison
from ui.render import reference_delta


def verdict(word: str) -> Comparison:
    return Comparison("roc_auc", 0.1, [0.05, 0.15], word)


def test_the_badge_beside_the_test_score_carries_the_verdict():
    for word, colour in (("better", "green"), ("worse", "red"), ("within noise", "gray")):
        delta, shown_colour = reference_delta(verdict(word), 0.9, 0.793)
        assert shown_colour == colour and delta is not None and delta.startswith("+0.107")
    assert "within noise" in (reference_delta(verdict("within noise"), 0.9, 0.8)[0] or "")
    assert reference_delta(None, None, 0.8) == (None, "off")
    assert reference_delta(None, 0.9, 0.8)[1] == "gray"
