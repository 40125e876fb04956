"""No page shows a visitor a traceback: a short message with an error id, the details in the
server log; an administrator (or the workstation's own user) sees them (issue 30, item 13)."""

from __future__ import annotations

import logging

import pytest
from streamlit.testing.v1 import AppTest

from nas_core.common.access import Person
from nas_core.data.store import DatasetStore
from tests.helpers import ROOT

SECRET = "/srv/esm-nas/private/path"


def broken_data_page(monkeypatch, person: Person | None, mode: str) -> AppTest:
    import ui.identity as identity

    def boom(self):
        raise RuntimeError(f"unexpected failure reading {SECRET}")

    monkeypatch.setattr(DatasetStore, "list", boom)
    monkeypatch.setattr(identity, "mode", lambda: mode)
    monkeypatch.setattr(identity, "_from_proxy", lambda: person)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("app_pages/data.py").run()
    return at


@pytest.mark.usefixtures("workspace")
def test_a_visitor_sees_an_error_id_and_no_traceback(monkeypatch, caplog):
    with caplog.at_level(logging.ERROR, logger="esm_nas.app"):
        at = broken_data_page(monkeypatch, Person("visitor@lab"), "proxy")
    assert not at.exception  # no traceback element
    (message,) = [e.value for e in at.error if "Something went wrong" in e.value]
    error_id = message.split("(error ")[1][:8]
    shown = " ".join(str(e.value) for e in [*at.error, *at.markdown, *at.caption])
    assert SECRET not in shown
    logged = "\n".join(r.getMessage() + str(r.exc_info) for r in caplog.records)
    assert error_id in logged and SECRET in logged  # the details went to the server log


@pytest.mark.usefixtures("workspace")
def test_an_administrator_sees_the_details(monkeypatch):
    at = broken_data_page(monkeypatch, Person("boss@lab", admin=True), "proxy")
    assert any("Something went wrong" in e.value for e in at.error)
    assert at.exception and SECRET in at.exception[0].message
