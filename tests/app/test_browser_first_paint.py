"""Issue 31, item 1 in a real browser: a fresh server draws Home, and Monitor, before it loads
the engine (the job manager, with PyTorch, starts in the background after the first page);
the times are written to test-artifacts/first_paint.json (their goal is measured in
benchmarks/first_paint.py, not asserted here)."""

from __future__ import annotations

import json
import time

import pytest

from tests.app.live import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, require_browser, streamlit_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.mark.parametrize(("name", "path", "text"), [
    ("home", "", "Find the best protein language model"),
    ("monitor", "monitor", "No search yet")])
def test_a_fresh_server_draws_the_page_before_the_engine_loads(tmp_path, name, path, text):
    from playwright.sync_api import sync_playwright

    require_browser()
    studies = tmp_path / "workspace" / "studies.db"  # made by the job manager
    with streamlit_server(tmp_path) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            started = time.perf_counter()
            page.goto(f"{url}/{path}")
            page.get_by_text(text).first.wait_for(timeout=60_000)
            seconds = round(time.perf_counter() - started, 2)
            assert not studies.exists()  # drawn without the job manager (and torch)
            deadline = time.monotonic() + 90  # which then starts, unasked, in the background
            while not studies.exists():
                assert time.monotonic() < deadline, "the job manager never started"
                time.sleep(0.5)
        finally:
            browser.close()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    record = ARTIFACTS / "first_paint.json"
    timings = json.loads(record.read_text()) if record.is_file() else {}
    record.write_text(json.dumps({**timings, name: seconds}, indent=1))
