"""The sample server's clock and tushare's per-minute quota.

tushare limits each token to N calls a minute per interface and refuses the
rest with code 40203 and the message below (N in it). The quota here is a
sliding 60-second window over the calls it let through, per (token, api): a call
at time t passes iff fewer than N passed in (t - 60 s, t]. Refused calls do not
use the quota up.

Time comes from `Clock`, which tests set and move by hand, so a window can be
crossed without waiting a minute.
"""
from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

MARKET_TZ = ZoneInfo("Asia/Shanghai")
WINDOW_S = 60.0
MSG_RATE_LIMIT_TEMPLATE = ("抱歉，您每分钟最多访问该接口{limit}次，权限的具体详情访问："
                           "https://tushare.pro/document/1?doc_id=108。")
RATE_LIMIT_CODE = 40203

Limits = dict[str, int]  # api (or "*" for every other api) -> calls a minute


def parse_instant(value: Any) -> float:
    """Seconds since the epoch from a number, a datetime or an ISO 8601 string; a
    time without a zone is Asia/Shanghai's, as tushare's users read it."""
    if isinstance(value, bool):
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"not an ISO 8601 time: {value!r}") from None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=MARKET_TZ)
        return value.timestamp()
    raise ValueError(f"not a time: {value!r}")


def market_time(epoch: float) -> datetime:
    """An instant as Asia/Shanghai's wall clock shows it."""
    return datetime.fromtimestamp(epoch, MARKET_TZ)


class Clock:
    """The server's now: the real clock by default; once set, an instant that stands
    still (or, `ticking`, runs on from there at the real clock's pace)."""

    def __init__(self, source: Callable[[], float] = time.time) -> None:
        self._source = source
        self._lock = threading.Lock()
        self._set_at: float | None = None   # the instant set
        self._set_when = 0.0                # the source's time when it was set
        self._ticking = False

    def now(self) -> float:
        with self._lock:
            if self._set_at is None:
                return self._source()
            if self._ticking:
                return self._set_at + (self._source() - self._set_when)
            return self._set_at

    def set(self, when: Any, ticking: bool = False) -> None:
        instant = parse_instant(when)
        with self._lock:
            self._set_at, self._set_when, self._ticking = instant, self._source(), bool(ticking)

    def advance(self, seconds: float) -> None:
        """Move a set clock on (the real clock cannot be moved: it is set here first)."""
        now = self.now()
        with self._lock:
            ticking = self._ticking if self._set_at is not None else False
            self._set_at, self._set_when, self._ticking = now + float(seconds), self._source(), ticking

    def reset(self) -> None:
        with self._lock:
            self._set_at, self._ticking = None, False

    def describe(self) -> dict[str, Any]:
        with self._lock:
            mode = "real" if self._set_at is None else ("ticking" if self._ticking else "frozen")
        now = self.now()
        return {"now": market_time(now).isoformat(), "epoch": now,
                "mode": mode}


def normalize_limits(value: int | Mapping[str, int] | None) -> Limits:
    """None: unlimited; a number: that many calls a minute for every api; a mapping:
    per api, "*" for the others. A limit below 1 is refused."""
    if value is None:
        return {}
    if isinstance(value, bool):
        raise ValueError(f"not a rate limit: {value!r}")
    if isinstance(value, (int, float, str)):
        value = {"*": value}
    if not isinstance(value, Mapping):
        raise ValueError(f"not a rate limit: {value!r}")
    limits: Limits = {}
    for api, limit in value.items():
        if limit is None:
            continue
        if isinstance(limit, bool) or int(limit) != float(limit) or int(limit) < 1:
            raise ValueError(f"rate limit for {api!r} must be a whole number >= 1, not {limit!r}")
        limits[str(api)] = int(limit)
    return limits


def limit_for(limits: Limits, api: str) -> int | None:
    return limits.get(api, limits.get("*"))


class Quota:
    """The calls let through in the last minute, per (token, api); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._passed: defaultdict[tuple[str, str], deque[float]] = defaultdict(deque)

    def admit(self, token: str, api: str, at: float, limit: int | None) -> bool:
        """Let a call at `at` through (and count it), or refuse it."""
        if limit is None:
            return True
        with self._lock:
            passed = self._passed[(token, api)]
            while passed and passed[0] <= at - WINDOW_S:
                passed.popleft()
            if len(passed) >= limit:
                return False
            passed.append(at)
            return True

    def clear(self) -> None:
        """Forget the calls made so far (every window starts empty)."""
        with self._lock:
            self._passed.clear()


def rate_limit_message(limit: int) -> str:
    return MSG_RATE_LIMIT_TEMPLATE.format(limit=limit)
