"""`chalice local`, unchanged but for five things the local stack needs.

- The listen backlog: socketserver's default is 5, and fifty clients connecting at once
  (the concurrency tests, the progress benchmark, a busy page) would see connection
  resets from the dev server rather than answers from the app.
- Every answer carries the header X-Stocksync-Instance with STOCKSYNC_INSTANCE, a value
  the stack makes up for each start: it then knows that the API answering on its port
  is the one it started, not one left over from an earlier run.
- TCP_NODELAY on every connection: the handler writes its headers and body in separate
  sends, and on a kept-alive connection Nagle's algorithm then waits for the client's
  delayed ACK, 40 ms per answer (44 ms against 1.6 ms on a fresh connection, measured).
  A polling page and the read benchmarks keep their connections alive.
- It exits when the process that started it does (STOCKSYNC_PARENT_PID), even if that
  one was killed with SIGKILL and could not stop it.
- What `chalice local` answers itself comes in the API's envelope, as the deployed gateway
  responses do: an unknown path is a 404 `not_found` (its own answer was a 403 that quoted
  the request's Authorization header back, token and all, and dropped the connection when
  that header was not ASCII), any method reaches the app (a 405 there, not http.server's
  HTML 501), and a malformed request (a Content-Length that is no number, a request line or
  headers too long) is a 4xx in the envelope rather than HTML or a dropped connection.

Usage: python -m devstack.chalice_local local --port 8000 --stage local
"""
import json
import os
import sys
import threading
import time
import uuid
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlsplit

from chalice import local
from chalice.cli import main

from chalicelib.api import REQUEST_ID_HEADER, language

INSTANCE_HEADER = "X-Stocksync-Instance"

local.ThreadedHTTPServer.request_queue_size = 256
local.ThreadedHTTPServer.daemon_threads = True
local.ChaliceRequestHandler.disable_nagle_algorithm = True


def _mark_answers(instance: str) -> None:
    end_headers = local.ChaliceRequestHandler.end_headers

    def end_headers_marked(self: local.ChaliceRequestHandler) -> None:
        self.send_header(INSTANCE_HEADER, instance)
        end_headers(self)
    local.ChaliceRequestHandler.end_headers = end_headers_marked  # type: ignore[method-assign]


# The deployed gateway responses' words (deploy/sam-resources.json), in both languages here.
NOT_FOUND = ("地址不存在", "No such address")
MALFORMED = {400: ("bad_request", "请求无效", "Bad request"),
             414: ("uri_too_long", "请求地址过长", "The request's address is too long"),
             431: ("headers_too_large", "请求头过大", "The request's headers are too large")}


class _NoRoute(local.LocalGatewayException):
    CODE = 404


def _envelope(code: str, zh: str, en: str, path: str, headers: Any) -> tuple[bytes, str]:
    """The API's error body for a request the app never saw, and its request id."""
    query = {k: v[-1] for k, v in parse_qs(urlsplit(path or "").query).items()}
    lowered = {str(k).lower(): v for k, v in dict(headers or {}).items()}
    lang = language(SimpleNamespace(query_params=query, headers=lowered))  # type: ignore[arg-type]
    rid = uuid.uuid4().hex
    body = {"status": "error", "code": code, "message": en if lang == "en" else zh,
            "data": {"request_id": rid}}
    return json.dumps(body, ensure_ascii=False).encode("utf-8"), rid


def _answer_in_the_envelope() -> None:
    handler = local.ChaliceRequestHandler
    generate = local.LocalGateway._generate_lambda_event

    def generate_or_404(self: local.LocalGateway, method: str, path: str, headers: Any,
                        body: Any) -> Any:
        try:
            return generate(self, method, path, headers, body)
        except ValueError:  # no route: chalice's own answer would quote the Authorization header
            payload, rid = _envelope("not_found", *NOT_FOUND, path, headers)
            raise _NoRoute({"Content-Type": "application/json; charset=utf-8", "Vary": "Origin",
                            REQUEST_ID_HEADER: rid}, payload) from None
    local.LocalGateway._generate_lambda_event = generate_or_404  # type: ignore[method-assign]

    handle = handler._generic_handle

    def handle_checked(self: local.ChaliceRequestHandler) -> None:
        if not (self.headers.get("content-length") or "0").strip().isdigit():
            self.send_error(400, "Bad Content-Length")
            return
        handle(self)

    def send_error(self: local.ChaliceRequestHandler, code: int, message: str | None = None,
                   explain: str | None = None) -> None:
        self.log_error("code %d, message %s", code, message)
        kind, zh, en = MALFORMED.get(code, ("bad_request", "请求无效", "Bad request"))
        payload, rid = _envelope(kind, zh, en, getattr(self, "path", ""), getattr(self, "headers", None))
        self.send_response(code)
        self.send_header("Connection", "close")
        self.close_connection = True
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Vary", "Origin")
        self.send_header(REQUEST_ID_HEADER, rid)
        self.end_headers()
        if getattr(self, "command", "") != "HEAD":
            self.wfile.write(payload)

    def any_method(self: local.ChaliceRequestHandler, name: str) -> Any:
        # http.server answers a method it has no do_X for with an HTML 501: hand every
        # method to the app instead, which says 405 (or 404 for an unknown path).
        if name.startswith("do_"):
            return self._stocksync_handle
        raise AttributeError(name)

    handler._stocksync_handle = handle_checked  # type: ignore[attr-defined]
    for method in ("GET", "PUT", "POST", "HEAD", "DELETE", "PATCH", "OPTIONS"):
        setattr(handler, "do_" + method, handle_checked)
    handler.send_error = send_error  # type: ignore[method-assign]
    handler.__getattr__ = any_method  # type: ignore[attr-defined]


def _exit_with(parent: int) -> None:
    def watch() -> None:
        # Re-parented (to init or a subreaper) means the parent is gone.
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(0)
    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


if __name__ == "__main__":
    _answer_in_the_envelope()
    if os.environ.get("STOCKSYNC_INSTANCE"):
        _mark_answers(os.environ["STOCKSYNC_INSTANCE"])
    if os.environ.get("STOCKSYNC_PARENT_PID"):
        _exit_with(int(os.environ["STOCKSYNC_PARENT_PID"]))
    sys.argv[0] = "chalice"
    sys.exit(main())
