"""A real browser on a real server: `streamlit run app.py` driven by Playwright in Debian's
Chromium (no browser download). Saves a screenshot in test-artifacts/."""

from __future__ import annotations

import re
import shutil
import time
from contextlib import contextmanager

import pytest

from tests.app.live import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    require_browser,
    streamlit_server,
)
from tests.fakehub import FakeHub
from tests.helpers import ASSETS, flip_subset, pair_subset

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def hub():
    with FakeHub() as fake:
        yield fake


@pytest.fixture
def server(tmp_path, hub):
    require_browser()
    with streamlit_server(tmp_path, env={"HF_ENDPOINT": hub.url,
                                         "HF_HUB_DISABLE_XET": "1"}) as url:
        yield url


def settled(page) -> None:
    """Wait until the script has finished running (a rerun redraws open dropdowns shut and
    replaces form fields): the app's own script state, as Streamlit's end-to-end tests wait."""
    page.wait_for_selector("[data-testid='stApp'][data-test-connection-state='CONNECTED']")
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']",
                           timeout=120_000)
    page.wait_for_timeout(200)


def choose(page, label: str, option: str) -> None:
    """Pick ``option`` (a part of its text) in the selectbox labelled ``label``."""
    settled(page)
    box = page.get_by_test_id("stSelectbox").filter(has_text=label).first
    choice = page.get_by_role("option", name=option).first
    for _ in range(3):  # right after typing in a form field, the first click only blurs it
        box.click()
        try:
            choice.wait_for(timeout=3_000)
            break
        except Exception:
            continue
    choice.click()
    settled(page)


def nav(page, name: str) -> None:
    """Click a page in the sidebar navigation (keeps the browser session)."""
    page.get_by_test_id("stSidebarNavLink").filter(has_text=name).click()


def sign_in(page, who: str) -> None:
    name = page.get_by_role("textbox", name="Your name")
    name.fill(who)
    name.press("Enter")
    page.wait_for_load_state("networkidle")


def search_and_open_results(page) -> None:
    """Search the dataset just stored with two trials, wait on Monitor, open its results."""
    nav(page, "Search")
    expect_ = _expect()
    expect_(page.get_by_role("heading", name="Search")).to_be_visible()
    trials = page.get_by_role("spinbutton", name="Trials")
    trials.fill("2")
    trials.press("Enter")
    page.get_by_role("button", name="Start").click()
    expect_(page.get_by_text("Follow it live on the Monitor page")).to_be_visible()
    nav(page, "Monitor")
    expect_(page.get_by_role("button", name="See the results")).to_have_count(
        1, timeout=300_000)
    page.get_by_role("button", name="See the results").click()


