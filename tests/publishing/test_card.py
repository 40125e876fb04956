"""User strings that reach code in a model card are escaped; unsafe study names are refused at
the edge (issue 30, item 12)."""

from __future__ import annotations

import ast
import re
from dataclasses import replace
from pathlib import Path

import pytest

from nas_core.common.report import load_report
from nas_core.publishing.card import render_card
from nas_core.search.config import SearchConfig

REPORT = Path(__file__).parents[1] / "common" / "data" / "report_v1_classification.json"
INJECTION = 'x"; __import__("os").system("id"); y = "'


def test_a_name_placed_in_the_cards_code_stays_a_string():
    report = load_report(REPORT)
    assert report is not None
    card = render_card(replace(report, study=INJECTION), repo_id=f"your-name/{INJECTION}")
    code = re.search(r"```python\n(.*?)```", card, re.S)
    assert code is not None
    tree = ast.parse(code.group(1))  # valid Python, whatever the name
    assigned = next(n for n in tree.body if isinstance(n, ast.Assign)
                    and n.targets[0].id == "repo")  # type: ignore[attr-defined]
    assert ast.literal_eval(assigned.value) == f"your-name/{INJECTION}"
    calls = [n.func for n in ast.walk(tree) if isinstance(n, ast.Call)]
    assert not any(isinstance(f, ast.Name) and f.id == "__import__" for f in calls)


@pytest.mark.parametrize("name, words", [(INJECTION, "may not contain"),
                                         ("a" * 300, "keep it to 100"),
                                         ("runs/../../etc", "may not contain")])
def test_unsafe_study_names_are_refused_with_the_fix(name, words):
    with pytest.raises(ValueError, match=words):
        SearchConfig(name)
    assert SearchConfig("GFP round 2 (v1.5)").study_name == "GFP round 2 (v1.5)"
