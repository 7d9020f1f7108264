"""Real services, started once per session: embedded PostgreSQL, moto's SQS server,
the sample tushare server and `chalice local`. Each test starts from empty tables
and an empty queue."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest
from chalice.test import Client

from chalicelib.auth import READER, entry_for, new_token
from devstack.services import free_port
from devstack.stack import LocalStack, StackOptions

# Each test starts from an empty queue: let moto purge more than once a minute.
os.environ["MOTO_SQS_ENFORCE_STRICT_QUEUE_PURGE_BEHAVIOUR"] = "false"

ENDED = ("completed", "cancelled")  # a job's statuses once it has ended (running and paused are active)

# Small limits so retries and redeliveries happen within a test's patience. A day's
# lease is WORKER_TIMEOUT_S + LEASE_MARGIN_S: 8 s, far more than a day takes here.
TEST_SETTINGS = {"MAX_ATTEMPTS": "3", "RETRY_BASE_S": "0", "RETRY_MAX_S": "0",
                 "TUSHARE_TIMEOUT_S": "1", "WORKER_TIMEOUT_S": "6", "LEASE_MARGIN_S": "2",
                 # Completion notices: a claim outlives one send (2 s) by a little; retries
                 # are due at once (each sweep), three attempts in all.
                 "NOTIFY_TIMEOUT_S": "2", "NOTIFY_LEASE_S": "3", "NOTIFY_MAX_ATTEMPTS": "3",
                 "NOTIFY_RETRY_BASE_S": "0", "NOTIFY_RETRY_MAX_S": "0"}
# A reader token next to the stack's own operator token (LocalStack.api_token).
# pytest imports this file as `conftest` and the tests as `tests.conftest`: one token for both.
READER_TOKEN = os.environ.setdefault("STOCKSYNC_TEST_READER_TOKEN", new_token())
READER_NAME = "test-reader"


@pytest.fixture(scope="session")
def stack():
    # Not under pytest's temp root: the embedded server runs as its own user, reaching its
    # data through that root, and any other pytest run on the machine makes the root 0700
    # again at its start, locking the server's user out mid-session.
    data_dir = Path(tempfile.mkdtemp(prefix="stocksync-test-stack-"))
    port = free_port()
    # The page tests open the page from `localhost` against the API on 127.0.0.1 (a listed
    # CORS origin), and point `?api=` at 127.0.0.1 (an origin the page may call).
    env = {**TEST_SETTINGS, "API_TOKENS": entry_for(READER_NAME, READER, READER_TOKEN).line(),
           "PAGE_API_ORIGINS": f"http://127.0.0.1:{port}",
           "CORS_ALLOW_ORIGINS": f"http://localhost:{port}"}
    options = StackOptions(data_dir=data_dir, port=port, workers=0, api=True,
                           visibility_timeout_s=2, api_log=data_dir / "api.log", env=env)
    try:
        with LocalStack(options) as local:
            yield local
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def wait_for(condition, timeout_s=30.0, what="condition"):
    """`condition()`'s first truthy value, polled every 50 ms; fails after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="session")
def operator_headers(stack: LocalStack) -> dict[str, str]:
    return bearer(stack.api_token)


@pytest.fixture(scope="session")
def app_module(stack: LocalStack):
    import app
    return app


@pytest.fixture
def db(stack: LocalStack, app_module: Any):
    """The app's own pool, on emptied tables, an empty queue and a fault-free source."""
    database = app_module.get_db()
    with database.transaction() as cur:
        cur.execute("TRUNCATE sync_jobs, sync_job_days, sync_job_events, daily_bars, synced_dates, "
                    "trade_calendar, job_notices, live_connections, live_tickets, "
                    "sync_job_day_datasets, adj_factor, daily_basic, suspend_d, stock_basic, "
                    "source_refreshes, tushare_quota")
    sqs = stack.sqs_client()
    for url in (stack.env["SQS_QUEUE_URL"], stack.dlq_url):
        sqs.purge_queue(QueueUrl=url)
    stack.tushare.reset()  # no faults, no stats, its own settings and clock, empty quota windows
    if stack.webhooks is not None:
        stack.webhooks.clear()
    return database


