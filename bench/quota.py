"""The shared tushare quota under parallel workers: refusals, and how much of the allowed rate is used.

The sample server enforces tushare's quota (`limit` calls a minute per token and interface,
tushare's refusal text beyond it, devstack/sample_quota.py). Five worker threads run the
Lambda handler `app.sync_day` on a 90-day job of three datasets (daily, adj_factor,
daily_basic; the completeness check adds suspend_d and the listings), every call through
`chalicelib.quota`, whose table in PostgreSQL they share.

A minute of the server's clock passes in 60/`speedup` real seconds: the server's clock is
a sped-up `Clock` (as tests/test_quota.py does) and the quota's window is set to the same
real length (QUOTA_WINDOW_S = 60/speedup, QUOTA_MARGIN_S and QUOTA_MAX_WAIT_S scaled
alike), so the job crosses the same number of windows as it would in real time, in a
tenth of the wall time. What the speed-up cannot scale: request latency and SQS delays,
which take `speedup` times more of a window here than in real time, so the figures are if
anything pessimistic.

Utilisation is judged on the binding interface (the most calls for its limit) in the
server's clock: `n` calls from the first at t1 to the last at tn can at most be
`limit x ((tn - t1)/60 s + 1)` under a sliding minute (exactly that when tn - t1 is a whole
number of minutes), so utilisation = n / (limit x ((tn - t1)/60 + 1)): the achieved rate
over the busy interval and the one minute its last calls hold, against the allowed rate.
"""
from __future__ import annotations

import dataclasses
import time
from datetime import date, timedelta
from typing import Any

from bench.common import db_cursor, reset, trading_days
from bench.e2e import END, start_workers, sync_range

DATASETS = ("daily", "adj_factor", "daily_basic")
WINDOW_S = 60.0  # tushare's (and the sample server's) minute


def utilisation(times: list[float], limit: int, window_s: float = WINDOW_S) -> dict[str, Any]:
    """Calls at `times` (server clock) against `limit` a `window_s`: the busy interval, the
    achieved and allowed rates a minute, their ratio, and the busiest sliding window."""
    times = sorted(times)
    if not times:
        return {"calls": 0}
    busy = times[-1] - times[0]
    achieved = len(times) * window_s / (busy + window_s)
    end = 0
    busiest = 0
    for begin, at in enumerate(times):  # calls in [at, at + window): two pointers
        end = max(end, begin)
        while end < len(times) and times[end] < at + window_s:
            end += 1
        busiest = max(busiest, end - begin)
    return {"calls": len(times), "busy_s": round(busy, 1), "rate_per_min": round(achieved, 2),
            "allowed_per_min": limit, "utilisation": round(achieved / limit, 3),
            "busiest_window": busiest}


def _configure_app(**fields: Any) -> dict[str, Any]:
    """The in-process app's settings changed (the quota and source rebuilt); the old clients."""
    import app
    saved = dict(app._clients)
    settings = dataclasses.replace(app.get_settings(), **fields)
    for derived in ("source", "worker", "audit"):
        app._clients.pop(derived, None)
    app._clients["settings"] = settings
    return saved


def _restore_app(saved: dict[str, Any]) -> None:
    import app
    app._clients.clear()
    app._clients.update(saved)


def _max_attempts(stack: Any) -> int:
    """The most attempts any day of the job spent (the tables held this job alone)."""
    with db_cursor(stack) as cur:
        cur.execute("SELECT coalesce(max(attempts), 0) AS n FROM sync_job_days")
        return int(cur.fetchone()["n"])


def run(stack: Any, limit: int = 10, speedup: float = 10.0, workers: int = 5, days: int = 90,
        end: date = END, datasets: tuple[str, ...] = DATASETS, margin_s: float = 1.0,
        max_wait_s: float = 20.0, timeout_s: float = 900) -> dict[str, Any]:
    from devstack.sample_quota import Clock
    start = end - timedelta(days=days - 1)
    expected = len(trading_days(stack, start, end))
    reset(stack)
    server = stack.tushare
    saved_clock = server.clock
    saved_limits = server.config()["rate_limit_per_minute"]
    began = time.time()
    server.clock = Clock(lambda: began + (time.time() - began) * speedup)
    server.reset_quota()
    server.configure(rate_limit_per_minute={"*": limit})
    saved_app = _configure_app(quota_per_minute=(("*", limit),), quota_window_s=WINDOW_S / speedup,
                               quota_margin_s=margin_s / speedup, quota_max_wait_s=max_wait_s / speedup)
    loop = start_workers(stack, workers)
    try:
        final, wall = sync_range(stack.api_url, start, end, poll_s=0.2, timeout_s=timeout_s,
                                 body={"datasets": list(datasets)})
    finally:
        loop.stop()
        _restore_app(saved_app)
        server.configure(rate_limit_per_minute=saved_limits or None)
        server.clock = saved_clock
        server.reset_quota()
    stats = server.stats()
    attempts = _max_attempts(stack)
    if final["status"] != "completed" or final["failed"] or final["success"] != expected:
        raise RuntimeError(f"quota run did not sync every trading day: {final}")
    per_api = {api: utilisation([c["at"] for c in calls if not c["refused"]], limit)
               for api, calls in stats["timeline"].items()}
    # The binding interface: the most calls for its limit; of equals, the least used.
    binding = min(per_api, key=lambda api: (-per_api[api]["calls"], per_api[api].get("utilisation", 1)))
    return {
        "workers": workers, "days": days, "trading_days": expected, "datasets": list(datasets),
        "start": start.isoformat(), "end": end.isoformat(),
        "limit_per_min": limit, "speedup": speedup, "wall_s": round(wall, 1),
        "server_minutes": round(wall * speedup / 60, 1),
        "refused": sum(stats["refused"].values()), "refused_by_api": stats["refused"],
        # Deliveries whose handler raised: with no refusal and no failure, days handed back
        # to the queue by a quota wait longer than QUOTA_MAX_WAIT_S (no attempt spent).
        "calls": stats["calls"], "handed_back": loop.failed, "max_attempts": attempts,
        "binding_api": binding, "utilisation": per_api[binding]["utilisation"],
        "per_api": per_api, "rows": final["rows"],
    }
