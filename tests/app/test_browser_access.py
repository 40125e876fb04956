"""Access, tried as an attacker would in a real browser against a real ``streamlit run app.py``:
every page URL with sign-in configured (a loopback OpenID Connect provider), two browsers on one
workstation claiming the same name, and names and labels written to look like Markdown links
and images."""

from __future__ import annotations

import re
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest

from tests.app.live import ARTIFACTS, PAGES, chromium, free_port, require_browser, streamlit_server
from tests.fakeoidc import CLIENT_ID, CLIENT_SECRET, FakeOIDC
from tests.helpers import ASSETS, ROOT, store_example

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SIGNED_OUT = "sign in with your institutional account"
TITLES = {p: p.title() for p in PAGES}


def _secrets(app_url: str, provider: FakeOIDC) -> str:
    return f"""
[auth]
redirect_uri = "{app_url}/oauth2callback"
cookie_secret = "{secrets.token_hex(16)}"
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
server_metadata_url = "{provider.metadata_url}"

[access]
admins = ["admin@lab.example"]
"""


def _sign_in(page, app_url: str, email: str, name: str) -> None:
    from playwright.sync_api import expect

    page.goto(app_url)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Lab sign-in")).to_be_visible()
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Name").fill(name)
    page.get_by_role("button", name="Approve").click()
    page.wait_for_url(f"{app_url}/**")


def test_every_page_url_needs_sign_in(tmp_path, workspace):
    """Each page opened directly (the first request after a start, then the others) shows
    nothing of the instance before sign-in, and the page itself after it."""
    from playwright.sync_api import expect

    require_browser()
    expect.set_options(timeout=60_000)
    store_example(as_name="secret-peptides.csv")
    port = free_port()
    app_url = f"http://127.0.0.1:{port}"
    with FakeOIDC() as provider, \
            streamlit_server(tmp_path, port=port, secrets=_secrets(app_url, provider)), \
            chromium() as browser:
        for name in PAGES:  # signed out, each in a fresh browser: no cookie, no session
            context = browser.new_context()
            page = context.new_page()
            page.set_default_timeout(60_000)
            page.goto(f"{app_url}/{name}")
            expect(page.get_by_text(SIGNED_OUT)).to_be_visible()
            page.wait_for_load_state("networkidle")
            assert page.get_by_role("heading", name=TITLES[name], exact=True).count() == 0, name
            assert page.get_by_text("secret-peptides").count() == 0, name
            assert page.locator("input[type=file]").count() == 0, name
            assert page.get_by_test_id("stSidebarNavLink").count() == 0, name
            context.close()

        context = browser.new_context()
        page = context.new_page()
        page.set_default_timeout(60_000)
        _sign_in(page, app_url, "alice@lab.example", "Alice")
        expect(page.get_by_text("Signed in as Alice")).to_be_visible()
        for name in PAGES:  # signed in: the cookie opens every URL
            page.goto(f"{app_url}/{name}")
            expect(page.get_by_role("heading", name=TITLES[name], exact=True)).to_be_visible()
            assert page.get_by_text(SIGNED_OUT).count() == 0
        page.goto(f"{app_url}/data")
        expect(page.get_by_text("secret-peptides").first).to_be_attached()
        context.close()

        # an account that gives neither e-mail nor name is refused, never called "None"
        context = browser.new_context()
        page = context.new_page()
        page.set_default_timeout(60_000)
        _sign_in(page, app_url, "", "")
        expect(page.get_by_text("neither an e-mail address nor a name")).to_be_visible()
        page.goto(f"{app_url}/search")
        expect(page.get_by_text("neither an e-mail address nor a name")).to_be_visible()
        assert page.get_by_role("heading", name="Search", exact=True).count() == 0
        assert page.get_by_text("None").count() == 0
        context.close()
        assert [login["email"] for login in provider.logins] == ["alice@lab.example", ""]


class _Pixel:
    """A loopback server that counts requests: a Markdown image that rendered would fetch it."""

    def __init__(self) -> None:
        hits = self.hits = []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                hits.append(self.path)
                self.send_response(204)
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}/pixel"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