def fetch_all(db: Any, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    with db.transaction() as cur:
        cur.execute(sql, params or {})
        return [dict(row) for row in cur.fetchall()]


def scalar(db: Any, sql: str, params: dict[str, Any] | None = None) -> Any:
    rows = fetch_all(db, sql, params)
    return next(iter(rows[0].values())) if rows else None


@pytest.fixture
def api(app_module: Any, db: Any, stack: LocalStack):
    """Chalice's in-process test client: the real app on the real services, as the operator."""
    with Client(app_module.app) as client:
        yield ApiClient(client, stack.api_token)


class TokenHttp:
    """`Client.http` sending a token with every request (unless the request sets its own)."""

    def __init__(self, http: Any, token: str | None):
        self._http = http
        self._token = token

    def request(self, method: str, path: str, headers: dict[str, str] | None = None,
                body: Any = b"") -> Any:
        headers = dict(headers or {})
        if self._token and not any(k.lower() == "authorization" for k in headers):
            headers["Authorization"] = f"Bearer {self._token}"
        return self._http.request(method=method, path=path, headers=headers, body=body)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.request("POST", path, **kwargs)


class ApiClient:
    BATCH = "/api/v1/sync-status/sync/batch"

    def __init__(self, client: Client, token: str | None = None):
        self._client = TokenHttp(client.http, token)

    def start(self, body: Any, raw: str | None = None, headers: dict[str, str] | None = None,
              query: str = "") -> Any:
        payload = raw if raw is not None else json.dumps(body)
        return self._client.post(self.BATCH + query, body=payload, headers={
            "content-type": "application/json", **(headers or {})})

    def progress(self, task_id: str, query: str = "") -> Any:
        return self._client.get(f"{self.BATCH}/progress/{task_id}{query}")

    def cancel(self, task_id: str) -> Any:
        return self._client.post(f"{self.BATCH}/cancel/{task_id}",
                                      headers={"content-type": "application/json"}, body="")

    def days(self, task_id: str) -> Any:
        return self._client.get(f"{self.BATCH}/days/{task_id}")

    def control(self, action: str, task_id: str, query: str = "") -> Any:
        """POST pause, resume or retry (or cancel) of a task."""
        return self._client.post(f"{self.BATCH}/{action}/{task_id}{query}",
                                 headers={"content-type": "application/json"}, body="")

    def pause(self, task_id: str, query: str = "") -> Any:
        return self.control("pause", task_id, query)

    def resume(self, task_id: str, query: str = "") -> Any:
        return self.control("resume", task_id, query)

    def retry(self, task_id: str, query: str = "") -> Any:
        return self.control("retry", task_id, query)

    def events(self, task_id: str) -> Any:
        return self._client.get(f"{self.BATCH}/events/{task_id}")

    def jobs(self) -> Any:
        return self._client.get(f"{self.BATCH}/jobs")


@pytest.fixture
def workers(stack: LocalStack, app_module: Any):
    """Drives the day queue through the Lambda handler, as the event source mapping would."""
    from devstack.worker_loop import WorkerLoop
    return Drainer(WorkerLoop(stack.sqs_client(), stack.env["SQS_QUEUE_URL"],
                              app_module.sync_day, workers=1, wait_s=0), app_module)


class Drainer:
    def __init__(self, loop: Any, app_module: Any):
        self.loop = loop
        self._app = app_module

    def run_until_settled(self, task_id: str, timeout_s: float = 60, threads: int = 1) -> dict[str, Any]:
        """Handle messages until the job is no longer running; returns its progress."""
        deadline = time.monotonic() + timeout_s
        jobs = self._app.get_jobs()

        def poll() -> None:
            while time.monotonic() < deadline and jobs.progress(task_id).status not in ENDED:
                if not self.loop.poll_once(wait_s=1):
                    time.sleep(0.05)
        pollers = [threading.Thread(target=poll) for _ in range(threads)]
        for thread in pollers:
            thread.start()
        for thread in pollers:
            thread.join()
        progress = jobs.progress(task_id).as_json()
        assert progress["status"] in ENDED, f"job still running after {timeout_s}s: {progress}"
        return progress

    def drain(self, timeout_s: float = 60) -> int:
        """Handle messages until the queue holds none, visible, in flight or delayed (a
        delivery that found a live lease comes back when that lease ends)."""
        handled = 0
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.loop.poll_once(wait_s=1):
                handled += 1
            elif not any(self._app.get_queue().counts().values()):
                return handled
        raise AssertionError(f"the queue still holds messages after {timeout_s}s")

    def handle(self, count: int) -> int:
        """Handle up to `count` messages, one by one; returns how many were received."""
        handled = 0
        for _ in range(count):
            if not self.loop.poll_once(wait_s=1):
                break
            handled += 1
        return handled


class FaultLedger:
    """What the fault suite injected and what it found lost or doubled, for its report line."""

    def __init__(self) -> None:
        self.duplicated = 0
        self.crashes = 0
        self.faults = 0
        self.rows_checked = 0
        self.rows_lost = 0
        self.rows_duplicated = 0
        self.poison_consumed = 0
        self.stragglers_settled = 0
        self.pause_races = 0
        self.database_return_s: float | None = None  # until the batch moved again
        self.message_loss_s: float | None = None  # until the batch moved again

    def line(self) -> str:
        return (f"fault suite: deliveries duplicated: {self.duplicated}, crashes injected: "
                f"{self.crashes}, faults injected: {self.faults}, rows checked: {self.rows_checked}, "
                f"rows lost = {self.rows_lost}, rows duplicated = {self.rows_duplicated}, "
                f"poison bodies consumed: {self.poison_consumed}, "
                f"stragglers settled: {self.stragglers_settled}, pause races: {self.pause_races}, "
                f"seconds from database return to the batch moving again: {_seconds(self.database_return_s)}, "
                f"seconds from message loss to recovery: {_seconds(self.message_loss_s)}")


def _seconds(value: float | None) -> str:
    return "not measured" if value is None else f"{value:.1f}"


LEDGER = FaultLedger()


class FuzzLedger:
    """What the fuzz of the published API sent and found (tests/test_fuzz.py)."""

    def __init__(self) -> None:
        self.requests = 0
        self.server_errors = 0
        self.writes = 0

    def line(self) -> str:
        return f"fuzz: {self.requests} requests, {self.server_errors} 5xx, {self.writes} writes"


FUZZ = FuzzLedger()


@pytest.fixture(scope="session")
def ledger() -> FaultLedger:
    return LEDGER


@pytest.fixture(scope="session")
def fuzz_ledger() -> FuzzLedger:
    return FUZZ


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if (LEDGER.rows_checked or LEDGER.faults or LEDGER.crashes or LEDGER.duplicated
            or LEDGER.poison_consumed or LEDGER.stragglers_settled or LEDGER.pause_races):
        terminalreporter.write_sep("-", LEDGER.line())
    if FUZZ.requests:
        terminalreporter.write_sep("-", FUZZ.line())


# --- security suites: what a refusal must leave untouched, settings changed for a test ---

TABLES = ("sync_jobs", "sync_job_days", "sync_job_events", "daily_bars", "synced_dates",
          "trade_calendar", "schema_migrations", "job_notices")


def snapshot(db: Any, stack: LocalStack) -> dict[str, int]:
    """Row counts of every table and the messages in the day queue: what a write changes."""
    counts = fetch_all(db, "SELECT " + ", ".join(
        f"(SELECT count(*) FROM {table}) AS {table}" for table in TABLES))[0]
    attrs = stack.sqs_client().get_queue_attributes(
        QueueUrl=stack.env["SQS_QUEUE_URL"],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])
    counts["queued"] = sum(int(v) for v in attrs["Attributes"].values())
    return counts


