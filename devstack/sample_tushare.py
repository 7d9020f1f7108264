"""A local server speaking tushare pro's HTTP protocol, serving the deterministic
sample market of `devstack.sample_data`, with fault injection for tests.

The real client (`tushare.pro.client.DataApi`) POSTs JSON to `<http_url>/<api_name>`
and reads `{"code", "msg", "data": {"fields", "items"}}`; point one here with

    client = DataApi(token)
    client._DataApi__http_url = server.url   # http://127.0.0.1:PORT/dataapi

Faults can be set in-process (`add_fault`) or over HTTP by another process:
POST/DELETE /_control/faults, GET/DELETE /_control/stats.

Run standalone: python -m devstack.sample_tushare --host 127.0.0.1 --port 7001
"""
from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import uuid
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from devstack.sample_data import (DAILY_FIELDS, FIRST_SESSION, STOCK_BASIC_FIELDS,
                                  TRADE_CAL_FIELDS, SampleMarket, Table, default_market,
                                  parse_day)

log = logging.getLogger(__name__)

DEFAULT_TOKEN = "stocksync-sample-token"
MAX_ROWS = 6000  # tushare caps one `daily` call at 6000 rows

# tushare's own wording: the client only sees `msg`, and callers classify by it.
MSG_BAD_TOKEN = "您的token不对，请确认。"
MSG_RATE_LIMIT = ("抱歉，您每分钟最多访问该接口500次，权限的具体详情访问："
                  "https://tushare.pro/document/1?doc_id=108。")
MSG_NO_PERMISSION = ("抱歉，您没有访问该接口的权限，权限的具体详情访问："
                     "https://tushare.pro/document/1?doc_id=108。")

# kind -> (HTTP status, tushare code, msg); `timeout` and `empty` are handled apart.
_ERROR_FAULTS: dict[str, tuple[int, int, str]] = {
    "http_500": (500, 0, "Internal Server Error"),
    "http_502": (502, 0, "Bad Gateway"),
    "rate_limit": (200, 40203, MSG_RATE_LIMIT),
    "bad_token": (200, 40101, MSG_BAD_TOKEN),
    "no_permission": (200, 40203, MSG_NO_PERMISSION),
}
FAULT_KINDS = frozenset(_ERROR_FAULTS) | {"timeout", "empty"}
DEFAULT_TIMEOUT_DELAY_S = 5.0


class ApiError(Exception):
    """An answer with a non-zero tushare code (still HTTP 200, as tushare does)."""

    def __init__(self, code: int, msg: str):
        super().__init__(msg)
        self.code, self.msg = code, msg


@dataclass
class Fault:
    kind: str
    api: str | None = "daily"       # None or "*": any api
    trade_date: str | None = None   # None: any call; else only calls with this trade_date
    times: int | None = 1           # matching calls still to affect; None: forever
    delay: float = DEFAULT_TIMEOUT_DELAY_S  # seconds, for `timeout` only

    def matches(self, api: str, trade_date: str | None) -> bool:
        return (self.api in (None, "*", api)
                and (self.trade_date is None or self.trade_date == trade_date))


@dataclass
class Answer:
    status: int
    body: bytes
    content_type: str = "application/json; charset=utf-8"
    delay: float = 0.0  # hold the answer back this long (the `timeout` fault)


def _normalize_date(value: Any) -> str | None:
    return None if value in (None, "") else str(parse_day(value)).replace("-", "")


def _field_list(fields: Any, known: tuple[str, ...]) -> list[str]:
    """tushare's `fields` is 'a,b' or a list; empty means all; unknown names are dropped."""
    names = fields.split(",") if isinstance(fields, str) else list(fields or [])
    chosen = [n.strip() for n in names if n.strip() in known]
    return chosen or list(known)


def _int_param(params: dict[str, Any], name: str, default: int) -> int:
    value = params.get(name)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ApiError(40002, f"参数 {name} 必须是整数: {value!r}") from None


