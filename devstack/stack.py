"""The whole local stack in one object: database, queue, sample tushare, API, workers.

Used by `make serve`, `make demo`, the tests and the benchmarks, so they all
run the same parts the same way.
"""
from __future__ import annotations

import logging
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from devstack.services import (LOCAL_AWS_ENV, EmbeddedPostgres, LocalSQS, create_day_queues,
                               create_notice_topic, free_port, sqs_client)
from devstack.tokens import LOCAL_TOKEN_NAME, local_operator_token
from devstack.worker_loop import WorkerLoop

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
DAY_QUEUE = "stocksync-days"
INSTANCE_HEADER = "X-Stocksync-Instance"  # devstack.chalice_local sets it on every answer


class StackError(RuntimeError):
    """The local stack cannot start as asked; the message says why and what to do."""


def _default_data_dir() -> Path:
    return Path(os.environ.get("STOCKSYNC_DATA_DIR") or ROOT / ".stocksync")


@dataclass
class StackOptions:
    data_dir: Path = field(default_factory=_default_data_dir)
    port: int = 8000
    workers: int = 2
    api: bool = True
    # Locally a crashed worker's day comes back after this long; in AWS it is
    # six times the worker's timeout (see .chalice/config.json).
    visibility_timeout_s: int = 60
    max_receive_count: int = 10
    api_log: Path | None = None  # where `chalice local` writes; None: this terminal
    # How often the local stand-in for the scheduled sweeper runs; 0: never.
    sweep_interval_s: float = 60.0
    # Completion notices to moto's SNS (on the SQS server) and a local webhook receiver,
    # unless NOTIFY_SNS_TOPIC_ARN / NOTIFY_WEBHOOKS name real ones.
    notices: bool = True
    # The WebSocket API of pushed progress (devstack.live_server), unless LIVE_WEBSOCKET_URL
    # names another.
    live: bool = True
    env: dict[str, str] = field(default_factory=dict)  # overrides for the app's settings


