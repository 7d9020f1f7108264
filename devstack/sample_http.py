"""The sample tushare server's HTTP side: tushare's wire format, and the control
endpoints another process uses to steer the server.

Data calls: POST <url>/<api_name> (or the bare endpoint with `api_name` in the
body), JSON {api_name, token, params, fields}; answered with HTTP 200 and
{request_id, code, msg, data: {fields, items, has_more}} (code != 0: data null).

Control (JSON in and out; a bad value answers 400 with {"error"}):
  GET|POST|DELETE /_control/faults   list, add ({kind, api, trade_date, times, delay, codes}), clear
  GET|DELETE      /_control/stats    calls, refusals and the call timeline; reset them
  GET|POST|DELETE /_control/config   settings; change some ({rate_limit_per_minute,
                                     denied_apis, row_caps, ignore_offset, publish_time});
                                     back to the constructor's
  GET|POST|DELETE /_control/clock    the server's now; set it ({now, ticking}) or move it
                                     ({advance: seconds}); back to the real clock
  DELETE          /_control/quota    forget the calls counted against the quota
  POST            /_control/reset    all of the above back to the start
"""
from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import numpy as np

from devstack.sample_calendar import Table

if TYPE_CHECKING:
    from devstack.sample_tushare import SampleTushareServer

log = logging.getLogger(__name__)


@dataclass
class Answer:
    status: int
    body: bytes
    content_type: str = "application/json; charset=utf-8"
    delay: float = 0.0  # hold the answer back this long (the `timeout` fault)


def encode(code: int, msg: str, data: dict[str, Any] | None) -> bytes:
    payload = {"request_id": uuid.uuid4().hex, "code": code, "msg": msg, "data": data}
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _column(values: np.ndarray) -> list[Any]:
    """A column as JSON values: NaN (a loss-making year's pe, no dividend) is null,
    as tushare sends it."""
    if values.dtype.kind == "f":
        missing = np.isnan(values)
        if missing.any():
            values = values.astype(object)
            values[missing] = None
    return values.tolist()


def page(fields: list[str], table: Table, limit: int | None) -> bytes:
    """One page as tushare's JSON: the table's first `limit` rows (None: all).
    `has_more` says whether rows exist past them; the table holds one such row when
    there are any. Zipping column lists into rows is the fast way (~12 ms for
    5,000 x 11): json writes tuples as arrays."""
    total = len(table[fields[0]])
    end = total if limit is None else min(limit, total)
    columns = [_column(table[f][:end]) for f in fields]
    data = {"fields": fields, "items": list(zip(*columns)), "has_more": end < total}
    return encode(0, "", data)


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


class HTTPServer(ThreadingHTTPServer):
    daemon_threads = True  # a handler asleep in a `timeout` fault must not block exit

    def __init__(self, address: tuple[str, int], app: SampleTushareServer):
        super().__init__(address, Handler)
        self.app = app


class Handler(BaseHTTPRequestHandler):
    server: HTTPServer
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        path = urlsplit(self.path).path.rstrip("/")
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        except (ValueError, UnicodeDecodeError):
            return self._send(Answer(400, b"request body is not JSON", "text/plain"))
        if not isinstance(body, dict):
            return self._send(Answer(400, b"request body must be a JSON object", "text/plain"))
        if path.startswith("/_control/"):
            return self._control("POST", path, body)
        # The api is the URL's last segment (DataApi's style); a bare endpoint uses the body's.
        api = path.rsplit("/", 1)[-1]
        if api in ("", "dataapi"):
            api = str(body.get("api_name") or "")
        try:
            answer = self.server.app.answer(api, body)
        except Exception:  # a bug here must still answer, not hang the client
            log.exception("sample tushare failed on %s", api)
            answer = Answer(500, b"sample tushare server error", "text/plain")
        if answer.delay and not self.server.app.hold(answer.delay):
            return  # shutting down: the client gave up long ago
        self._send(answer)

    def do_GET(self) -> None:
        self._control("GET", urlsplit(self.path).path.rstrip("/"), {})

    def do_DELETE(self) -> None:
        self._control("DELETE", urlsplit(self.path).path.rstrip("/"), {})

    def _control(self, method: str, path: str, body: dict[str, Any]) -> None:
        route = _ROUTES.get((method, path))
        if route is None:
            return self._send(Answer(404, _json({"error": f"no {method} {path}"})))
        try:
            result = route(self.server.app, body)
        except (ValueError, TypeError) as exc:
            return self._send(Answer(400, _json({"error": str(exc)})))
        self._send(Answer(200, _json(result)))

    def _send(self, answer: Answer) -> None:
        try:
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client timed out and left; nothing to tell it

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


def _add_fault(app: SampleTushareServer, body: dict[str, Any]) -> dict[str, Any]:
    fault = app.add_fault(str(body.get("kind")), api=body.get("api", "daily"),
                          trade_date=body.get("trade_date"), times=body.get("times", 1),
                          delay=body.get("delay"), codes=body.get("codes") or ())
    return {"ok": True, "fault": asdict(fault)}


def _set_clock(app: SampleTushareServer, body: dict[str, Any]) -> dict[str, Any]:
    if "advance" in body:
        app.advance_clock(float(body["advance"]))
    elif body.get("now") is not None:
        app.set_now(body["now"], ticking=bool(body.get("ticking", False)))
    else:
        raise ValueError('give {"now": ISO time or epoch seconds, "ticking": bool} '
                         'or {"advance": seconds}')
    return app.clock.describe()


def _done(action: Callable[[], Any]) -> dict[str, Any]:
    action()
    return {"ok": True}


_ROUTES: dict[tuple[str, str], Callable[[SampleTushareServer, dict[str, Any]], Any]] = {
    ("GET", "/_control/faults"): lambda app, _: {"faults": app.faults()},
    ("POST", "/_control/faults"): _add_fault,
    ("DELETE", "/_control/faults"): lambda app, _: _done(app.clear_faults),
    ("GET", "/_control/stats"): lambda app, _: app.stats(),
    ("DELETE", "/_control/stats"): lambda app, _: _done(app.reset_stats),
    ("GET", "/_control/config"): lambda app, _: app.config(),
    ("POST", "/_control/config"): lambda app, body: app.configure(**body),
    ("DELETE", "/_control/config"): lambda app, _: app.reset_config(),
    ("GET", "/_control/clock"): lambda app, _: app.clock.describe(),
    ("POST", "/_control/clock"): _set_clock,
    ("DELETE", "/_control/clock"): lambda app, _: _done(app.clock.reset) | app.clock.describe(),
    ("DELETE", "/_control/quota"): lambda app, _: _done(app.reset_quota),
    ("POST", "/_control/reset"): lambda app, _: _done(app.reset),
}
