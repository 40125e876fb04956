"""Header sign-in is trusted only from the proxy (issue 30, item 11): the rules, without a
server (the browser test runs them in a real one)."""

from __future__ import annotations

import pytest

from nas_core.common.access import (
    listens_on_loopback,
    proxy_secret_matches,
    proxy_setup_problem,
)


@pytest.mark.parametrize(("address", "loopback"), [
    ("127.0.0.1", True), ("127.1.2.3", True), ("localhost", True), ("::1", True),
    ("[::1]", True), ("0.0.0.0", False), ("", False), (None, False), ("::", False),
    ("10.0.0.5", False), ("127.example.org", False)])
def test_loopback_addresses(address, loopback):
    assert listens_on_loopback(address) is loopback


def test_a_server_open_to_the_network_needs_the_proxy_secret():
    assert proxy_setup_problem("127.0.0.1", None, "X-Forwarded-Email") is None
    problem = proxy_setup_problem("0.0.0.0", None, "X-Forwarded-Email")
    assert problem and "any client could send that header itself" in problem
    assert "ESM_NAS_PROXY_SECRET" in problem and "127.0.0.1" in problem
    assert "too short" in (proxy_setup_problem("0.0.0.0", "abc", "X-Forwarded-Email") or "")
    assert proxy_setup_problem("0.0.0.0", "s" * 32, "X-Forwarded-Email") is None


def test_the_secret_is_checked_on_every_request():
    assert proxy_secret_matches(None, None) and proxy_secret_matches("anything", "")
    assert proxy_secret_matches("s" * 32, "s" * 32)
    assert not proxy_secret_matches(None, "s" * 32)
    assert not proxy_secret_matches("s" * 31, "s" * 32)
