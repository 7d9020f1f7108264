"""What the benchmark groups share: the local stack, resets, timing and statistics."""
from __future__ import annotations

import logging
import os
import platform
import re
import subprocess
import tempfile
import time
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from devstack.services import free_port
from devstack.stack import LocalStack, StackOptions

ROOT = Path(__file__).resolve().parent.parent
BATCH = "/api/v1/sync-status/sync/batch"
TABLES = ("sync_jobs, sync_job_days, sync_job_events, daily_bars, synced_dates, trade_calendar, "
          "job_notices, live_connections, live_tickets, sync_job_day_datasets, adj_factor, "
          "daily_basic, suspend_d, stock_basic, source_refreshes, tushare_quota")

# A day the sample market trades, with ~5,300 listed symbols.
SAMPLE_DAY = date(2025, 10, 9)


@contextmanager
def bench_stack() -> Iterator[LocalStack]:
    """The whole local stack on a throwaway data dir, without worker threads:
    the groups that need workers start their own, with the count they measure."""
    # Groups reset the queue between runs: let moto purge more than once a minute.
    os.environ.setdefault("MOTO_SQS_ENFORCE_STRICT_QUEUE_PURGE_BEHAVIOUR", "false")
    with tempfile.TemporaryDirectory(prefix="stocksync-bench-") as tmp:
        options = StackOptions(data_dir=Path(tmp), port=free_port(), workers=0, api=True,
                               api_log=Path(tmp) / "api.log",
                               env={"JOB_STARTS_PER_HOUR": "0", "FORCED_SYNCS_PER_DAY": "0"})
        given = os.environ.get("STOCKSYNC_API_TOKEN")
        with LocalStack(options) as stack:
            # The operator token, for the groups' requests and their child processes.
            os.environ["STOCKSYNC_API_TOKEN"] = stack.api_token
            try:
                yield stack
            finally:
                if given is None:
                    os.environ.pop("STOCKSYNC_API_TOKEN", None)
                else:
                    os.environ["STOCKSYNC_API_TOKEN"] = given


def auth() -> dict[str, str]:
    """The Authorization header of the bench stack's operator token."""
    from devstack.progress_cli import auth_headers
    return auth_headers(None)


def quiet_logs() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # The worker logs every day at INFO and a redelivery at INFO: not for a benchmark's output.
    for name in ("chalicelib", "devstack", "botocore", "urllib3", "werkzeug"):
        logging.getLogger(name).setLevel(logging.WARNING)


@contextmanager
def db_cursor(stack: LocalStack) -> Iterator[Any]:
    """A transaction's cursor on a connection of its own, closed after: the benchmark's
    own statements, kept apart from the app's pool."""
    from chalicelib.db import Database
    db = Database(stack.env["DATABASE_URL"], 1)
    try:
        with db.transaction() as cur:
            yield cur
    finally:
        db.close()


def reset(stack: LocalStack, cold_sample_server: bool = True) -> None:
    """Empty tables and queues, as a fresh stack has them; optionally forget the
    sample server's cached days so each run generates its days again."""
    with db_cursor(stack) as cur:
        cur.execute(f"TRUNCATE {TABLES}")
    sqs = stack.sqs_client()
    for url in (stack.env["SQS_QUEUE_URL"], stack.dlq_url):
        if url:
            sqs.purge_queue(QueueUrl=url)
    if stack.tushare is not None:
        stack.tushare.clear_faults()
        stack.tushare.reset_stats()
        if cold_sample_server:
            stack.tushare.market.day_table.cache_clear()


def client(stack: LocalStack, timeout_s: float = 30):
    """The tushare client (`DataApi`) the worker uses, pointed at the stack's tushare."""
    from chalicelib.source import make_client
    return make_client(stack.env["TUSHARE_TOKEN"], stack.env["TUSHARE_API_URL"], timeout_s)


def source(stack: LocalStack, timeout_s: float = 30):
    from chalicelib.source import TushareSource
    return TushareSource(client(stack, timeout_s))


def trading_days(stack: LocalStack, start: date, end: date) -> list[date]:
    calendar = source(stack).trading_days(start, end)
    return sorted(d for d, is_open in calendar.items() if is_open)


def median(values: Sequence[float]) -> float:
    return float(np.median(values)) if len(values) else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


class Timer:
    def __enter__(self) -> "Timer":
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.seconds = time.perf_counter() - self.start


def machine() -> dict[str, Any]:
    """The machine the figures come from, for results.json and the README."""
    cpu = ""
    try:
        match = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = match.group(1).strip() if match else ""
    except OSError:
        pass
    mem_gib = None
    try:
        match = re.search(r"^MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
        mem_gib = round(int(match.group(1)) / 2**20, 1) if match else None
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu or platform.processor(), "memory_gib": mem_gib,
            "os": f"{platform.system()} {platform.release()}",
            "python": platform.python_version()}


def postgres_version(stack: LocalStack) -> str:
    with db_cursor(stack) as cur:
        cur.execute("SHOW server_version")
        return str(cur.fetchone()["server_version"])


def git_commit() -> str | None:
    """HEAD, marked when the code the figures depend on differs from it."""
    try:
        def git(*args: str) -> str:
            return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True,
                                  text=True).stdout.strip()
        head = git("rev-parse", "--short", "HEAD")
        changed = git("status", "--porcelain", "--", "app.py", "chalicelib", "devstack", "bench/*.py")
        return f"{head} + uncommitted changes" if changed else head
    except (OSError, subprocess.CalledProcessError):
        return None