@pytest.fixture
def configure(app_module: Any):
    """Change the in-process app's settings for one test: `configure(public_read=True)`.

    The per-container clients built from the settings are rebuilt; all is restored after."""
    import dataclasses
    saved = dict(app_module._clients)

    def apply(**fields: Any) -> Any:
        settings = dataclasses.replace(app_module.get_settings(), **fields)
        for derived in ("auth", "cors", "jobs", "worker", "source", "audit", "dates", "sweeper", "notices", "live",
                        "job_events"):
            app_module._clients.pop(derived, None)
        app_module._clients["settings"] = settings
        return settings
    yield apply
    app_module._clients.clear()
    app_module._clients.update(saved)


class ChaliceLocal:
    """One more `chalice local` on the stack's services, with some settings of its own."""

    def __init__(self, stack: LocalStack, log_path: Any, **env: str):
        import subprocess
        import sys
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(log_path, "ab")
        command = [sys.executable, "-m", "devstack.chalice_local", "local", "--host", "127.0.0.1",
                   "--port", str(self.port), "--stage", "local", "--no-autoreload"]
        from devstack.stack import ROOT
        self.process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **stack.env, **env},
                                        stdout=self._log, stderr=subprocess.STDOUT)

    def __enter__(self) -> "ChaliceLocal":
        import requests
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "chalice local exited"
            try:
                requests.get(self.url + "/sync-status", timeout=2)
                return self
            except requests.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError("chalice local did not start")

    def __exit__(self, *exc: Any) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        self._log.close()