class LocalStack:
    def __init__(self, options: StackOptions | None = None):
        self.options = options or StackOptions()
        self.env: dict[str, str] = {}
        self.postgres: EmbeddedPostgres | None = None
        self.sqs: LocalSQS | None = None
        self.tushare: Any = None
        self.workers: WorkerLoop | None = None
        self.dead_letters: WorkerLoop | None = None
        self._sweeping = threading.Event()
        self._sweeper: threading.Thread | None = None
        self.api_process: subprocess.Popen[bytes] | None = None
        self.dlq_url: str | None = None
        self.notice_topic_arn: str | None = None  # the local SNS topic of completion notices
        self.webhooks: Any = None  # devstack.webhook_receiver.WebhookReceiver
        self.live: Any = None  # devstack.live_server.LocalWebsocketApi
        self._live_ports: tuple[int, int] | None = None
        self.api_token = ""  # the operator token (data_dir/api-token, or STOCKSYNC_API_TOKEN)
        # Stops what this process started should it die without stopping it (devstack.reaper).
        self._reaper: subprocess.Popen[bytes] | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.options.port}"

    @property
    def page_url(self) -> str:
        """The page, handing it the operator token once (the page keeps it for the session)."""
        return f"{self.api_url}/sync-status#token={self.api_token}"

    def _api_tokens(self) -> str:
        """API_TOKENS: the stack's operator token's entry, plus any the caller configured."""
        from chalicelib.auth import OPERATOR, entry_for
        self.api_token = local_operator_token(self.options.data_dir)
        own = entry_for(LOCAL_TOKEN_NAME, OPERATOR, self.api_token).line()
        given = [os.environ.get("API_TOKENS", ""), self.options.env.get("API_TOKENS", "")]
        return ",".join(filter(None, [own, *given]))

    def start(self) -> "LocalStack":
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        opts = self.options
        if opts.api:
            check_port_free(opts.port)  # before anything starts: a clear refusal, nothing to undo
        self._start_reaper()
        # Real AWS credentials in the environment win; moto only needs some.
        for key, value in LOCAL_AWS_ENV.items():
            os.environ.setdefault(key, value)
        env = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
        env["DATABASE_URL"] = os.environ.get("DATABASE_URL") or self._start_postgres()
        env.update(self._start_queue())
        env.update(self._start_tushare())
        env.update(self._start_notices(env))
        env.update(self._live_env())
        env.update(opts.env)
        env["API_TOKENS"] = self._api_tokens()
        self.env = env
        os.environ.update(env)

        from chalicelib.db import Database
        db = Database(env["DATABASE_URL"], 1)
        db.migrate()
        db.close()
        self._start_live()

        if opts.workers:
            import app  # after the environment is set: its getters read it
            self.workers = WorkerLoop(self.sqs_client(), env["SQS_QUEUE_URL"], app.sync_day,
                                      workers=opts.workers)
            self.workers.start()
            if self.dlq_url:
                self.dead_letters = WorkerLoop(self.sqs_client(), self.dlq_url,
                                               app.dead_letter_day, workers=1)
                self.dead_letters.start()
            if opts.sweep_interval_s:
                self._sweeper = threading.Thread(target=self._sweep_every,
                                                 args=(app.sweep_stuck_days,), daemon=True)
                self._sweeper.start()
        if opts.api:
            self._start_api()

    def _start_postgres(self) -> str:
        self.postgres = EmbeddedPostgres(self.options.data_dir / "pgdata")
        self._tell_reaper(f"postgres {self.postgres.data_dir}")
        return self.postgres.start()

    def _start_reaper(self) -> None:
        # Its own session: Ctrl-C or a closed terminal must not take it along with us.
        self._reaper = subprocess.Popen([sys.executable, "-m", "devstack.reaper"], cwd=ROOT,
                                        stdin=subprocess.PIPE, start_new_session=True)

    def _tell_reaper(self, line: str) -> None:
        if self._reaper is not None and self._reaper.stdin is not None:
            self._reaper.stdin.write(line.encode() + b"\n")
            self._reaper.stdin.flush()

    def _stop_reaper(self) -> None:
        if self._reaper is None:
            return
        try:
            self._tell_reaper("exit")
            self._reaper.stdin.close()  # type: ignore[union-attr]
        except OSError:
            pass
        try:
            self._reaper.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._reaper.kill()
        self._reaper = None

    def _start_queue(self) -> dict[str, str]:
        if os.environ.get("SQS_QUEUE_URL"):
            return {"SQS_QUEUE_URL": os.environ["SQS_QUEUE_URL"],
                    "SQS_ENDPOINT_URL": os.environ.get("SQS_ENDPOINT_URL", "")}
        self.sqs = LocalSQS()
        endpoint = self.sqs.start()
        queue_url, self.dlq_url = create_day_queues(
            sqs_client(endpoint, LOCAL_AWS_ENV["AWS_REGION"]), DAY_QUEUE,
            self.options.visibility_timeout_s, self.options.max_receive_count)
        return {"SQS_QUEUE_URL": queue_url, "SQS_ENDPOINT_URL": endpoint}

    def _start_tushare(self) -> dict[str, str]:
        if os.environ.get("TUSHARE_TOKEN"):
            return {}  # the real tushare pro API (TUSHARE_API_URL may point elsewhere)
        from devstack.sample_tushare import DEFAULT_TOKEN, SampleTushareServer
        self.tushare = SampleTushareServer()
        return {"TUSHARE_TOKEN": DEFAULT_TOKEN, "TUSHARE_API_URL": self.tushare.start()}

    def _start_notices(self, env: dict[str, str]) -> dict[str, str]:
        if not self.options.notices:
            return {}
        added: dict[str, str] = {}
        if self.sqs is not None and not os.environ.get("NOTIFY_SNS_TOPIC_ARN"):
            endpoint = env["SQS_ENDPOINT_URL"]
            self.notice_topic_arn = create_notice_topic(endpoint, LOCAL_AWS_ENV["AWS_REGION"])
            added.update(NOTIFY_SNS_TOPIC_ARN=self.notice_topic_arn, SNS_ENDPOINT_URL=endpoint)
        if not os.environ.get("NOTIFY_WEBHOOKS"):
            from devstack.webhook_receiver import WebhookReceiver
            # A new signing secret each start: only this stack's receiver needs it.
            self.webhooks = WebhookReceiver(secrets.token_urlsafe(32)).start()
            added.update(NOTIFY_WEBHOOKS=f"local={self.webhooks.url}",
                         NOTIFY_WEBHOOK_SECRET=self.webhooks.secret)
        return added

    def _live_env(self) -> dict[str, str]:
        if not self.options.live or os.environ.get("LIVE_WEBSOCKET_URL"):
            return {}
        self._live_ports = (free_port(), free_port())
        websocket, management = self._live_ports
        return {"LIVE_WEBSOCKET_URL": f"ws://127.0.0.1:{websocket}/",
                "LIVE_MANAGEMENT_URL": f"http://127.0.0.1:{management}"}

    def _start_live(self) -> None:
        if self._live_ports is None:
            return
        import app  # after the environment is set: its getters read it
        from devstack.live_server import LocalWebsocketApi
        websocket, management = self._live_ports
        self.live = LocalWebsocketApi(app.websocket_connect, app.websocket_message,
                                      app.websocket_disconnect, port=websocket,
                                      management_port=management).start()

    def _start_api(self) -> None:
        opts = self.options
        command = [sys.executable, "-m", "devstack.chalice_local", "local", "--host", "127.0.0.1",
                   "--port", str(opts.port), "--stage", "local", "--no-autoreload"]
        output = open(opts.api_log, "ab") if opts.api_log else None
        instance = uuid.uuid4().hex
        env = {**os.environ, **self.env, "STOCKSYNC_INSTANCE": instance,
               "STOCKSYNC_PARENT_PID": str(os.getpid())}
        # A process group of its own, which stop() and the reaper end as a whole.
        self.api_process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output,
                                            stderr=subprocess.STDOUT if output else None,
                                            start_new_session=True)
        self._tell_reaper(f"group {self.api_process.pid}")
        wait_for_api(self.api_url, instance, self.api_process)

    def _sweep_every(self, sweep: Any) -> None:
        """What the `@app.schedule` rule does in AWS: call the sweeper on a timer."""
        while not self._sweeping.wait(self.options.sweep_interval_s):
            try:
                sweep(scheduled_event(), None)
            except Exception:
                log.exception("sweep failed")

    def sqs_client(self) -> Any:
        return sqs_client(self.env.get("SQS_ENDPOINT_URL") or None, self.env.get("AWS_REGION"))

    def stop(self) -> None:
        if self.api_process is not None:
            from devstack.reaper import stop_group
            stop_group(self.api_process.pid, grace_s=10)
            self.api_process.wait()
            self.api_process = None
        self._sweeping.set()
        if self._sweeper is not None:
            self._sweeper.join(timeout=30)
            self._sweeper = None
        for loop in (self.workers, self.dead_letters):
            if loop is not None:
                loop.stop()
        self.workers = self.dead_letters = None
        if self.live is not None:
            self.live.stop()
            self.live = None
        if self.webhooks is not None:
            self.webhooks.stop()
            self.webhooks = None
        if self.tushare is not None:
            self.tushare.stop()
            self.tushare = None
        if self.sqs is not None:
            self.sqs.stop()
            self.sqs = None
        if self.postgres is not None:
            self.postgres.stop()
            self.postgres = None
        self._stop_reaper()

    def __enter__(self) -> "LocalStack":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def check_port_free(port: int, host: str = "127.0.0.1") -> None:
    """Refuse a port something already listens on: that API would answer instead of ours."""
    with socket.socket() as sock:
        # As the API's own server binds: a port merely in TIME_WAIT is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise StackError(
                f"port {port} is already in use ({exc.strerror}): another `make serve`, or "
                f"another program, listens on {host}:{port}. Stop it, or choose another port, "
                f"e.g. PORT={port + 1} make serve") from None


def wait_for_api(url: str, instance: str, process: subprocess.Popen[bytes],
                 timeout_s: float = 60) -> None:
    """Wait until the API started as `process` answers at `url`, with its instance header."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StackError(f"chalice local exited with {process.returncode} before it answered "
                             f"(is {url} taken?)")
        try:
            answer = requests.get(url + "/sync-status", timeout=2)
        except requests.ConnectionError:
            time.sleep(0.2)
            continue
        if answer.headers.get(INSTANCE_HEADER) != instance:
            raise StackError(f"another server answers at {url}, not the API this start launched: "
                             "stop it, or choose another PORT")
        return
    raise StackError(f"chalice local did not answer at {url} within {timeout_s:.0f} s")


def scheduled_event() -> dict[str, Any]:
    """An EventBridge scheduled event, as Lambda hands it to `@app.schedule` functions."""
    return {"version": "0", "id": "local", "detail-type": "Scheduled Event",
            "source": "aws.events", "account": "000000000000",
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "region": os.environ.get("AWS_REGION", "local"), "resources": [], "detail": {}}