def _encode(code: int, msg: str, data: dict[str, Any] | None) -> bytes:
    payload = {"request_id": uuid.uuid4().hex, "code": code, "msg": msg, "data": data}
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class SampleTushareServer:
    """tushare pro over HTTP on a background thread; see the module docstring."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, token: str = DEFAULT_TOKEN,
                 market: SampleMarket | None = None):
        self.host, self.port, self.token = host, port, token
        self.market = market or default_market()
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._calls: Counter[str] = Counter()
        self._calls_by_date: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self._stopping = threading.Event()  # wakes handlers sleeping in a `timeout` fault
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle
    def start(self) -> str:
        if self._httpd is None:
            self._stopping.clear()
            self._httpd = _HTTPServer((self.host, self.port), _Handler, self)
            self.port = self._httpd.server_address[1]
            self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={
                "poll_interval": 0.1}, name=f"sample-tushare:{self.port}", daemon=True)
            self._thread.start()
            log.info("sample tushare serving at %s", self.url)
        return self.url

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = self._thread = None

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the sample tushare server is not started")
        return f"http://{self.host}:{self.port}/dataapi"

    def __enter__(self) -> SampleTushareServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def hold(self, seconds: float) -> bool:
        """Sleep for a `timeout` fault; False if the server stops meanwhile."""
        return not self._stopping.wait(seconds)

    # -- faults and stats (thread-safe: handlers run on many threads)
    def add_fault(self, kind: str, api: str | None = "daily", trade_date: Any = None,
                  times: int | None = 1, delay: float | None = None) -> Fault:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {sorted(FAULT_KINDS)}")
        if times is not None and int(times) < 0:
            times = None  # -1: forever
        fault = Fault(kind=kind, api=api, trade_date=_normalize_date(trade_date),
                      times=None if times is None else int(times),
                      delay=DEFAULT_TIMEOUT_DELAY_S if delay is None else float(delay))
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def faults(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(f) for f in self._faults]

    def _take_fault(self, api: str, trade_date: str | None) -> Fault | None:
        """The first matching rule, one of its `times` used up; rules apply in the order added."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(api, trade_date):
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            self._faults.remove(fault)
                    return fault
        return None

    def stats(self) -> dict[str, Any]:
        """{"calls": {api: n}, "by_trade_date": {api: {YYYYMMDD: n}}}; faulted calls count."""
        with self._lock:
            return {"calls": dict(self._calls),
                    "by_trade_date": {api: dict(c) for api, c in self._calls_by_date.items()}}

    def reset_stats(self) -> None:
        with self._lock:
            self._calls.clear()
            self._calls_by_date.clear()

    # -- the protocol
    def answer(self, api: str, request: dict[str, Any]) -> Answer:
        """The answer to one API call; independent of HTTP so it can be reasoned about alone."""
        params = request.get("params") or {}
        try:
            trade_date = _normalize_date(params.get("trade_date"))
        except ValueError:
            trade_date = None
        with self._lock:
            self._calls[api] += 1
            if trade_date is not None:
                self._calls_by_date[api][trade_date] += 1

        # Faults come before the token check: they stand for the network and the
        # server's state, which fail whoever is asking.
        fault = self._take_fault(api, trade_date)
        delay = 0.0
        if fault is not None and fault.kind in _ERROR_FAULTS:
            status, code, msg = _ERROR_FAULTS[fault.kind]
            if status != 200:
                return Answer(status, msg.encode(), "text/plain; charset=utf-8")
            return Answer(200, _encode(code, msg, None))
        if fault is not None and fault.kind == "timeout":
            delay = fault.delay  # then answer normally, too late for a short client timeout

        try:
            if request.get("token") != self.token:
                raise ApiError(40101, MSG_BAD_TOKEN)
            handler = _APIS.get(api)
            if handler is None:
                raise ApiError(40001, f"请指定正确的接口名: {api!r} 不存在")
            fields, table, limit, offset = handler(self, params, request.get("fields"))
        except ApiError as exc:
            return Answer(200, _encode(exc.code, exc.msg, None), delay=delay)
        if fault is not None and fault.kind == "empty":
            table = {f: table[f][:0] for f in fields}
        return Answer(200, _page(fields, table, limit, offset), delay=delay)

    def _daily(self, params: dict[str, Any], fields: Any) -> tuple[list[str], Table, int, int]:
        market = self.market
        limit = min(_int_param(params, "limit", MAX_ROWS), MAX_ROWS)
        offset = max(_int_param(params, "offset", 0), 0)
        codes = [c.strip().upper() for c in str(params.get("ts_code") or "").split(",") if c.strip()]
        try:
            if params.get("trade_date"):
                start = end = parse_day(params["trade_date"])
            elif codes or params.get("start_date"):
                start = parse_day(params.get("start_date") or FIRST_SESSION)
                end = parse_day(params.get("end_date") or date.today().isoformat())
            else:
                raise ApiError(40002, "daily 需要 trade_date，或 ts_code / start_date")
        except ValueError as exc:
            raise ApiError(40002, f"日期参数错误: {exc}") from None
        days = market.calendar.session_indices(start, end)
        symbols = market.symbol_indices(codes) if codes else None
        # One row past the page tells `has_more` the truth.
        table = market.daily(symbols, days, max_rows=offset + limit + 1)
        return _field_list(fields, DAILY_FIELDS), table, limit, offset

    def _trade_cal(self, params: dict[str, Any], fields: Any) -> tuple[list[str], Table, int, int]:
        try:
            start = parse_day(params.get("start_date") or FIRST_SESSION)
            end = parse_day(params.get("end_date") or f"{date.today().year}1231")
            is_open = params.get("is_open")
            is_open = None if is_open in (None, "") else int(is_open)
        except ValueError as exc:
            raise ApiError(40002, f"参数错误: {exc}") from None
        table = self.market.calendar.days(start, end)
        # tushare lists the calendar newest first.
        table = {k: v[::-1] for k, v in table.items()}
        table["exchange"] = np.full(len(table["cal_date"]), params.get("exchange") or "SSE",
                                    dtype=object)
        if is_open is not None:
            keep = table["is_open"] == is_open
            table = {k: v[keep] for k, v in table.items()}
        return _field_list(fields, TRADE_CAL_FIELDS), table, 1 << 30, 0

    def _stock_basic(self, params: dict[str, Any], fields: Any) -> tuple[list[str], Table, int, int]:
        if (params.get("list_status") or "L") != "L":
            table = {f: np.array([], dtype=object) for f in STOCK_BASIC_FIELDS}
        else:
            # Listed today: the sample universe has listings scheduled into 2026.
            table = self.market.stock_basic(np.datetime64(date.today(), "D"))
        exchange = {"SSE": ".SH", "SZSE": ".SZ", "BSE": ".BJ"}.get(params.get("exchange") or "")
        keep = np.ones(len(table["ts_code"]), dtype=bool)
        if exchange:
            keep &= np.array([c.endswith(exchange) for c in table["ts_code"]], dtype=bool)
        if params.get("ts_code"):
            keep &= np.isin(table["ts_code"], str(params["ts_code"]).split(","))
        if params.get("market"):
            keep &= table["market"] == params["market"]
        table = {k: v[keep] for k, v in table.items()}
        limit = min(_int_param(params, "limit", 10_000), 10_000)
        return (_field_list(fields, STOCK_BASIC_FIELDS), table, limit,
                max(_int_param(params, "offset", 0), 0))


