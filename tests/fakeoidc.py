"""A loopback OpenID Connect provider for the sign-in tests: the real Streamlit ``st.login``
(Authlib) talks to it over HTTP exactly as it would to a lab's identity provider.

Routes: discovery document, an authorisation page where the test types the account's e-mail
and name (either may be left empty, as some providers do), the code-for-token exchange with an
RS256-signed ID token (issuer, audience, nonce, expiry), and the JSON Web Key Set.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlparse

from joserfc import jwt
from joserfc.jwk import RSAKey

CLIENT_ID, CLIENT_SECRET = "esm-nas-test", "test-client-secret"

_PAGE = """<!doctype html><title>Lab sign-in</title><h1>Lab sign-in</h1>
<form action="/approve" method="get">
<input type="hidden" name="ticket" value="{ticket}">
<label>E-mail <input name="email"></label>
<label>Name <input name="name"></label>
<button type="submit">Approve</button></form>"""


class FakeOIDC:
    def __init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": "test-key", "use": "sig",
                                                         "alg": "RS256"})
        self._pending: dict[str, dict] = {}  # ticket -> authorisation request
        self._codes: dict[str, dict] = {}  # code -> claims
        self.logins: list[dict] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> FakeOIDC:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def metadata_url(self) -> str:
        return f"{self.url}/.well-known/openid-configuration"

    def _discovery(self) -> dict:
        return {"issuer": self.url, "authorization_endpoint": f"{self.url}/authorize",
                "token_endpoint": f"{self.url}/token", "jwks_uri": f"{self.url}/jwks",
                "response_types_supported": ["code"], "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": ["openid", "email", "profile"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic",
                                                          "client_secret_post"]}

    def _id_token(self, claims: dict) -> str:
        now = int(time.time())
        payload = {"iss": self.url, "aud": CLIENT_ID, "iat": now, "exp": now + 600,
                   **{k: v for k, v in claims.items() if v}}
        return jwt.encode({"alg": "RS256", "kid": "test-key"}, payload, self.key)

    def _handler(self):
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _send(self, status: int, body: bytes, ctype: str, extra: dict | None = None):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def _json(self, status: int, value: dict) -> None:
                self._send(status, json.dumps(value).encode(), "application/json")

            def do_GET(self) -> None:
                url = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                if url.path == "/.well-known/openid-configuration":
                    self._json(200, provider._discovery())
                elif url.path == "/jwks":
                    self._json(200, {"keys": [provider.key.as_dict(private=False)]})
                elif url.path == "/authorize":
                    if query.get("client_id") != CLIENT_ID or query.get("response_type") != \
                            "code":
                        self._json(400, {"error": "invalid_request"})
                        return
                    ticket = secrets.token_hex(8)
                    provider._pending[ticket] = query
                    self._send(200, _PAGE.format(ticket=ticket).encode(), "text/html")
                elif url.path == "/approve":
                    request = provider._pending.pop(query.get("ticket", ""), None)
                    if request is None:
                        self._json(400, {"error": "unknown ticket"})
                        return
                    code = secrets.token_hex(12)
                    sub = "sub-" + (query.get("email") or query.get("name") or "anonymous")
                    provider._codes[code] = {
                        "sub": sub, "email": query.get("email", ""),
                        "name": query.get("name", ""), "nonce": request.get("nonce"),
                        "redirect_uri": request["redirect_uri"]}
                    target = request["redirect_uri"] + "?" + urlencode(
                        {"code": code, "state": request.get("state", "")})
                    self._send(302, b"", "text/plain", {"Location": target})
                else:
                    self._json(404, {"error": "not found"})

            def do_POST(self) -> None:
                if urlparse(self.path).path != "/token":
                    self._json(404, {"error": "not found"})
                    return
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                form = {k: v[0] for k, v in parse_qs(body).items()}
                claims = provider._codes.pop(form.get("code", ""), None)
                if form.get("grant_type") != "authorization_code" or claims is None or \
                        form.get("redirect_uri") != claims.pop("redirect_uri"):
                    self._json(400, {"error": "invalid_grant"})
                    return
                provider.logins.append(dict(claims))
                self._json(200, {"access_token": secrets.token_hex(16),
                                 "token_type": "Bearer", "expires_in": 600,
                                 "id_token": provider._id_token(claims)})

        return Handler
