"""The stocksync API over HTTP: where it is, the token, and one answer shape.

Every answer is the seed's envelope, `{"status": "success", "data": ...}` or
`{"status": "error", "code": ..., "message": ...}`; `Api.call` returns the data or
raises `Refused` (a 4xx: the API said no, and why) or `Unreachable` (no answer, a 5xx,
or something that is not the API's envelope), which the command turns into an exit code.
"""
from __future__ import annotations

import json
import os
import socket
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_API = "http://127.0.0.1:8000"
API_ENV = "STOCKSYNC_API_URL"
TOKEN_ENV = "STOCKSYNC_API_TOKEN"
DATA_DIR_ENV = "STOCKSYNC_DATA_DIR"
# Where the local stack (`make serve`) keeps its operator token, under the project.
LOCAL_TOKEN_FILE = Path(".stocksync") / "api-token"
PREFIX = "api/v1/sync-status/"
BATCH = "sync/batch"
AUDIT = "audit"


class ApiError(Exception):
    """What went wrong, as the person should read it."""

    def __init__(self, message: str, status: int = 0, code: str | None = None,
                 data: Any = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.data = data

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"status": "error", "code": self.code, "message": self.message,
                                "http_status": self.status}
        if self.data is not None:
            body["data"] = self.data
        return body


class Refused(ApiError):
    """A 4xx: the API answered, and refused (unauthorized, forbidden, not found, conflict...)."""


class Unreachable(ApiError):
    """No answer, a 5xx, or an answer that is not the API's."""


def find_token(token_file: Path | None = None, start: Path | None = None) -> str | None:
    """STOCKSYNC_API_TOKEN; else `token_file`; else $STOCKSYNC_DATA_DIR/api-token; else the
    local stack's .stocksync/api-token in this directory or the nearest parent that has one."""
    given = os.environ.get(TOKEN_ENV, "").strip()
    if given:
        return given
    candidates: list[Path] = []
    if token_file is not None:
        candidates.append(token_file)
    else:
        if os.environ.get(DATA_DIR_ENV):
            candidates.append(Path(os.environ[DATA_DIR_ENV]) / "api-token")
        here = (start or Path.cwd()).resolve()
        candidates.extend(folder / LOCAL_TOKEN_FILE for folder in (here, *here.parents))
    for path in candidates:
        try:
            token = path.read_text(encoding="utf-8").strip()
        except OSError:
            continue
        if token:
            return token
    return None


@dataclass
class Api:
    base_url: str = DEFAULT_API
    token: str | None = None
    lang: str = "zh"
    timeout_s: float = 30.0
    headers: dict[str, str] = field(default_factory=dict)

    def url(self, path: str, params: dict[str, str] | None = None) -> str:
        base = self.base_url.rstrip("/") + "/"
        query = urllib.parse.urlencode({**(params or {}), "lang": self.lang})
        return f"{base}{PREFIX}{path}?{query}"

    def call(self, method: str, path: str, body: Any = None,
             params: dict[str, str] | None = None) -> Any:
        """The answer's `data`; raises Refused or Unreachable."""
        headers = {"Accept": "application/json", "User-Agent": "stocksync-cli", **self.headers}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None
        if method != "GET":
            data = b"" if body is None else json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(self.url(path, params), data=data, method=method,
                                         headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as answer:
                status, raw = answer.status, answer.read()
        except urllib.error.HTTPError as refused:
            status, raw = refused.code, refused.read()
        except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise Unreachable(f"cannot reach the API at {self.base_url}: {reason}") from None
        return _data_of(status, raw)

    # The API, one method per route.
    def start(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.call("POST", BATCH, body)

    def progress(self, task_id: str) -> dict[str, Any]:
        return self.call("GET", f"{BATCH}/progress/{_quoted(task_id)}")

    def control(self, action: str, task_id: str) -> dict[str, Any]:
        """POST pause, resume, retry or cancel."""
        return self.call("POST", f"{BATCH}/{action}/{_quoted(task_id)}")

    def jobs(self) -> list[dict[str, Any]]:
        return self.call("GET", f"{BATCH}/jobs")

    def days(self, task_id: str) -> list[dict[str, Any]]:
        return self.call("GET", f"{BATCH}/days/{_quoted(task_id)}")

    def events(self, task_id: str) -> list[dict[str, Any]]:
        return self.call("GET", f"{BATCH}/events/{_quoted(task_id)}")

    def audit(self, params: dict[str, str]) -> dict[str, Any]:
        return self.call("GET", AUDIT, params=params)

    def fill(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.call("POST", AUDIT + "/fill", body)


def _quoted(task_id: str) -> str:
    return urllib.parse.quote(task_id, safe="")


def _data_of(status: int, raw: bytes) -> Any:
    try:
        payload = json.loads(raw.decode("utf-8")) if raw else None
    except (UnicodeDecodeError, ValueError):
        payload = None
    if not isinstance(payload, dict) or payload.get("status") not in ("success", "error"):
        # A gateway's page, a proxy's error, another server on the port.
        raise Unreachable(f"HTTP {status}: the answer is not the stocksync API's", status)
    if payload["status"] == "success" and status < 400:
        return payload.get("data")
    code, message = payload.get("code"), payload.get("message") or ""
    error = Refused if 400 <= status < 500 else Unreachable
    raise error(f"HTTP {status} {code}: {message}", status, code, payload.get("data"))