_APIS = {"daily": SampleTushareServer._daily, "trade_cal": SampleTushareServer._trade_cal,
         "stock_basic": SampleTushareServer._stock_basic}


def _page(fields: list[str], table: Table, limit: int, offset: int) -> bytes:
    """One page as tushare's JSON: column lists zipped into rows is the fast way
    (~12 ms for 5,000 x 11) as json serializes tuples as arrays."""
    total = len(table[fields[0]])
    end = min(offset + limit, total)
    columns = [table[f][offset:end].tolist() for f in fields]
    data = {"fields": fields, "items": list(zip(*columns)), "has_more": end < total}
    return _encode(0, "", data)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True  # a handler asleep in a `timeout` fault must not block exit

    def __init__(self, address: tuple[str, int], handler: type, app: SampleTushareServer):
        super().__init__(address, handler)
        self.app = app


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
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
        app = self.server.app
        result: Any
        if (method, path) == ("POST", "/_control/faults"):
            try:
                fault = app.add_fault(str(body.get("kind")), api=body.get("api", "daily"),
                                      trade_date=body.get("trade_date"),
                                      times=body.get("times", 1), delay=body.get("delay"))
            except (ValueError, TypeError) as exc:
                return self._send(Answer(400, _json({"error": str(exc)})))
            result = {"ok": True, "fault": asdict(fault)}
        elif (method, path) == ("GET", "/_control/faults"):
            result = {"faults": app.faults()}
        elif (method, path) == ("DELETE", "/_control/faults"):
            app.clear_faults()
            result = {"ok": True}
        elif (method, path) == ("GET", "/_control/stats"):
            result = app.stats()
        elif (method, path) == ("DELETE", "/_control/stats"):
            app.reset_stats()
            result = {"ok": True}
        else:
            return self._send(Answer(404, _json({"error": f"no {method} {path}"})))
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


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7001, help="0 picks a free port")
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    with SampleTushareServer(args.host, args.port, args.token) as server:
        print(server.url, flush=True)  # first line of stdout: scripts read the URL from it
        print(f"token: {server.token}", file=sys.stderr, flush=True)
        done.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
