"""A stand-in Hugging Face Hub: a real HTTP server on 127.0.0.1 that huggingface_hub 2.4 can pull
from and push to, plus the faults a real Hub shows (errors, silence, nobody listening).

    with StandInHub() as hub:                      # ephemeral port; stopped (and unstuck) on exit
        sha = hub.add_model("user/repo", folder)   # serve a folder as a new commit on main
        point_client_at(monkeypatch, hub.url, tmp_path)    # in-process huggingface_hub -> hub
        env = client_env(subprocess_env, hub.url, tmp_path) # or: a child process -> hub
        ...
        hub.files("user/repo", revision="main")    # {path: bytes} of a commit ("main" or a sha)
        hub.sha("user/repo")                       # the commit sha of "main" (or of a sha: itself)
        hub.repos["user/repo"].private             # as sent by create_repo
        hub.requests                               # [Request(method, path, headers)], in order;
                                                   # header names lower-cased
        hub.mode = "error"                         # 500 on everything, echoing the Authorization
                                                   # header in the body; "hang": read, never answer;
                                                   # "ok": serve normally (the default)
    refused_url()                                  # a localhost URL where nothing listens

Writes (create, preupload, commit) need an ``Authorization: Bearer ...`` header (401 otherwise);
private repos answer 404 RepoNotFound to readers without one, as the real Hub does. Files travel
inline ("regular" upload mode), so no LFS or Xet server is involved; commits always go to main.
Leaving the ``with`` block releases every request held in "hang" mode, so no thread stays stuck.
Neither client_env nor point_client_at touches HF_TOKEN: set or delete it as the test needs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

REPO = r"(?P<repo>[^/]+/[^/]+)"
REV = r"(?P<rev>[^/]+)"
ROUTES = [  # (method, pattern, handler name); the first match wins
    ("GET", rf"/api/models/{REPO}(?:/revision/{REV})?", "repo_info"),
    ("GET", rf"/api/models/{REPO}/tree/{REV}(?:/.*)?", "tree"),
    ("HEAD", rf"/{REPO}/resolve/{REV}/(?P<path>.+)", "resolve"),
    ("GET", rf"/{REPO}/resolve/{REV}/(?P<path>.+)", "resolve"),
    ("POST", r"/api/repos/create", "create"),
    ("POST", r"/api/validate-yaml", "validate_yaml"),
    ("POST", rf"/api/models/{REPO}/preupload/{REV}", "preupload"),
    ("POST", rf"/api/models/{REPO}/commit/{REV}", "commit"),
]


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class Repo:
    private: bool = False
    commits: list[tuple[str, dict[str, bytes]]] = field(default_factory=list)  # (sha, files), oldest first


class NotFound(KeyError):
    """No such repo, revision or file; its argument is the Hub's X-Error-Code."""


def git_oid(data: bytes) -> str:
    """The git blob id, which the Hub sends as a regular file's ETag."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class StandInHub:
    def __init__(self, mode: str = "ok"):
        self.mode = mode
        self.repos: dict[str, Repo] = {}
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._release = threading.Event()  # set on exit: requests held in "hang" mode end
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.hub = self  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),  # quick shutdown
                                        name="stand-in hub", daemon=True)

    def __enter__(self) -> "StandInHub":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def add_model(self, repo_id: str, folder: str | Path, private: bool = False) -> str:
        """Commit every file of ``folder`` to ``repo_id`` (created if needed); return the commit sha."""
        files = {p.name: p.read_bytes() for p in sorted(Path(folder).iterdir()) if p.is_file()}
        with self._lock:
            self.repos.setdefault(repo_id, Repo(private=private))
        return self.commit(repo_id, files)

    def commit(self, repo_id: str, added: dict[str, bytes], deleted: tuple[str, ...] | set[str] = ()) -> str:
        with self._lock:
            repo = self.repos[repo_id]
            files = dict(repo.commits[-1][1]) if repo.commits else {}
            files.update(added)
            for path in deleted:
                files.pop(path, None)
            sha = hashlib.sha1(f"{repo_id} {len(repo.commits)}".encode()
                               + b"".join(git_oid(d).encode() for d in files.values())).hexdigest()
            repo.commits.append((sha, files))
            return sha

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        return self._lookup(repo_id, revision)[1]

    def sha(self, repo_id: str, revision: str = "main") -> str:
        return self._lookup(repo_id, revision)[0]

    def _lookup(self, repo_id: str, revision: str) -> tuple[str, dict[str, bytes]]:
        """(sha, files) of a revision; NotFound("RepoNotFound" | "RevisionNotFound") if there is none."""
        repo = self.repos.get(repo_id)
        if repo is None or not repo.commits:
            raise NotFound("RepoNotFound")
        if revision == "main":
            return repo.commits[-1]
        for sha, files in repo.commits:
            if sha == revision:
                return sha, files
        raise NotFound("RevisionNotFound")


def refused_url() -> str:
    """A localhost URL where nothing listens: connecting to it is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# Settings that would override HF_HOME or HF_ENDPOINT, or keep the client off the network.
OVERRIDES = ("HF_HUB_OFFLINE", "HF_TOKEN_PATH", "HF_HUB_CACHE", "HF_XET_CACHE")


def client_env(env: dict[str, str], url: str, home: str | Path) -> dict[str, str]:
    """A copy of ``env`` for a child process whose huggingface_hub talks to ``url`` and keeps
    its cache under ``home`` (never ~/.cache)."""
    env = {k: v for k, v in env.items() if k not in OVERRIDES}
    return {**env, "HF_ENDPOINT": url, "HF_HOME": str(home), "HF_HUB_DISABLE_TELEMETRY": "1"}