NO_ACTIVE_MARKUP = """() => ({
  links: [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href'))
           .filter(h => /javascript:|pixel/i.test(h)),
  images: [...document.querySelectorAll('img')].map(i => i.src).filter(s => /pixel/.test(s)),
})"""


def _no_active_markup(page) -> None:
    found = page.evaluate(NO_ACTIVE_MARKUP)
    assert found == {"links": [], "images": []}, found


def _shows(page, text: str) -> None:
    """``text`` appears as those characters (invisible word joiners aside)."""
    page.wait_for_function("(t) => document.body.innerText.replaceAll('\\u2060', '')"
                           ".includes(t)", arg=text)


def test_two_browsers_one_name_and_markdown_names(tmp_path):
    """On a workstation the browser, not the typed name, owns a job; the owner keeps name and
    Cancel over a reload; names and labels that look like Markdown show as plain text."""
    from playwright.sync_api import expect

    require_browser()
    expect.set_options(timeout=60_000)
    pixel = _Pixel()
    frame = pd.read_csv(ASSETS / "amp_vs_transmembrane.csv")
    image_label = f"![]({pixel.url})"
    frame["label"] = frame["label"].map({"TM": image_label}).fillna(frame["label"])
    upload = tmp_path / "[data](javascript:alert(1)).csv"
    frame.to_csv(upload, index=False)
    owner = "[alice](javascript:alert(2))"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with streamlit_server(tmp_path) as app_url, chromium() as browser:
        first = browser.new_context().new_page()
        first.set_default_timeout(60_000)
        try:
            first.goto(app_url)
            name_box = first.get_by_role("textbox", name="Your name")
            name_box.fill(owner)
            name_box.press("Enter")
            first.wait_for_load_state("networkidle")
            first.get_by_test_id("stSidebarNavLink").filter(has_text="Data").click()
            first.locator("input[type=file]").first.set_input_files(str(upload))
            expect(first.get_by_text("is ready and stored")).to_be_visible()
            _shows(first, "[data](javascript:alert(1)) is ready and stored")
            _shows(first, f"Classes: {image_label} 206")
            _no_active_markup(first)
            first.get_by_test_id("stSidebarNavLink").filter(has_text="Search").click()
            trials = first.get_by_role("spinbutton", name="Trials")
            trials.fill("40")  # still running when the owner cancels it below
            trials.press("Enter")
            start = first.get_by_role("button", name="Start")
            expect(start).to_be_enabled()
            start.click()
            expect(first.get_by_text("Follow it live on the Monitor page")).to_be_visible()

            second = browser.new_context().new_page()  # another browser, same typed name
            second.set_default_timeout(60_000)
            second.goto(app_url)
            other_box = second.get_by_role("textbox", name="Your name")
            other_box.fill(owner)
            other_box.press("Enter")
            second.wait_for_load_state("networkidle")
            second.get_by_test_id("stSidebarNavLink").filter(has_text="Monitor").click()
            _shows(second, f"Started by {owner} (from another browser")
            expect(second.get_by_role("button", name="Cancel")).to_be_disabled()
            _no_active_markup(second)

            first.reload()  # the owner's name and rights survive a reload
            expect(first.get_by_role("textbox", name="Your name")).to_have_value(owner)
            first.get_by_test_id("stSidebarNavLink").filter(has_text="Monitor").click()
            cancel = first.get_by_role("button", name="Cancel")
            expect(cancel).to_be_enabled()
            assert first.get_by_text("from another browser").count() == 0
            cancel.click()
            # (while the page redraws, a stale disabled copy of the button may linger a moment)
            expect(first.get_by_role("button", name="Resume", disabled=False).first
                   ).to_be_visible(timeout=180_000)
            _no_active_markup(first)
            first.screenshot(path=str(ARTIFACTS / "access.png"), full_page=True)
        except Exception:
            first.screenshot(path=str(ARTIFACTS / "access-failure.png"), full_page=True)
            raise
        finally:
            pixel.close()
    assert pixel.hits == []


