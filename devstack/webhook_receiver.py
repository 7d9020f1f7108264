"""A webhook receiver for the dev stack: what a destination of completion notices does.

It checks each POST's signature (`X-Stocksync-Signature`, HMAC-SHA256 over the timestamp
and the body, with the shared secret) and the timestamp's freshness, records every
delivery with its notice id (`X-Stocksync-Notice-Id`, what a real receiver deduplicates
on), and answers 204; a bad signature is a 401 and is recorded as unverified. Tests can
make it fail the next requests, or hold them unanswered.
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from chalicelib.notices import NOTICE_ID_HEADER, verify
from devstack.services import free_port

PATH = "/notices"


@dataclass
class Delivery:
    notice_id: str
    verified: bool
    body: dict[str, Any] | None
    headers: dict[str, str] = field(default_factory=dict)
    answered: int = 0  # the status it was answered with (0: never, the sender went away)


class WebhookReceiver:
    def __init__(self, secret: str, host: str = "127.0.0.1", port: int | None = None):
        self.secret = secret
        self.host = host
        self.port = port or free_port(host)
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()
        self._deliveries: list[Delivery] = []
        self._failures: list[int] = []  # statuses to answer the next requests with
        self._hold: threading.Event | None = None
        self.held = threading.Event()  # set while a request is being held

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{PATH}"

    def start(self) -> "WebhookReceiver":
        self._server = ThreadingHTTPServer((self.host, self.port), _handler(self))
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="webhook-receiver", daemon=True).start()
        return self

    def stop(self) -> None:
        self.release()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # --- for tests ---------------------------------------------------------------------

    def deliveries(self) -> list[Delivery]:
        with self._lock:
            return list(self._deliveries)

    def verified(self) -> list[Delivery]:
        return [d for d in self.deliveries() if d.verified]

    def clear(self) -> None:
        with self._lock:
            self._deliveries.clear()
            self._failures.clear()
        self.release()

    def fail_next(self, times: int, status: int = 503) -> None:
        with self._lock:
            self._failures.extend([status] * times)

    def hold_next(self) -> None:
        """Hold requests unanswered (after recording them) until release()."""
        self.held.clear()
        self._hold = threading.Event()

    def release(self) -> None:
        if self._hold is not None:
            self._hold.set()
            self._hold = None

    def _receive(self, headers: dict[str, str], body: bytes) -> tuple[Delivery, int]:
        verified = verify(self.secret, headers, body)
        try:
            parsed = json.loads(body) if verified else None
        except ValueError:
            parsed, verified = None, False
        notice_id = {k.lower(): v for k, v in headers.items()}.get(NOTICE_ID_HEADER.lower(), "")
        delivery = Delivery(notice_id=notice_id, verified=verified, body=parsed, headers=headers)
        with self._lock:
            self._deliveries.append(delivery)
            status = 401 if not verified else (self._failures.pop(0) if self._failures else 204)
        return delivery, status


def _handler(receiver: WebhookReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            delivery, status = receiver._receive(dict(self.headers.items()), body)
            hold = receiver._hold
            if hold is not None:
                receiver.held.set()
                hold.wait(120)
            try:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                delivery.answered = status
            except OSError:
                pass  # the sender is gone

        def log_message(self, *args: Any) -> None:
            pass

    return Handler
