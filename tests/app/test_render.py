"""Render helpers that decide what a person reads."""

from __future__ import annotations

from ui.render import reference_delta


def test_the_badge_beside_the_test_score_carries_the_verdict():
    for verdict, colour in (("better", "green"), ("worse", "red"), ("within noise", "gray")):
        delta, shown_colour = reference_delta({"vs_reference": {"verdict": verdict}},
                                              0.9, 0.793)
        assert shown_colour == colour and delta.startswith("+0.107")
    assert "within noise" in reference_delta({"vs_reference": {"verdict": "within noise"}},
                                             0.9, 0.8)[0]
    assert reference_delta({}, None, 0.8) == (None, "off")
