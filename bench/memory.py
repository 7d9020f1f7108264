"""Peak memory of a worker syncing one day, as a Lambda container would.

A child process (`python -m bench.memory --child`) imports the app, receives
the day's message from the queue and runs the Lambda handler `app.sync_day` on
it, like a cold worker: the calendar fetch, the day's fetch, the write and the
settle. It reports its own peak RSS (VmHWM from /proc/self/status) after the
imports and after the day, so the day's own cost shows apart from the imports'.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import requests

from bench.common import BATCH, ROOT, SAMPLE_DAY, auth, median, reset


def _status_mb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def _peak_mb() -> float:
    peak = _status_mb("VmHWM")
    if peak is not None:
        return peak
    import resource  # no /proc: ru_maxrss is KiB on Linux, bytes on macOS
    scale = 1 if sys.platform == "darwin" else 1024
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20, 1)


def child(timeout_s: float = 60) -> dict[str, Any]:
    """In the child: import the app, handle one day's message, report memory."""
    import app
    from devstack.services import sqs_client
    from devstack.worker_loop import WorkerLoop
    loop = WorkerLoop(sqs_client(os.environ.get("SQS_ENDPOINT_URL") or None),
                      os.environ["SQS_QUEUE_URL"], app.sync_day, workers=1, wait_s=1)
    after_import = _peak_mb()
    deadline = time.monotonic() + timeout_s
    while loop.handled + loop.failed == 0 and time.monotonic() < deadline:
        loop.poll_once()
    return {"handled": loop.handled, "failed": loop.failed, "after_import_mb": after_import,
            "peak_mb": _peak_mb(), "rss_mb": _status_mb("VmRSS")}


def run(stack: Any, repeats: int = 3, day: date = SAMPLE_DAY) -> dict[str, Any]:
    peaks, imports, rows = [], [], []
    for _ in range(repeats):
        reset(stack)
        answer = requests.post(stack.api_url + BATCH, timeout=30, headers=auth(), json={
            "start_date": day.isoformat(), "end_date": day.isoformat()})
        answer.raise_for_status()
        task_id = answer.json()["data"]["task_id"]
        done = subprocess.run([sys.executable, "-m", "bench.memory", "--child"], cwd=ROOT,
                              env={**os.environ, **stack.env}, capture_output=True, text=True,
                              timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"memory child failed: {done.stderr[-2000:]}")
        report = json.loads(done.stdout.strip().splitlines()[-1])
        final = requests.get(f"{stack.api_url}{BATCH}/progress/{task_id}", timeout=30,
                             headers=auth()).json()["data"]
        if report["handled"] != 1 or final["success"] != 1:
            raise RuntimeError(f"the memory child did not sync {day}: {report} {final}")
        peaks.append(report["peak_mb"])
        imports.append(report["after_import_mb"])
        rows.append(final["rows"])
    return {"day": day.isoformat(), "rows": int(median(rows)), "repeats": repeats,
            "peak_rss_mb": round(median(peaks), 1), "after_import_mb": round(median(imports), 1),
            "day_mb": round(median(peaks) - median(imports), 1), "measure": "VmHWM of the worker process"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="one worker syncing one day (the benchmark's child)")
    parser.add_argument("--child", action="store_true", required=True)
    parser.parse_args(argv)
    import logging
    logging.basicConfig(level=logging.WARNING)
    print(json.dumps(child()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
