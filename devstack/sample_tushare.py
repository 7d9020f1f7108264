"""A local server speaking tushare pro's HTTP protocol, serving the deterministic
sample market of `devstack.sample_data` (daily, adj_factor, daily_basic,
suspend_d, stock_basic, trade_cal), with tushare's row caps, per-minute quota,
permissions and publication time, and fault injection for tests.

The real client (`tushare.pro.client.DataApi`) POSTs JSON to `<http_url>/<api_name>`
and reads `{"code", "msg", "data": {"fields", "items", "has_more"}}`; point one here with

    client = DataApi(token)
    client._DataApi__http_url = server.url   # http://127.0.0.1:PORT/dataapi

Everything can be set in-process or, by another process, over the control
endpoints (see devstack.sample_http): faults, the quota, denied apis, row caps,
whether `offset` is honoured, the publish time and the server's clock.

Run standalone: python -m devstack.sample_tushare --host 127.0.0.1 --port 7001
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from devstack.sample_apis import HANDLERS, ApiError, Call, int_param, published_sessions
from devstack.sample_config import DEFAULT_PUBLISH_TIME, ServerConfig
from devstack.sample_data import SampleMarket, default_market, parse_day
from devstack.sample_http import Answer, HTTPServer, encode, page
from devstack.sample_quota import (RATE_LIMIT_CODE, Clock, Quota, limit_for, market_time,
                                   rate_limit_message)

log = logging.getLogger(__name__)

DEFAULT_TOKEN = "stocksync-sample-token"
TIMELINE_MAX = 100_000  # calls kept per api in the stats' timeline

# tushare's own wording: the client only sees `msg`, and callers classify by it.
MSG_BAD_TOKEN = "您的token不对，请确认。"
MSG_RATE_LIMIT = rate_limit_message(500)  # what the `rate_limit` fault answers
MSG_NO_PERMISSION = ("抱歉，您没有访问该接口的权限，权限的具体详情访问："
                     "https://tushare.pro/document/1?doc_id=108。")

# kind -> (HTTP status, tushare code, msg); `timeout` and `empty` are handled apart.
_ERROR_FAULTS: dict[str, tuple[int, int, str]] = {
    "http_500": (500, 0, "Internal Server Error"),
    "http_502": (502, 0, "Bad Gateway"),
    "rate_limit": (200, RATE_LIMIT_CODE, MSG_RATE_LIMIT),
    "bad_token": (200, 40101, MSG_BAD_TOKEN),
    "no_permission": (200, 40203, MSG_NO_PERMISSION),
}
# `drop`: the answer lacks the rows of `codes` (a short day, as if tushare missed them).
FAULT_KINDS = frozenset(_ERROR_FAULTS) | {"timeout", "empty", "drop"}
DEFAULT_TIMEOUT_DELAY_S = 5.0


@dataclass
class Fault:
    kind: str
    api: str | None = "daily"       # None or "*": any api
    trade_date: str | None = None   # None: any call; else only calls with this trade_date
    times: int | None = 1           # matching calls still to affect; None: forever
    delay: float = DEFAULT_TIMEOUT_DELAY_S  # seconds, for `timeout` only
    codes: tuple[str, ...] = ()  # ts_codes whose rows a `drop` fault leaves out

    def matches(self, api: str, trade_date: str | None) -> bool:
        return (self.api in (None, "*", api)
                and (self.trade_date is None or self.trade_date == trade_date))


def _normalize_date(value: Any) -> str | None:
    return None if value in (None, "") else str(parse_day(value)).replace("-", "")


class SampleTushareServer:
    """tushare pro over HTTP on a background thread; see the module docstring.

    Options (all also settable later with `configure`, or over /_control/config):
      rate_limit_per_minute  None (unlimited), N for every api, or {api: N, "*": N}
      denied_apis            apis this server's tokens may not call
      row_caps               None (tushare's), N for every capped api, or {api: N | None}
      ignore_offset          True (every api), or the apis that answer from row 0 whatever
                             `offset` says, so only smaller calls get everything
      publish_time           "HH:MM" Asia/Shanghai: a session's data exists from then on
      other_tokens           tokens accepted besides `token` (each with its own quota)
      clock                  the real clock's source (epoch seconds); `set_now` overrides it
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, token: str = DEFAULT_TOKEN,
                 market: SampleMarket | None = None, *,
                 rate_limit_per_minute: int | Mapping[str, int] | None = None,
                 denied_apis: Iterable[str] = (),
                 row_caps: int | Mapping[str, int | None] | None = None,
                 ignore_offset: bool | Iterable[str] = False,
                 publish_time: str = DEFAULT_PUBLISH_TIME,
                 other_tokens: Iterable[str] = (),
                 clock: Callable[[], float] | None = None):
        self.host, self.port, self.token = host, port, token
        self.market = market or default_market()
        self._tokens = frozenset([token, *other_tokens])
        self._initial_config = ServerConfig().updated({
            "rate_limit_per_minute": rate_limit_per_minute, "denied_apis": denied_apis,
            "row_caps": row_caps, "ignore_offset": ignore_offset, "publish_time": publish_time})
        self._config = self._initial_config
        self.clock: Clock = Clock(clock) if clock is not None else Clock()
        self._quota = Quota()
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._calls: Counter[str] = Counter()
        self._calls_by_date: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self._refused: Counter[str] = Counter()
        self._timeline: defaultdict[str, deque[dict[str, Any]]] = defaultdict(
            lambda: deque(maxlen=TIMELINE_MAX))
        self._stopping = threading.Event()  # wakes handlers sleeping in a `timeout` fault
        self._httpd: HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle
    def start(self) -> str:
        if self._httpd is None:
            self._stopping.clear()
            self._httpd = HTTPServer((self.host, self.port), self)
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

    @property
    def control_url(self) -> str:
        return self.url.rsplit("/dataapi", 1)[0] + "/_control"

    def __enter__(self) -> SampleTushareServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def hold(self, seconds: float) -> bool:
        """Sleep for a `timeout` fault; False if the server stops meanwhile."""
        return not self._stopping.wait(seconds)

    # -- settings, clock and quota
    def config(self) -> dict[str, Any]:
        with self._lock:
            return self._config.as_json()

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change some settings (names as the constructor's); returns them all."""
        with self._lock:
            self._config = self._config.updated(changes)
            return self._config.as_json()

    def reset_config(self) -> dict[str, Any]:
        with self._lock:
            self._config = self._initial_config
            return self._config.as_json()

    def set_now(self, when: Any, ticking: bool = False) -> None:
        """The server's now: an epoch number, a datetime or an ISO string (no zone:
        Asia/Shanghai). It stands still unless `ticking`."""
        self.clock.set(when, ticking)

    def advance_clock(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def use_real_clock(self) -> None:
        self.clock.reset()

    def reset_quota(self) -> None:
        self._quota.clear()

    def reset(self) -> None:
        """Back to the start: no faults, no stats, constructor settings, real clock,
        empty quota windows."""
        self.clear_faults()
        self.reset_stats()
        self.reset_config()
        self.clock.reset()
        self.reset_quota()

    # -- faults and stats (thread-safe: handlers run on many threads)
    def add_fault(self, kind: str, api: str | None = "daily", trade_date: Any = None,
                  times: int | None = 1, delay: float | None = None,
                  codes: Iterable[str] = ()) -> Fault:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {sorted(FAULT_KINDS)}")
        if times is not None and int(times) < 0:
            times = None  # -1: forever
        fault = Fault(kind=kind, api=api, trade_date=_normalize_date(trade_date),
                      times=None if times is None else int(times),
                      delay=DEFAULT_TIMEOUT_DELAY_S if delay is None else float(delay),
                      codes=tuple(str(c).strip().upper() for c in codes))
        if kind == "drop" and not fault.codes:
            raise ValueError("a `drop` fault names the ts_codes to leave out (codes)")
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
        """What was asked, every call counted (faulted and refused ones too):
        calls {api: n}; by_trade_date {api: {YYYYMMDD: n}};
        refused {api: n}: calls refused by the quota;
        timeline {api: [{"at": epoch seconds (server clock), "refused": by the quota?,
        "outcome": ...}]} in arrival order; outcome "ok", "rate_limited",
        "no_permission", "bad_token", "unknown_api", "bad_params" or "fault:<kind>"."""
        with self._lock:
            return {"calls": dict(self._calls),
                    "by_trade_date": {api: dict(c) for api, c in self._calls_by_date.items()},
                    "refused": dict(self._refused),
                    "timeline": {api: list(t) for api, t in self._timeline.items()}}

    def reset_stats(self) -> None:
        with self._lock:
            self._calls.clear()
            self._calls_by_date.clear()
            self._refused.clear()
            self._timeline.clear()

    def _record(self, api: str, trade_date: str | None, at: float, outcome: str) -> None:
        with self._lock:
            self._calls[api] += 1
            if trade_date is not None:
                self._calls_by_date[api][trade_date] += 1
            if outcome == "rate_limited":
                self._refused[api] += 1
            self._timeline[api].append({"at": at, "refused": outcome == "rate_limited",
                                        "outcome": outcome})

    # -- the protocol
    def answer(self, api: str, request: dict[str, Any]) -> Answer:
        """The answer to one API call; independent of HTTP so it can be reasoned about alone."""
        params = request.get("params")
        params = params if isinstance(params, dict) else {}
        try:
            trade_date = _normalize_date(params.get("trade_date"))
        except ValueError:
            trade_date = None
        at = self.clock.now()
        outcome, answer = self._answer(api, request, params, trade_date, at)
        self._record(api, trade_date, at, outcome)
        return answer

    def _answer(self, api: str, request: dict[str, Any], params: dict[str, Any],
                trade_date: str | None, at: float) -> tuple[str, Answer]:
        # Faults come before the token check: they stand for the network and the
        # server's state, which fail whoever is asking.
        fault = self._take_fault(api, trade_date)
        delay = 0.0
        if fault is not None and fault.kind in _ERROR_FAULTS:
            status, code, msg = _ERROR_FAULTS[fault.kind]
            if status != 200:
                return f"fault:{fault.kind}", Answer(status, msg.encode(), "text/plain; charset=utf-8")
            return f"fault:{fault.kind}", Answer(200, encode(code, msg, None))
        if fault is not None and fault.kind == "timeout":
            delay = fault.delay  # then answer normally, too late for a short client timeout

        with self._lock:
            config = self._config
        try:
            token = request.get("token")
            if not isinstance(token, str) or token not in self._tokens:
                raise ApiError(40101, MSG_BAD_TOKEN, "bad_token")
            handler = HANDLERS.get(api)
            if handler is None:
                raise ApiError(40001, f"请指定正确的接口名: {api!r} 不存在", "unknown_api")
            if api in config.denied_apis:
                raise ApiError(40203, MSG_NO_PERMISSION, "no_permission")
            quota = limit_for(config.rate_limit_per_minute, api)
            if not self._quota.admit(token, api, at, quota):
                raise ApiError(RATE_LIMIT_CODE, rate_limit_message(quota or 0), "rate_limited")
            limit, offset = self._paging(api, params, config)
            rows = handler(self.market, Call(
                params=params, fields=request.get("fields"), offset=offset, limit=limit,
                published=self._published(at, config), today=self._today(at)))
        except ApiError as exc:
            return exc.outcome, Answer(200, encode(exc.code, exc.msg, None), delay=delay)
        table = rows.table
        if fault is not None and fault.kind == "empty":
            table = {f: table[f][:0] for f in rows.fields}
        elif fault is not None and fault.kind == "drop" and "ts_code" in table:
            keep = ~np.isin(table["ts_code"], list(fault.codes))
            table = {f: v[keep] for f, v in table.items()}
        outcome = f"fault:{fault.kind}" if fault is not None else "ok"
        return outcome, Answer(200, page(rows.fields, table, limit), delay=delay)

    @staticmethod
    def _paging(api: str, params: dict[str, Any], config: ServerConfig) -> tuple[int | None, int]:
        """(rows this call may return, None: all; the first row's offset)."""
        cap = config.row_caps.get(api)
        asked = int_param(params, "limit", 0)
        limit = cap if asked <= 0 else (asked if cap is None else min(asked, cap))
        offset = 0 if api in config.ignore_offset else max(int_param(params, "offset", 0), 0)
        return limit, offset

    @staticmethod
    def _today(at: float) -> np.datetime64:
        return np.datetime64(market_time(at).date(), "D")

    def _published(self, at: float, config: ServerConfig) -> int:
        now = market_time(at)
        return published_sessions(self.market, np.datetime64(now.date(), "D"),
                                  now.hour * 60 + now.minute, config.publish_minute)

    def published_through(self) -> str | None:
        """The newest session whose data is out now (YYYYMMDD), or None."""
        with self._lock:
            config = self._config
        count = self._published(self.clock.now(), config)
        return str(self.market.calendar.names[count - 1]) if count else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7001, help="0 picks a free port")
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    parser.add_argument("--rate-limit", type=int, default=None, metavar="N",
                        help="calls a minute per token and api (default: unlimited)")
    parser.add_argument("--row-cap", type=int, default=None, metavar="N",
                        help="rows a call may return, every capped api (default: tushare's)")
    parser.add_argument("--ignore-offset", action="store_true",
                        help="answer every call from its first row, whatever `offset` says")
    parser.add_argument("--deny", action="append", default=[], metavar="API",
                        help="an api the token may not call (repeatable)")
    parser.add_argument("--publish-time", default=DEFAULT_PUBLISH_TIME, metavar="HH:MM",
                        help="when a session's data appears, Asia/Shanghai (default: %(default)s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    try:
        server = SampleTushareServer(
            args.host, args.port, args.token, rate_limit_per_minute=args.rate_limit,
            row_caps=args.row_cap, ignore_offset=args.ignore_offset, denied_apis=args.deny,
            publish_time=args.publish_time)
    except ValueError as exc:
        parser.error(str(exc))
    with server:
        print(server.url, flush=True)  # first line of stdout: scripts read the URL from it
        print(f"token: {server.token}", file=sys.stderr, flush=True)
        done.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
