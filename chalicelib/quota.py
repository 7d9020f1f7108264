"""One tushare quota for every worker: calls per minute per token and interface, kept in
PostgreSQL (migration 013) so that any number of Lambda containers share it.

tushare counts a token's calls to an interface in a sliding minute and refuses the one
over its limit. Here a (token, interface) has one row per call the window allows; taking
a call is one UPDATE of the row whose last use left the window longest ago (SKIP LOCKED:
concurrent takers never wait on each other, never take the same row), so at no instant
do more than `limit` calls fall in any window. A call that finds no free row is told how
long until the oldest one frees up, and waits that long (briefly) or gives up with
`QuotaExhausted`, which the worker turns into a delayed message, not a spent attempt.

The window is a little longer than tushare's minute (QUOTA_MARGIN_S): a call is counted
when taken here, a few milliseconds before tushare sees it, and a slow request must not
make two calls of one row look closer together to tushare than they were here.
"""
from __future__ import annotations

import hashlib
import logging
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator, Mapping

from chalicelib.db import Database, query
from chalicelib.errors import ConfigError

log = logging.getLogger(__name__)

# Calls a minute per interface when QUOTA_PER_MINUTE does not say: what a token of
# 2000-5000 points gets (tushare's "积分与频次" table); `*` is every other interface.
DEFAULT_QUOTA_PER_MINUTE: dict[str, int] = {
    "daily": 500, "adj_factor": 500, "daily_basic": 200, "suspend_d": 200,
    "stock_basic": 50, "trade_cal": 200, "*": 200,
}


_waits = threading.local()


@contextmanager
def wait_no_later_than(deadline: float) -> Iterator[None]:
    """Within this block (this thread), no quota wait goes past `deadline` (time.monotonic()):
    a worker holding a day's lease must not wait for the quota beyond it."""
    saved = getattr(_waits, "deadline", None)
    _waits.deadline = deadline if saved is None else min(saved, deadline)
    try:
        yield
    finally:
        _waits.deadline = saved


class QuotaExhausted(Exception):
    """No call of `api` is allowed for `wait_s` more seconds than the caller may wait.

    `retry_in_s`: when to try again, somewhat before the call frees up, so that the next
    try is already waiting (within its budget) when it does, and takes it on time: a
    retry due after it (SQS delays are whole seconds) would leave the call unused
    meanwhile, or let a later taker have it."""

    def __init__(self, api: str, wait_s: float, retry_in_s: float | None = None):
        super().__init__(f"tushare quota of {api} in use: free again in {wait_s:.1f} s")
        self.api = api
        self.wait_s = wait_s
        self.retry_in_s = wait_s if retry_in_s is None else retry_in_s


def token_fingerprint(token: str) -> str:
    """What the quota table stores for a token: never the token itself."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:16]


def parse_quota(text: str | None) -> dict[str, int]:
    """QUOTA_PER_MINUTE: `api:N` pairs, comma-separated (`*:N` for the rest; 0: no limit),
    over the defaults."""
    limits = dict(DEFAULT_QUOTA_PER_MINUTE)
    for number, raw in enumerate((text or "").split(","), start=1):
        item = raw.strip()
        if not item:
            continue
        api, sep, value = (part.strip() for part in item.partition(":"))
        if not sep or not api or not value.isdigit():
            raise ConfigError(f"QUOTA_PER_MINUTE entry {number}: expected api:N, e.g. daily:500")
        limits[api] = int(value)
    return limits


@dataclass(frozen=True)
class QuotaPolicy:
    per_minute: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_QUOTA_PER_MINUTE))
    window_s: float = 60.0  # tushare's minute (a test against a faster clock shortens it)
    margin_s: float = 1.0
    max_wait_s: float = 20.0  # longer than this: hand the message back instead of waiting

    def limit(self, api: str) -> int:
        return int(self.per_minute.get(api, self.per_minute.get("*", 0)))


class TushareQuota:
    """`acquire(api)` before every tushare call, shared through the database."""

    def __init__(self, db: Database, token: str, policy: QuotaPolicy,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic):
        self._db = db
        self._fp = token_fingerprint(token)
        self._policy = policy
        self._sleep = sleep
        self._clock = clock
        self._ready: set[tuple[str, int]] = set()
        self._lock = threading.Lock()
        self.waited_s = 0.0  # seconds spent waiting for the quota, for logs and the benchmark

    @property
    def policy(self) -> QuotaPolicy:
        return self._policy

    def acquire(self, api: str, max_wait_s: float | None = None) -> None:
        """Take one call of `api`; waits up to `max_wait_s` (the policy's by default),
        else raises QuotaExhausted saying how long the wait would be."""
        limit = self._policy.limit(api)
        if limit <= 0:
            return
        budget = self._policy.max_wait_s if max_wait_s is None else max_wait_s
        self._ensure_slots(api, limit)
        deadline = self._clock() + budget
        outer = getattr(_waits, "deadline", None)
        if outer is not None:
            deadline = min(deadline, outer)
        params = {"token_fp": self._fp, "api": api, "limit": limit,
                  "window_s": self._policy.window_s + self._policy.margin_s}
        while True:
            with self._db.transaction() as cur:
                cur.execute(query("quota_take"), params)
                if cur.fetchone() is not None:
                    return
                cur.execute(query("quota_free_in"), params)
                row = cur.fetchone()
            if row["free_in_s"] is None:  # no rows (the table was emptied): make them again
                self._ready.discard((api, limit))
                self._ensure_slots(api, limit)
                continue
            wait = max(float(row["free_in_s"]), 0.01)
            left = deadline - self._clock()
            if wait > left:
                # Back with half of a wait's budget left (a next try waits up to max_wait_s).
                raise QuotaExhausted(api, wait, max(wait - self._policy.max_wait_s / 2, 0.0))
            # A little past the moment, so the row is free when we look again.
            pause = min(wait + 0.02, left)
            with self._lock:
                self.waited_s += pause
            self._sleep(pause)

    def _ensure_slots(self, api: str, limit: int) -> None:
        if (api, limit) in self._ready:
            return
        with self._db.transaction() as cur:
            cur.execute(query("quota_slots"), {"token_fp": self._fp, "api": api, "limit": limit})
        self._ready.add((api, limit))
