"""Pushed progress over API Gateway's WebSocket API (the seed's WebSocket item).

The page follows a job over a WebSocket instead of polling: each day settled pushes the
job's progress (the JSON of the progress endpoint) to the connections following it.

- Authentication: a browser cannot set an Authorization header on a WebSocket, and a token
  in its URL would reach access logs. So the page first asks an authenticated route
  (reader role) for a **ticket**: random, kept here only as its SHA-256, valid for
  `ticket_ttl_s` (30 s), used up by the one connection that presents it (`?ticket=`).
- Subscriptions live in PostgreSQL (`live_connections`): any function can push, and a
  connection outlives the container that accepted it.
- Pushes go through API Gateway's management API (`POST /@connections/{id}`), from the
  function that settled the day; a connection API Gateway calls gone (410
  GoneException) is dropped. Locally the dev stack serves the same handlers and the same
  management call (devstack/live_server.py): only the endpoint URL differs.

Messages from the page: `{"action": "subscribe", "task_id": ...}` (one job per connection),
`{"action": "unsubscribe"}`, `{"action": "ping"}`. To the page: `{"type": "progress",
"task_id": ..., "data": <progress>}`, `{"type": "pong"}`, `{"type": "error", "code": ...}`.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
from typing import Any, Callable, Mapping

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.auth import Principal
from chalicelib.db import Database, query
from chalicelib.errors import NotFound, ServiceUnavailable
from chalicelib.validation import is_task_id

log = logging.getLogger(__name__)

TICKET_PREFIX = "lt_"
_TICKET = re.compile(r"lt_[A-Za-z0-9_-]{32,64}")
# API Gateway closes a WebSocket connection after 2 hours at the latest; a row older than
# that (plus a margin) belongs to a connection whose disconnect never reached us.
MAX_CONNECTION_AGE_S = 2 * 3600 + 300
MAX_MESSAGE_CHARS = 1024
MAX_PUSHES_PER_JOB = 500  # connections one settled day pushes to


class PushError(Exception):
    """The management API refused a push for another reason than the connection being gone."""


class Pusher:
    """API Gateway's management API: `post_to_connection`, deployed or local alike."""

    def __init__(self, client: Any):
        self._client = client

    def post(self, connection_id: str, data: str) -> bool:
        """Send `data` to a connection; False if API Gateway says it is gone (410)."""
        try:
            self._client.post_to_connection(ConnectionId=connection_id, Data=data.encode("utf-8"))
        except ClientError as exc:
            error = exc.response.get("Error", {})
            if error.get("Code") == "GoneException" or \
                    exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 410:
                return False
            raise PushError(f"{error.get('Code', '?')}: {error.get('Message', '')}"[:200]) from None
        except BotoCoreError as exc:
            raise PushError(f"management API unreachable: {exc.__class__.__name__}") from None
        return True


def ticket_hash(ticket: str) -> str:
    return hashlib.sha256(ticket.encode("utf-8")).hexdigest()


def _message(kind: str, **fields: Any) -> str:
    return json.dumps({"type": kind, **fields}, ensure_ascii=False, separators=(",", ":"))


