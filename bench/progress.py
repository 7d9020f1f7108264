"""Latency of the progress endpoint under 50 concurrent pollers while a batch runs.

The pollers run in a child process (`python -m bench.progress --child ...`), so
the workers, the sample tushare server and moto, which share the benchmark
process's GIL, do not hold up the client's clock. Each poller is a thread with
its own keep-alive `requests.Session`, polling every `interval_s` (a page's
timer: the next poll is due `interval_s` after the previous one was due, sooner
if the answer came late) from a random start within the first interval, until
the job is no longer running.

The server is `chalice local`: one process, a thread per connection, on the
same two cores as PostgreSQL, the workers and the pollers themselves.
"""
from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import threading
import time
from datetime import date, timedelta
from typing import Any

import requests

from bench.common import BATCH, ROOT, auth, median, percentile, reset, trading_days
from bench.e2e import DAYS, END, start_workers

POLLERS = 50
INTERVAL_S = 0.25


def poll(api_url: str, task_id: str, pollers: int = POLLERS, interval_s: float = INTERVAL_S,
         timeout_s: float = 120) -> dict[str, Any]:
    """Poll one job's progress from `pollers` threads until it stops running."""
    url = f"{api_url}{BATCH}/progress/{task_id}"
    latencies: list[float] = []
    errors: list[str] = []
    done = threading.Event()
    lock = threading.Lock()
    deadline = time.monotonic() + timeout_s
    barrier = threading.Barrier(pollers)

    def poller(seed: int) -> None:
        mine: list[float] = []
        with requests.Session() as http:
            http.headers.update(auth())
            barrier.wait()
            due = time.monotonic() + random.Random(seed).uniform(0, interval_s)
            while not done.is_set() and time.monotonic() < deadline:
                pause = due - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                started = time.perf_counter()
                try:
                    answer = http.get(url, timeout=30)
                    elapsed = time.perf_counter() - started
                    if answer.status_code != 200:
                        with lock:
                            errors.append(f"HTTP {answer.status_code}")
                    else:
                        mine.append(elapsed)
                        if answer.json()["data"]["status"] in ("completed", "cancelled"):
                            done.set()
                except requests.RequestException as exc:
                    with lock:
                        errors.append(type(exc).__name__)
                due = max(due + interval_s, time.monotonic() - interval_s)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=poller, args=(i,), daemon=True) for i in range(pollers)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"latencies_s": latencies, "errors": errors, "seconds": time.monotonic() - began}


def _poll_in_child(api_url: str, task_id: str, pollers: int, interval_s: float) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.progress", "--child", "--api", api_url,
               "--task", task_id, "--pollers", str(pollers), "--interval", str(interval_s)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"progress pollers failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout)


def _batches(stack: Any, pollers: int, interval_s: float, repeats: int, workers: int,
             start: date, end: date, expected: int) -> dict[str, Any]:
    latencies: list[float] = []
    errors: list[str] = []
    seconds = 0.0
    for _ in range(repeats):
        reset(stack)
        loop = start_workers(stack, workers)
        try:
            answer = requests.post(stack.api_url + BATCH, timeout=30, headers=auth(), json={
                "start_date": start.isoformat(), "end_date": end.isoformat()})
            answer.raise_for_status()
            task_id = answer.json()["data"]["task_id"]
            polled = _poll_in_child(stack.api_url, task_id, pollers, interval_s)
        finally:
            loop.stop()
        final = requests.get(f"{stack.api_url}{BATCH}/progress/{task_id}", timeout=30,
                             headers=auth()).json()["data"]
        if final["status"] != "completed" or final["success"] != expected:
            raise RuntimeError(f"the polled batch did not complete: {final}")
        latencies += polled["latencies_s"]
        errors += polled["errors"]
        seconds += polled["seconds"]
    return {
        "requests": len(latencies) + len(errors), "errors": len(errors),
        "requests_per_s": round(len(latencies) / seconds, 1) if seconds else 0.0,
        "p50_ms": round(1000 * median(latencies), 2),
        "p90_ms": round(1000 * percentile(latencies, 90), 2),
        "p99_ms": round(1000 * percentile(latencies, 99), 2),
        "max_ms": round(1000 * max(latencies), 2) if latencies else None,
    }


def run(stack: Any, pollers: int = POLLERS, interval_s: float = INTERVAL_S, repeats: int = 2,
        workers: int = 2, end: date = END, days: int = DAYS, saturate: bool = True) -> dict[str, Any]:
    """Run `repeats` batches (fresh tables each), polled by `pollers`; latencies pooled.
    With `saturate`, one more batch polled with no pause at all: the server's ceiling."""
    start = end - timedelta(days=days - 1)
    expected = len(trading_days(stack, start, end))
    result: dict[str, Any] = {"pollers": pollers, "interval_s": interval_s, "workers": workers,
                              "batches": repeats}
    result.update(_batches(stack, pollers, interval_s, repeats, workers, start, end, expected))
    result["server"] = "chalice local (one process, a thread per connection)"
    if saturate:
        result["saturated"] = {"interval_s": 0.0, "batches": 1,
                               **_batches(stack, pollers, 0.0, 1, workers, start, end, expected)}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="progress pollers (the benchmark's child process)")
    parser.add_argument("--child", action="store_true", required=True)
    parser.add_argument("--api", required=True)
    parser.add_argument("--task", required=True)
    parser.add_argument("--pollers", type=int, default=POLLERS)
    parser.add_argument("--interval", type=float, default=INTERVAL_S)
    args = parser.parse_args(argv)
    result = poll(args.api, args.task, args.pollers, args.interval)
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