@contextmanager
def chromium_page(failure: str):
    """A page of headless Chromium; a screenshot ``failure`` in test-artifacts/ on error."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    _expect().set_options(timeout=60_000)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        try:
            yield page
        except Exception:
            page.screenshot(path=str(ARTIFACTS / failure), full_page=True)
            raise
        finally:
            browser.close()


def _expect():
    from playwright.sync_api import expect

    return expect


COLOURED_PIXELS = """(el) => {
  const canvas = el.querySelector('canvas');
  if (!canvas) {  // SVG renderer: count drawn line segments instead
    return el.querySelectorAll('g.mark-line path, g.mark-symbol path').length * 100;
  }
  const ctx = canvas.getContext('2d');
  const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  let n = 0;
  for (let i = 0; i < data.length; i += 4) {
    const [r, g, b, a] = [data[i], data[i + 1], data[i + 2], data[i + 3]];
    if (a > 200 && Math.max(r, g, b) - Math.min(r, g, b) > 60) n++;
  }
  return n;
}"""


def test_upload_search_and_watch_it_in_a_real_browser(server, hub):
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    expect.set_options(timeout=60_000)  # the first page of a fresh server on a busy machine
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        try:
            # a fresh server opened straight at /search (issue 17, item 7): page titles in
            # the sidebar, the name box, and the page asks for data
            page.goto(f"{server}/search")
            expect(page.get_by_text("Add a dataset first.")).to_be_visible()
            links = page.get_by_test_id("stSidebarNavLink")
            expect(links).to_have_text([re.compile(f"{title}$") for title in (
                "Home", "Data", "Search", "Monitor", "Results", "Predict",
                "Test these next", "Teach a backbone")])  # after the icon
            expect(page.get_by_role("textbox", name="Your name")).to_be_visible()
            nav(page, "Home")
            expect(page.get_by_text("Find the best protein language model")).to_be_visible()
            nav(page, "Data")
            # two datasets in a row (issue 31, item 4): each upload is its own dataset, the
            # second never read with the first as if they were a FLIP layout
            upload = page.locator("input[type=file]").first
            upload.set_input_files(str(ASSETS / "anticancer_vs_random.csv"))
            expect(page.get_by_text("anticancer_vs_random is ready and stored")).to_be_visible()
            upload.set_input_files(str(ASSETS / "amp_vs_transmembrane.csv"))
            expect(page.get_by_text("amp_vs_transmembrane is ready and stored")).to_be_visible()
            expect(page.get_by_text("which file holds the labels")).to_have_count(0)
            name = page.get_by_role("textbox", name="Your name")
            name.fill("alice")
            name.press("Enter")
            page.wait_for_load_state("networkidle")
            nav(page, "Search")
            expect(page.get_by_role("heading", name="Search")).to_be_visible()
            trials = page.get_by_role("spinbutton", name="Trials")
            trials.fill("2")
            trials.press("Enter")
            start = page.get_by_role("button", name="Start")
            expect(start).to_be_enabled()
            start.click()
            expect(page.get_by_text("Follow it live on the Monitor page")).to_be_visible()
            nav(page, "Monitor")
            expect(page.get_by_text("Loss per epoch").first).to_be_attached(timeout=120_000)
            page.reload()  # a reload mid-run finds the same live job
            expect(page.get_by_text("Loss per epoch").first).to_be_attached(timeout=120_000)
            chart = page.locator("[data-testid='stVegaLiteChart']").first
            deadline = time.monotonic() + 180
            while True:  # the fragment refreshes every 2 s until the job is finished
                finished = page.get_by_text("See the results").count() > 0
                drawn = chart.evaluate(COLOURED_PIXELS) if chart.count() else 0
                if finished and drawn > 100:
                    break
                assert time.monotonic() < deadline, f"finished={finished}, pixels={drawn}"
                page.wait_for_timeout(1000)
            page.screenshot(path=str(ARTIFACTS / "monitor.png"), full_page=True)
            # once the job is finished the page is drawn once, with no stale copy of the
            # charts or the link left from the live refreshes
            results = page.get_by_role("button", name="See the results")
            expect(results).to_have_count(1, timeout=30_000)
            expect(page.get_by_text("Loss per epoch", exact=True)).to_have_count(1)
            results.click()
            expect(page.get_by_text("Best architecture", exact=True)).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "results.png"), full_page=True)
            # a longer search, cancelled once a trial has finished: "cancelling" at once,
            # then its finished trial is tested and exported from Results
            nav(page, "Search")
            trials = page.get_by_role("spinbutton", name="Trials")
            trials.fill("30")
            trials.press("Enter")
            study = page.get_by_role("textbox", name="Study name")
            study.fill("walk-cancelled")
            study.press("Enter")
            page.get_by_role("button", name="Start").click()
            expect(page.get_by_text("Follow it live on the Monitor page")).to_be_visible()
            nav(page, "Monitor")
            page.get_by_test_id("stSelectbox").filter(has_text="Job").click()
            page.get_by_role("option", name="walk-cancelled").click()
            expect(page.get_by_text("Best validation ROC-AUC so far")).to_be_attached(
                timeout=180_000)  # one trial finished
            page.get_by_role("button", name="Cancel").click()
            expect(page.get_by_text("Cancelling:").or_(
                page.get_by_text("This search stopped with"))).to_be_visible()
            expect(page.get_by_text("This search stopped with")).to_be_visible(timeout=120_000)
            # Monitor opens Results on this search, not on the one finished before (issue 31,
            # item 6): its state, and none of the other search's numbers
            page.get_by_role("button", name="Test and export what it found").click()
            expect(page.get_by_text("walk-cancelled stopped (cancelled)")).to_be_visible()
            expect(page.get_by_text("Best architecture", exact=True)).to_have_count(0)
            page.get_by_role("button", name="Test and export the best").click()
            expect(page.get_by_text("the budget was not spent")).to_be_visible(timeout=120_000)
            page.screenshot(path=str(ARTIFACTS / "results-cancelled.png"), full_page=True)
            # two finished searches: switching between them carries nothing over (issue 31,
            # item 3): a name typed for one model is not offered for the other, each shows
            # its own numbers, and coming back starts its form afresh
            settled(page)  # the page reruns once the export is in place
            repo = page.get_by_role("textbox", name="Repository name").first
            expect(repo).not_to_have_value("")
            default_name = repo.input_value()
            repo.fill("typed-for-walk-cancelled")
            choose(page, "Search", "amp_vs_transmembrane-")
            expect(page.get_by_text("the budget was not spent")).to_have_count(0)
            expect(page.get_by_text("2 / 2", exact=True)).to_be_visible()
            expect(repo).to_have_value(default_name)
            choose(page, "Search", "walk-cancelled")
            expect(page.get_by_text("the budget was not spent")).to_be_visible()
            expect(repo).to_have_value(default_name)
            # publish that model to the (loopback) Hub with the visitor's token; Enter in the
            # token box does not publish, the button does
            # (the best model's form comes first; the ensemble's has its own below)
            token = page.get_by_role("textbox",
                                     name="Hugging Face token (write access)").first
            token.fill(hub.token)
            expect(token).to_have_value(hub.token)
            token.press("Enter")
            page.wait_for_timeout(1000)
            assert not hub.repos  # nothing was sent on Enter
            page.get_by_role("button", name="Publish", exact=True).first.click()
            expect(page.get_by_text(re.compile(r"^Published:"))).to_be_visible(timeout=120_000)
            assert list(hub.repos) == ["alice/amp-vs-transmembrane-esm2-classifier"]
            # and predict new sequences with a model of this workspace
            nav(page, "Predict")
            page.get_by_role("textbox", name="FASTA, or one sequence per line").fill(
                "pep1,GLFDIIKKIAESF\npep2,AAGAATVLLVIVLLAGSYLAVLA\n")
            page.get_by_role("button", name="Predict", exact=True).click()
            expect(page.get_by_text("2 prediction(s)")).to_be_visible(timeout=120_000)
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "failure.png"), full_page=True)
            raise
        finally:
            browser.close()
    assert (ARTIFACTS / "monitor.png").stat().st_size > 10_000
    shutil.rmtree(ARTIFACTS / "tmp", ignore_errors=True)


def test_a_per_residue_dataset_in_a_real_browser(server, tmp_path):
    """The FLIP files dropped together, a search, the residue-by-residue results with the
    track plot drawn, and a prediction one row per residue."""
    from playwright.sync_api import expect

    files = flip_subset(tmp_path / "flip", (80, 20, 30))  # the shipped layout, fewer chains
    with chromium_page("failure-per-residue.png") as page:
        page.goto(f"{server}/data")
        page.get_by_text("Per-residue labels in the FLIP / biotrainer layout").click()
        page.locator("input[type=file]").nth(1).set_input_files(
            [str(f) for f in reversed(files)])
        expect(page.get_by_text("Name this dataset")).to_be_visible()
        flip_name = page.get_by_role("textbox", name="Name of this dataset")
        flip_name.fill("ss3-walk")
        flip_name.press("Enter")
        expect(page.get_by_text("is ready and stored")).to_be_visible(timeout=120_000)
        expect(page.get_by_text("Task, per residue")).to_be_visible()
        expect(page.get_by_text("Class balance (residues)")).to_be_attached()
        sign_in(page, "carol")
        search_and_open_results(page)
        expect(page.get_by_text("Held-out proteins, residue by residue")).to_be_visible(
            timeout=120_000)
        track = page.locator("[data-testid='stVegaLiteChart']").last
        expect(track).to_be_visible()
        deadline = time.monotonic() + 60
        while track.evaluate(COLOURED_PIXELS) < 100:  # coloured class tracks are drawn
            assert time.monotonic() < deadline, "the track plot stayed empty"
            page.wait_for_timeout(500)
        page.screenshot(path=str(ARTIFACTS / "results-per-residue.png"), full_page=True)
        nav(page, "Predict")
        page.get_by_role("textbox", name="FASTA, or one sequence per line").fill(
            ">p1\nMKVLAAGIWKKPLLE\n")
        page.get_by_role("button", name="Predict", exact=True).click()
        expect(page.get_by_text("one row per residue (15 rows)")).to_be_visible(
            timeout=120_000)


def test_protein_pairs_in_a_real_browser(server, tmp_path):
    """Issue 32: the pairs file and the proteins' FASTA dropped together on Data, a search,
    Results naming the split (both partners unseen), and Predict for pairs listed by ID."""
    from playwright.sync_api import expect

    pairs, proteins = pair_subset(tmp_path / "pairs")
    with chromium_page("failure-pairs.png") as page:
        page.goto(f"{server}/data")
        page.get_by_text("Protein pairs listed by ID").click()
        page.locator("input[type=file]").nth(2).set_input_files([str(proteins), str(pairs)])
        expect(page.get_by_text("is ready and stored")).to_be_visible(timeout=120_000)
        expect(page.get_by_text("Task, per pair")).to_be_visible()
        expect(page.get_by_text(re.compile("Split: both partners unseen"))).to_be_visible()
        sign_in(page, "dana")
        search_and_open_results(page)
        expect(page.get_by_text("Split: both partners unseen.")).to_be_visible(
            timeout=120_000)
        expect(page.get_by_text("Best architecture", exact=True)).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "results-pairs.png"), full_page=True)
        nav(page, "Predict")
        settled(page)
        page.get_by_text("Pairs listed by ID (pair models)").click()
        settled(page)
        page.get_by_text("Upload a file").click()
        page.locator("input[type=file]").nth(0).set_input_files(str(pairs))
        settled(page)
        page.locator("input[type=file]").nth(1).set_input_files(str(proteins))
        settled(page)
        page.get_by_role("button", name="Predict", exact=True).click()
        lines = len(pairs.read_text().splitlines())
        expect(page.get_by_text(f"{lines} prediction(s)")).to_be_visible(timeout=120_000)
        expect(page.get_by_text("unlike_training_2").first).to_be_visible()