def point_client_at(monkeypatch, url: str, home: str | Path) -> None:
    """The in-process equivalent of client_env. huggingface_hub reads its settings once, at import,
    so the module constants that 2.4 looks up at call time are patched instead: the endpoint, and
    every path under HF_HOME (cache, token, agent registry, ...) moved under ``home``. HfApi()
    objects made afterwards follow; the module-level shortcuts (huggingface_hub.create_repo, ...)
    keep the import-time endpoint, so don't use them in tests."""
    from huggingface_hub import constants

    old_home = constants.HF_HOME
    for name, value in list(vars(constants).items()):
        if isinstance(value, str) and value.startswith(old_home):
            monkeypatch.setattr(constants, name, str(home) + value[len(old_home):])
    for name, sub in (("HF_HUB_CACHE", "hub"), ("HF_XET_CACHE", "xet"), ("HF_TOKEN_PATH", "token")):
        monkeypatch.setattr(constants, name, str(Path(home) / sub))  # in case they were set apart from HF_HOME
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    for name in OVERRIDES:  # and the environment too: hf_xet reads HF_HOME when first imported
        monkeypatch.delenv(name, raising=False)
    for name, value in client_env({}, url, home).items():
        monkeypatch.setenv(name, value)


class _Handler(BaseHTTPRequestHandler):
    server: ThreadingHTTPServer

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        self._dispatch()

    do_HEAD = do_POST = do_GET

    def _dispatch(self) -> None:
        hub: StandInHub = self.server.hub  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        hub.requests.append(Request(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
        if hub.mode == "hang":
            hub._release.wait()
            self.close_connection = True
            return
        if hub.mode == "error":
            # Echo the credentials back, as a careless server might: what the client shows must not leak them.
            auth = self.headers.get("Authorization", "none")
            return self._send(500, {"error": f"stand-in Hub: internal error (authorization: {auth})"})
        path = unquote(urlsplit(self.path).path)
        for method, pattern, name in ROUTES:
            match = re.fullmatch(pattern, path)
            if method == self.command and match:
                args = {k: v for k, v in match.groupdict().items() if v is not None}
                try:
                    return getattr(self, name)(hub, body, **args)
                except NotFound as e:
                    return self._send(404, {"error": e.args[0]}, {"X-Error-Code": e.args[0]})
        self._send(404, {"error": f"stand-in Hub: no route for {self.command} {path}"})

    def _send(self, status: int, payload: object, headers: dict[str, str] | None = None) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        for key, value in {"Content-Length": str(len(data)), **(headers or {})}.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _authorized(self) -> bool:
        return self.headers.get("Authorization", "").startswith("Bearer ")

    def _readable(self, hub: StandInHub, repo: str, rev: str) -> tuple[str, dict[str, bytes]]:
        if repo in hub.repos and hub.repos[repo].private and not self._authorized():
            raise NotFound("RepoNotFound")
        return hub._lookup(repo, rev)

    def repo_info(self, hub: StandInHub, body: bytes, repo: str, rev: str = "main") -> None:
        sha, files = self._readable(hub, repo, rev)
        self._send(200, {"id": repo, "sha": sha, "private": hub.repos[repo].private,
                         "siblings": [{"rfilename": p} for p in files]})

    def tree(self, hub: StandInHub, body: bytes, repo: str, rev: str) -> None:
        _, files = self._readable(hub, repo, rev)
        self._send(200, [{"type": "file", "path": p, "size": len(d), "oid": git_oid(d)} for p, d in files.items()])

    def resolve(self, hub: StandInHub, body: bytes, repo: str, rev: str, path: str) -> None:
        sha, files = self._readable(hub, repo, rev)
        if path not in files:
            raise NotFound("EntryNotFound")
        self._send(200, files[path], {"X-Repo-Commit": sha, "ETag": f'"{git_oid(files[path])}"'})

    def create(self, hub: StandInHub, body: bytes) -> None:
        if not self._authorized():
            return self._send(401, {"error": "Invalid credentials"})
        request = json.loads(body)
        repo_id = f"{request['organization']}/{request['name']}" if request.get("organization") else request["name"]
        with hub._lock:
            exists = repo_id in hub.repos
            hub.repos.setdefault(repo_id, Repo(private=request.get("visibility") == "private"))
        self._send(409 if exists else 200, {"url": f"{hub.url}/{repo_id}", "error": "exists" if exists else None})

    def validate_yaml(self, hub: StandInHub, body: bytes) -> None:
        self._send(200, {"errors": [], "warnings": []})

    def preupload(self, hub: StandInHub, body: bytes, repo: str, rev: str) -> None:
        if not self._authorized():
            return self._send(401, {"error": "Invalid credentials"})
        paths = [f["path"] for f in json.loads(body)["files"]]
        self._send(200, {"files": [{"path": p, "uploadMode": "regular", "shouldIgnore": False} for p in paths]})

    def commit(self, hub: StandInHub, body: bytes, repo: str, rev: str) -> None:
        if not self._authorized():
            return self._send(401, {"error": "Invalid credentials"})
        if repo not in hub.repos:
            raise NotFound("RepoNotFound")
        added, deleted = {}, set()
        for line in body.splitlines():
            item = json.loads(line)
            if item["key"] == "file":
                added[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
            elif item["key"] == "deletedFile":
                deleted.add(item["value"]["path"])
        sha = hub.commit(repo, added, deleted)
        self._send(200, {"commitUrl": f"{hub.url}/{repo}/commit/{sha}", "commitOid": sha, "pullRequestUrl": None})
