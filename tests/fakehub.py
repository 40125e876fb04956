"""A loopback stand-in for the Hugging Face Hub that speaks the HTTP API the real
``huggingface_hub`` client uses (plain LFS protocol: run the client with HF_HUB_DISABLE_XET=1).

Routes: whoami-v2, repos/create, validate-yaml, preupload, LFS batch + basic-transfer PUT,
NDJSON commit, and the download side (repo info, tree, resolve). It records every request so
tests can assert what reached the "Hub"; ``fail_next`` makes the next N write requests answer 500.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse

import yaml


def _check_metadata(meta: dict) -> list[dict]:
    """The parts of the Hub's metadata schema our cards use."""
    errors = []
    if not isinstance(meta.get("license", ""), str):
        errors.append({"message": '"license" must be a string'})
    if not isinstance(meta.get("tags", []), list):
        errors.append({"message": '"tags" must be an array'})
    for entry in meta.get("model-index", []):
        if "name" not in entry:
            errors.append({"message": '"model-index[].name" is required'})
        for result in entry.get("results", []):
            if "type" not in result.get("task", {}):
                errors.append({"message": '"model-index[].results[].task.type" is required'})
            for metric in result.get("metrics", []):
                if not {"type", "value"} <= set(metric):
                    errors.append({"message": "each metric needs a type and a value"})
    return errors


@dataclass
class Repo:
    private: bool
    files: dict[str, bytes] = field(default_factory=dict)
    commits: list[str] = field(default_factory=list)

    @property
    def sha(self) -> str:
        return self.commits[-1] if self.commits else "0" * 40


