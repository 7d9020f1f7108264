"""The local stand-ins for AWS and RDS: an embedded PostgreSQL and moto's SQS server.

Each honours the variable that points at a real one instead (DATABASE_URL,
SQS_QUEUE_URL with SQS_ENDPOINT_URL), so the same stack runs against either.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import warnings
from pathlib import Path
from typing import Any

import boto3

log = logging.getLogger(__name__)

# moto accepts any credentials; boto3 only needs some to sign requests.
LOCAL_AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_DEFAULT_REGION": "ap-east-1", "AWS_REGION": "ap-east-1"}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class EmbeddedPostgres:
    """PostgreSQL from the `pgserver` wheel, its data kept in `data_dir`."""

    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir)
        self._server: Any = None

    def start(self) -> str:
        os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver  # dev-only dependency: imported here so chalicelib never needs it
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._server = pgserver.get_server(self.data_dir, cleanup_mode="stop")
        return self._server.get_uri()

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            # pgserver only stops the postmaster it started itself: after resume()
            # that one is gone, so stop whichever runs now.
            if self._running():
                self._pg_ctl("-w", "-m", "fast", "stop")
            self._server = None

    def _pg_ctl(self, *args: str) -> None:
        from pgserver._commands import pg_ctl
        pg_ctl(list(args), pgdata=self._server.pgdata,
               user=self._server.system_user, timeout=180)

    def halt(self) -> None:
        """Stop the server process, as a crash or restart would (fault tests)."""
        import subprocess
        try:
            self._pg_ctl("-w", "-t", "120", "-m", "fast", "stop")
        except subprocess.CalledProcessError:
            # Seen once under heavy load; what matters is that the server is down.
            if self._running():
                self._pg_ctl("-w", "-t", "120", "-m", "immediate", "stop")

    def _running(self) -> bool:
        # postmaster.pid exists exactly while a server runs (or crashed without cleanup).
        return (Path(self._server.pgdata) / "postmaster.pid").exists()

    def resume(self) -> None:
        """Start it again with the options it had (kept in postmaster.opts)."""
        self._pg_ctl("-w", "restart")

    @staticmethod
    def stop_abandoned(pgdata: Path, dead_pid: int) -> bool:
        """What pgserver's exit handler would have done for `dead_pid`, which died without
        running it: drop it from the server's users and stop the server if no live user is
        left. Returns whether it stopped a server."""
        import psutil
        from pgserver._commands import pg_ctl

        users_file = Path(pgdata) / ".handle_pids.json"
        try:
            users = json.loads(users_file.read_text())
        except (OSError, ValueError):
            users = []
        alive = [pid for pid in users if pid != dead_pid and psutil.pid_exists(pid)]
        if users_file.exists():
            users_file.write_text(json.dumps(alive))
        if alive or not (Path(pgdata) / "postmaster.pid").exists():
            return False
        user = "pgserver" if os.geteuid() == 0 else None  # as pgserver runs it under root
        try:
            pg_ctl(["-w", "-t", "60", "-m", "fast", "stop"], pgdata=Path(pgdata), user=user, timeout=90)
        except Exception:  # noqa: BLE001 - already stopped, or gone with its directory
            return False
        return True


class LocalSQS:
    """moto's server speaking the real SQS protocol, with the day queue and its dead-letter queue."""

    def __init__(self, host: str = "127.0.0.1", port: int | None = None):
        self.host = host
        self.port = port or free_port(host)
        self._server: Any = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> str:
        from moto.server import ThreadedMotoServer
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = ThreadedMotoServer(ip_address=self.host, port=self.port, verbose=False)
        self._server.start()
        return self.endpoint_url

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None


def sqs_client(endpoint_url: str | None, region: str | None = None) -> Any:
    return boto3.client("sqs", endpoint_url=endpoint_url,
                        region_name=region or os.environ.get("AWS_REGION", "ap-east-1"))


def create_day_queues(sqs: Any, name: str, visibility_timeout_s: int,
                      max_receive_count: int) -> tuple[str, str]:
    """The day queue, redriving to `<name>-dlq` after `max_receive_count` receives."""
    dlq_url = sqs.create_queue(QueueName=f"{name}-dlq",
                               Attributes={"MessageRetentionPeriod": "1209600"})["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    queue_url = sqs.create_queue(QueueName=name, Attributes={
        "VisibilityTimeout": str(visibility_timeout_s),
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn,
                                     "maxReceiveCount": str(max_receive_count)}),
    })["QueueUrl"]
    return queue_url, dlq_url


NOTICE_TOPIC = "stocksync-notices"


def create_notice_topic(endpoint_url: str, region: str) -> str:
    """The SNS topic of completion notices, on moto's server (the same one as SQS)."""
    sns = boto3.client("sns", endpoint_url=endpoint_url, region_name=region)
    return sns.create_topic(Name=NOTICE_TOPIC)["TopicArn"]