def test_header_sign_in_is_trusted_only_from_the_proxy(tmp_path, workspace):
    """Issue 30, item 11: with ESM_NAS_USER_HEADER set, a client that adds the header itself
    was signed in as anyone, admin included. Now a server open to the network serves nothing
    until the proxy proves itself with a shared secret; with the secret configured, the
    header alone is refused and the header with the secret signs in."""
    from playwright.sync_api import expect

    require_browser()
    expect.set_options(timeout=60_000)
    env = {"ESM_NAS_USER_HEADER": "X-Forwarded-Email", "ESM_NAS_ADMINS": "admin@lab.example"}
    forged = {"X-Forwarded-Email": "admin@lab.example"}
    secret = secrets.token_urlsafe(24)

    def open_page(browser, url: str, headers: dict):
        context = browser.new_context(extra_http_headers=headers)
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.goto(f"{url}/data")
        return context, page

    with chromium() as browser:
        with streamlit_server(tmp_path / "open", address="0.0.0.0", env=env) as url:
            context, page = open_page(browser, url, forged)
            expect(page.get_by_text("any client could send that header itself")).to_be_visible()
            page.wait_for_load_state("networkidle")
            assert page.get_by_text("Signed in as admin").count() == 0
            assert page.get_by_role("heading", name="Data", exact=True).count() == 0
            context.close()
        with streamlit_server(tmp_path / "secret", address="0.0.0.0",
                              env={**env, "ESM_NAS_PROXY_SECRET": secret}) as url:
            for headers in (forged, {**forged, "X-ESM-NAS-Proxy-Secret": "guessed-" * 4}):
                context, page = open_page(browser, url, headers)
                expect(page.get_by_text("did not come through it")).to_be_visible()
                page.wait_for_load_state("networkidle")
                assert page.get_by_text("Signed in as admin").count() == 0
                context.close()
            context, page = open_page(browser, url, {**forged, "X-ESM-NAS-Proxy-Secret": secret})
            expect(page.get_by_text(re.compile(r"Signed in as admin\W*@lab\.example \(admin\)"))
                   ).to_be_visible()
            expect(page.get_by_role("heading", name="Data", exact=True)).to_be_visible()
            context.close()


class _BrokenHub:
    """A loopback 'Hub' that answers every request with JSON of the wrong shape: the Hub
    client fails in a way no page expects."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                body = b"[]"
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_HEAD = do_GET

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def test_an_unexpected_hub_error_shows_a_visitor_an_error_id_not_a_traceback(tmp_path,
                                                                            workspace):
    """Issue 30, item 13, in a real browser: a visitor (signed in through the proxy, not an
    administrator) predicts with a Hub model while the Hub answers nonsense. The page says
    something went wrong with an error id; no traceback, no server path; the server log has
    the details under that id."""
    from playwright.sync_api import expect

    require_browser()
    expect.set_options(timeout=60_000)
    hub = _BrokenHub()
    env = {"ESM_NAS_USER_HEADER": "X-Forwarded-Email", "HF_ENDPOINT": hub.url,
           "HF_HUB_DISABLE_XET": "1", "HF_HUB_OFFLINE": "0"}
    try:
        with streamlit_server(tmp_path, env=env) as url, chromium() as browser:
            context = browser.new_context(
                extra_http_headers={"X-Forwarded-Email": "visitor@lab.example"})
            page = context.new_page()
            page.set_default_timeout(60_000)
            page.goto(f"{url}/predict")
            page.get_by_text("From the Hugging Face Hub").click()
            repo = page.get_by_role("textbox", name="Hub repository id")
            repo.fill("lab/some-model")
            repo.press("Enter")
            box = page.get_by_role("textbox", name="FASTA, or one sequence per line")
            box.fill("MKTAYIAKQRQISFVKSHFSRQ")
            box.press("Control+Enter")
            page.get_by_role("button", name="Predict", exact=True).click()
            expect(page.get_by_text("Something went wrong")).to_be_visible()
            shown = page.evaluate("() => document.body.innerText")
            error_id = shown.split("(error ")[1][:8]
            for leak in ("Traceback", "site-packages", str(ROOT), str(tmp_path), "File \""):
                assert leak not in shown, leak
            context.close()
        log = (tmp_path / "server.log").read_text()
        assert error_id in log and "Traceback" in log
    finally:
        hub.close()