class FakeHub:
    def __init__(self, token: str = "hf_test_write_token", user: str = "alice",
                 role: str = "write") -> None:
        self.token, self.user, self.role = token, user, role
        self.repos: dict[str, Repo] = {}
        self.lfs: dict[str, bytes] = {}
        self.requests: list[tuple[str, str, dict]] = []  # method, path, headers
        self.bodies: list[bytes] = []
        self.fail_next = 0
        self.validated_yaml: list[dict] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="fake-hub")

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    # ------------------------------------------------------------------------------------
    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def _body(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _send(self, status: int, payload=None, *, raw: bytes | None = None,
                      headers: dict | None = None, head: bool = False) -> None:
                data = raw if raw is not None else json.dumps(payload or {}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json" if raw is None else
                                 "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                if not head:
                    self.wfile.write(data)

            def _authorised(self) -> bool:
                return self.headers.get("Authorization") == f"Bearer {hub.token}"

            def _route(self, method: str) -> None:
                path = urlparse(self.path).path
                body = self._body() if method in ("POST", "PUT") else b""
                hub.requests.append((method, path, dict(self.headers)))
                hub.bodies.append(body)
                if method in ("POST", "PUT") and hub.fail_next > 0 and path != "/api/whoami-v2":
                    hub.fail_next -= 1
                    return self._send(500, {"error": "Internal Error (simulated)"})
                try:
                    return self._dispatch(method, unquote(path), body)
                except Exception as exc:  # a bug in the fake must be visible
                    return self._send(500, {"error": f"fake hub: {exc!r}"})

            def _dispatch(self, method: str, path: str, body: bytes) -> None:
                if path == "/api/whoami-v2":
                    if not self._authorised():
                        return self._send(401, {"error": "Invalid credentials in Authorization "
                                                         "header"})
                    return self._send(200, {"type": "user", "name": hub.user, "orgs": [],
                                            "auth": {"type": "access_token", "accessToken": {
                                                "displayName": "test", "role": hub.role}}})
                if path == "/api/validate-yaml" and method == "POST":
                    content = json.loads(body)["content"]
                    errors = []
                    match = re.match(r"^---\n(.*?)\n---\n", content, re.S)
                    meta = yaml.safe_load(match.group(1)) if match else None
                    if not isinstance(meta, dict):
                        errors.append({"message": "no YAML metadata block"})
                    else:
                        hub.validated_yaml.append(meta)
                        errors += _check_metadata(meta)
                    return self._send(200 if not errors else 400, {"errors": errors,
                                                                   "warnings": []})
                if path == "/api/repos/create" and method == "POST":
                    if not self._authorised():
                        return self._send(401, {"error": "Unauthorized"})
                    spec = json.loads(body)
                    repo_id = f"{spec.get('organization') or hub.user}/{spec['name']}"
                    if repo_id in hub.repos:
                        return self._send(409, {"error": "You already created this model repo",
                                                "url": f"{hub.url}/{repo_id}"})
                    hub.repos[repo_id] = Repo(private=bool(spec.get("private")) or
                                              spec.get("visibility") == "private")
                    return self._send(200, {"url": f"{hub.url}/{repo_id}", "name": repo_id,
                                            "id": repo_id})
                m = re.fullmatch(r"/api/models/(.+?/.+?)/preupload/(.+)", path)
                if m and method == "POST":
                    files = json.loads(body)["files"]
                    return self._send(200, {"files": [{
                        "path": f["path"], "uploadMode": "lfs" if f["path"].endswith(
                            (".safetensors", ".png")) else "regular",
                        "shouldIgnore": False, "oid": None} for f in files]})
                m = re.fullmatch(r"/(.+?/.+?)\.git/info/lfs/objects/batch", path)
                if m and method == "POST":
                    request = json.loads(body)
                    objects = [{"oid": o["oid"], "size": o["size"], "authenticated": True,
                                "actions": {"upload": {
                                    "href": f"{hub.url}/lfs-upload/{o['oid']}",
                                    "header": {"X-Test": "lfs"}}}}
                               for o in request["objects"] if o["oid"] not in hub.lfs]
                    return self._send(200, {"transfer": "basic", "objects": objects},
                                      headers={"Content-Type": "application/vnd.git-lfs+json"})
                m = re.fullmatch(r"/lfs-upload/([0-9a-f]{64})", path)
                if m and method == "PUT":
                    if hashlib.sha256(body).hexdigest() != m.group(1):
                        return self._send(400, {"error": "sha256 mismatch"})
                    hub.lfs[m.group(1)] = body
                    return self._send(200, {})
                m = re.fullmatch(r"/api/models/(.+?/.+?)/commit/(.+)", path)
                if m and method == "POST":
                    return self._commit(m.group(1), body)
                m = re.fullmatch(r"/api/models/(.+?/.+?)(?:/.*)?", path) or re.fullmatch(
                    r"/(.+?/.+?)/resolve/.*", path)
                if m and method in ("GET", "HEAD") and m.group(1) in hub.repos and \
                        hub.repos[m.group(1)].private and not self._authorised():
                    # the Hub answers as if a private repository did not exist
                    return self._send(401, {"error": "Repository Not Found"}, head=method ==
                                      "HEAD", headers={"X-Error-Code": "RepoNotFound"})
                m = re.fullmatch(r"/api/models/(.+?/.+?)(?:/revision/(.+))?", path)
                if m and method == "GET" and m.group(1) in hub.repos:
                    repo = hub.repos[m.group(1)]
                    return self._send(200, {"id": m.group(1), "modelId": m.group(1),
                                            "sha": repo.sha, "private": repo.private,
                                            "siblings": [{"rfilename": p}
                                                         for p in sorted(repo.files)]})
                m = re.fullmatch(r"/api/models/(.+?/.+?)/tree/([^/]+)(?:/(.*))?", path)
                if m and method == "GET" and m.group(1) in hub.repos:
                    repo = hub.repos[m.group(1)]
                    return self._send(200, [{"type": "file", "path": p, "size": len(d),
                                             "oid": hashlib.sha1(d).hexdigest()}
                                            for p, d in sorted(repo.files.items())])
                m = re.fullmatch(r"/(.+?/.+?)/resolve/([^/]+)/(.+)", path)
                if m and method in ("GET", "HEAD"):
                    repo = hub.repos.get(m.group(1))
                    if repo is None or m.group(3) not in repo.files:
                        return self._send(404, {"error": "Entry not found"},
                                          headers={"X-Error-Code": "EntryNotFound"},
                                          head=method == "HEAD")
                    data = repo.files[m.group(3)]
                    etag = hashlib.sha256(data).hexdigest()
                    headers = {"ETag": f'"{etag}"', "X-Repo-Commit": repo.sha}
                    wanted = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                    if wanted and method == "GET":  # the rest of an interrupted download
                        first = int(wanted.group(1))
                        return self._send(206, raw=data[first:], headers={
                            **headers, "Content-Range": f"bytes {first}-{len(data) - 1}/"
                                                        f"{len(data)}"})
                    return self._send(200, raw=data, head=method == "HEAD", headers=headers)
                return self._send(404, {"error": f"fake hub has no route {method} {path}"})

            def _commit(self, repo_id: str, body: bytes) -> None:
                repo = hub.repos.get(repo_id)
                if repo is None:
                    return self._send(404, {"error": "Repository not found"})
                if not self._authorised():
                    return self._send(401, {"error": "Unauthorized"})
                staged = {}
                for line in body.decode().splitlines():
                    item = json.loads(line)
                    value = item["value"]
                    if item["key"] == "file":
                        staged[value["path"]] = base64.b64decode(value["content"])
                    elif item["key"] == "lfsFile":
                        if value["oid"] not in hub.lfs:
                            return self._send(400, {"error": f"LFS object {value['oid']} "
                                                             "was never uploaded"})
                        staged[value["path"]] = hub.lfs[value["oid"]]
                    elif item["key"] == "deletedFile":
                        repo.files.pop(value["path"], None)
                repo.files.update(staged)
                sha = hashlib.sha1(body).hexdigest()
                repo.commits.append(sha)
                return self._send(200, {"commitUrl": f"{hub.url}/{repo_id}/commit/{sha}",
                                        "commitOid": sha, "success": True})

            def do_GET(self) -> None:
                self._route("GET")

            def do_HEAD(self) -> None:
                self._route("HEAD")

            def do_POST(self) -> None:
                self._route("POST")

            def do_PUT(self) -> None:
                self._route("PUT")

        return Handler
