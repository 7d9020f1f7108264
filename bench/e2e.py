"""A 90-day range through the whole local stack: API, SQS, workers, database, sample tushare.

Each run starts from empty tables and queues and a sample server that has
generated no day yet (as a fresh stack would), so every trading day is really
fetched and written, not skipped. Worker threads run the Lambda handler
`app.sync_day` from a fresh `WorkerLoop` with the count being measured. The
clock runs from the POST to the first progress answer that says `completed`.
"""
from __future__ import annotations

import time
from datetime import date, timedelta
from typing import Any

import requests

from bench.common import BATCH, Timer, auth, median, reset, trading_days

END = date(2025, 10, 31)
DAYS = 90


def sync_range(api_url: str, start: date, end: date, poll_s: float = 0.05,
               timeout_s: float = 300, body: dict[str, Any] | None = None) -> tuple[dict[str, Any], float]:
    """POST a batch (`body`: more of the request, e.g. datasets) and poll its progress until
    it stops running: (progress, seconds)."""
    with requests.Session() as http, Timer() as timer:
        http.headers.update(auth())
        answer = http.post(api_url + BATCH, timeout=30,
                           json={"start_date": start.isoformat(), "end_date": end.isoformat(), **(body or {})})
        answer.raise_for_status()
        task_id = answer.json()["data"]["task_id"]
        deadline = time.monotonic() + timeout_s
        while True:
            progress = http.get(f"{api_url}{BATCH}/progress/{task_id}", timeout=30).json()["data"]
            if progress["status"] in ("completed", "cancelled") or time.monotonic() > deadline:
                break
            time.sleep(poll_s)
    return progress, timer.seconds


def start_workers(stack: Any, count: int) -> Any:
    import app  # the stack has set the environment its getters read
    from devstack.worker_loop import WorkerLoop
    loop = WorkerLoop(stack.sqs_client(), stack.env["SQS_QUEUE_URL"], app.sync_day, workers=count)
    loop.start()
    return loop


def run(stack: Any, workers: tuple[int, ...] = (1, 2), repeats: int = 3, end: date = END,
        days: int = DAYS, poll_s: float = 0.05) -> list[dict[str, Any]]:
    start = end - timedelta(days=days - 1)
    expected = len(trading_days(stack, start, end))
    results = []
    for count in workers:
        walls, rows = [], []
        for _ in range(repeats):
            reset(stack)
            loop = start_workers(stack, count)
            try:
                final, wall = sync_range(stack.api_url, start, end, poll_s)
            finally:
                loop.stop()
            if final["status"] != "completed" or final["failed"] or final["success"] != expected:
                raise RuntimeError(f"e2e run with {count} workers did not sync every trading day: "
                                   f"{final}")
            walls.append(wall)
            rows.append(final["rows"])
        wall_s = median(walls)
        results.append({
            "workers": count, "days": days, "trading_days": expected,
            "wall_s": round(wall_s, 2), "runs_s": [round(w, 2) for w in walls],
            "rows": int(median(rows)), "ms_per_trading_day": round(1000 * wall_s / expected, 1),
            "start": start.isoformat(), "end": end.isoformat(),
        })
    return results