class LiveProgress:
    def __init__(self, db: Database, progress: Callable[[str], dict[str, Any]],
                 pusher: Pusher | None, websocket_url: str | None, ticket_ttl_s: float = 30.0):
        self._db = db
        self._progress = progress  # task id -> JobService.progress(task_id).as_json()
        self._pusher = pusher
        self.websocket_url = websocket_url
        self._ticket_ttl_s = ticket_ttl_s

    @property
    def enabled(self) -> bool:
        return bool(self.websocket_url and self._pusher)

    # --- the HTTP side: a ticket for the caller ---------------------------------------

    def issue_ticket(self, principal: Principal) -> dict[str, Any]:
        if not self.enabled:
            raise NotFound.live_unavailable()
        ticket = TICKET_PREFIX + secrets.token_urlsafe(32)
        with self._db.transaction() as cur:
            cur.execute(query("insert_live_ticket"), {
                "ticket_sha256": ticket_hash(ticket), "token_name": principal.name,
                "role": principal.role, "ttl_s": self._ticket_ttl_s})
        return {"ticket": ticket, "expires_in_s": self._ticket_ttl_s, "url": self.websocket_url}

    # --- the WebSocket handlers ($connect, $default, $disconnect) ---------------------

    def connect(self, connection_id: str, params: Mapping[str, Any] | None) -> int:
        """The status API Gateway answers the handshake with: 200, or 401 without a valid ticket."""
        ticket = (params or {}).get("ticket")
        if not isinstance(ticket, str) or not _TICKET.fullmatch(ticket):
            return 401
        try:
            with self._db.transaction() as cur:
                cur.execute(query("take_live_ticket"), {"ticket_sha256": ticket_hash(ticket)})
                holder = cur.fetchone()
                if holder is None:
                    return 401  # unknown, expired or already used
                cur.execute(query("insert_live_connection"), {
                    "connection_id": connection_id, "token_name": holder["token_name"]})
        except ServiceUnavailable:
            return 503
        return 200

    def message(self, connection_id: str, body: Any) -> None:
        """Act on a message from the page; every answer goes back as a push."""
        reply = self._answer(connection_id, body)
        if reply is not None:
            self._push(connection_id, reply)

    def disconnect(self, connection_id: str) -> None:
        with self._db.transaction() as cur:
            cur.execute(query("delete_live_connection"), {"connection_id": connection_id})

    def _answer(self, connection_id: str, body: Any) -> str | None:
        if not isinstance(body, str) or len(body) > MAX_MESSAGE_CHARS:
            return _message("error", code="bad_request")
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            return _message("error", code="bad_request")
        action = data.get("action") if isinstance(data, dict) else None
        if action == "ping":
            return _message("pong")
        if action == "unsubscribe":
            self._follow(connection_id, None)
            return None
        if action != "subscribe":
            return _message("error", code="bad_request")
        task_id = data.get("task_id")
        if not is_task_id(task_id):
            return _message("error", code="not_found", task_id=None)
        try:
            progress = self._progress(task_id)
        except NotFound:
            return _message("error", code="not_found", task_id=task_id)
        if not self._follow(connection_id, task_id):
            return _message("error", code="not_connected")  # no ticket seen: connect again
        return _message("progress", task_id=task_id, data=progress)

    def _follow(self, connection_id: str, task_id: str | None) -> bool:
        with self._db.transaction() as cur:
            cur.execute(query("subscribe_live_connection"),
                        {"connection_id": connection_id, "task_id": task_id})
            return cur.fetchone() is not None

    # --- pushing -------------------------------------------------------------------------

    def publish(self, task_id: str) -> int:
        """Push the job's progress to every connection following it; returns how many got it."""
        if self._pusher is None:
            return 0
        with self._db.transaction() as cur:
            cur.execute(query("live_subscribers"), {"task_id": task_id, "limit": MAX_PUSHES_PER_JOB,
                                                    "max_age_s": MAX_CONNECTION_AGE_S})
            connections = [row["connection_id"] for row in cur.fetchall()]
        if not connections:
            return 0
        try:
            data = _message("progress", task_id=task_id, data=self._progress(task_id))
        except NotFound:
            return 0
        return sum(1 for connection_id in connections if self._push(connection_id, data))

    def _push(self, connection_id: str, data: str) -> bool:
        if self._pusher is None:
            return False
        try:
            if self._pusher.post(connection_id, data):
                return True
        except PushError as exc:
            log.warning("push to connection %s failed: %s", connection_id, exc)
            return False
        # Gone: the browser left without a disconnect reaching us (or it arrives later).
        self.disconnect(connection_id)
        log.info("connection %s is gone: dropped", connection_id)
        return False

    def prune(self) -> dict[str, int]:
        """Tickets nobody used, and connections older than API Gateway lets one live."""
        with self._db.transaction() as cur:
            cur.execute(query("prune_live_tickets"))
            tickets = cur.rowcount
            cur.execute(query("prune_live_connections"), {"max_age_s": MAX_CONNECTION_AGE_S})
            connections = cur.rowcount
        return {"tickets": tickets, "connections": connections}
