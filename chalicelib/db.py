"""PostgreSQL access: a small connection pool, transactions, named queries, migrations."""
from __future__ import annotations

import logging
import re
import threading
import time
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import psycopg2
import psycopg2.extensions
import psycopg2.extras

from chalicelib.errors import ServiceUnavailable
from chalicelib.secrecy import connection_error_text

log = logging.getLogger(__name__)

SQL_DIR = Path(__file__).parent
MIGRATIONS_DIR = SQL_DIR / "migrations"
# Any constant works; it only has to differ from other advisory-lock users.
MIGRATION_LOCK_KEY = 0x5710C5_01
# A pooled connection idle longer than this is pinged before use: a restart,
# RDS failover or proxy closes sessions unseen, and a warm Lambda may have
# slept for minutes. One round trip costs far less than a failed request.
PING_AFTER_IDLE_S = 0.5

_QUERY_HEADER = re.compile(r"^-- ([a-z_]+) --$", re.MULTILINE)


@lru_cache(maxsize=None)
def load_queries(path: Path = SQL_DIR / "queries.sql") -> dict[str, str]:
    """Parse `-- name --`, a one-line `-- description`, then the statement."""
    text = path.read_text(encoding="utf-8")
    parts = _QUERY_HEADER.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2]):
        lines = [ln for ln in body.strip().splitlines() if not ln.startswith("--")]
        queries[name] = "\n".join(lines).strip()
    return queries


def query(name: str) -> str:
    return load_queries()[name]


class ConnectionFailed(Exception):
    """Why a connection could not be made, with nothing of the DSN in it."""


class Database:
    """A thread-safe pool of psycopg2 connections, created lazily.

    A Lambda container uses one connection at a time; the local API server is
    threaded, so it may use several.  Broken connections are dropped, never reused.
    """

    def __init__(self, dsn: str, max_connections: int = 4, connect_timeout_s: int = 5):
        self._dsn = dsn
        self._max = max_connections
        self._connect_timeout_s = connect_timeout_s
        self._idle: list[tuple[psycopg2.extensions.connection, float]] = []
        self._slots = threading.BoundedSemaphore(max_connections)
        self._lock = threading.Lock()

    def _connect(self) -> psycopg2.extensions.connection:
        try:
            return psycopg2.connect(
                self._dsn,
                connect_timeout=self._connect_timeout_s,
                cursor_factory=psycopg2.extras.RealDictCursor,
                application_name="stocksync",
            )
        except psycopg2.Error as exc:
            # libpq echoes parts of the DSN (all of it, when malformed): keep only a
            # sanitized text, and raise outside this block so that psycopg2's error
            # is not chained to ours as its context either.
            failure = ConnectionFailed(connection_error_text(exc, self._dsn))
        raise ServiceUnavailable.database(failure)

    def _healthy(self, conn: psycopg2.extensions.connection, idle_since: float) -> bool:
        if conn.closed:
            return False
        if time.monotonic() - idle_since < PING_AFTER_IDLE_S:
            return True
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
            conn.rollback()
            return True
        except psycopg2.Error:
            return False

    def _checkout(self) -> psycopg2.extensions.connection:
        while True:
            with self._lock:
                item = self._idle.pop() if self._idle else None
            if item is None:
                return self._connect()
            conn, idle_since = item
            if self._healthy(conn, idle_since):
                return conn
            _close_quietly(conn)

    def _checkin(self, conn: psycopg2.extensions.connection, broken: bool) -> None:
        if broken or conn.closed or conn.info.transaction_status != psycopg2.extensions.TRANSACTION_STATUS_IDLE:
            _close_quietly(conn)
            return
        with self._lock:
            self._idle.append((conn, time.monotonic()))

    @contextmanager
    def transaction(self) -> Iterator[psycopg2.extras.RealDictCursor]:
        """One transaction: commit on success, roll back on any exception."""
        self._slots.acquire()
        conn = None
        broken = False
        try:
            conn = self._checkout()
            try:
                with conn.cursor() as cur:
                    yield cur
                conn.commit()
            except BaseException as exc:
                broken = not _rollback_quietly(conn)
                if broken and isinstance(exc, psycopg2.DatabaseError):
                    # The server went away mid-statement without saying why (an immediate
                    # shutdown, a crash): psycopg2 raises a bare DatabaseError, and only the
                    # failed rollback tells that the connection is gone. An outage, not a bug.
                    raise ServiceUnavailable.database(exc) from exc
                raise
        except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
            broken = True
            raise ServiceUnavailable.database(exc) from exc
        finally:
            if conn is not None:
                self._checkin(conn, broken)
            self._slots.release()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn, _ in idle:
            _close_quietly(conn)

    def migrate(self) -> list[str]:
        """Apply numbered migrations not applied yet; safe to run concurrently."""
        applied: list[str] = []
        with self.transaction() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
            cur.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            cur.execute("SELECT version FROM schema_migrations")
            done = {row["version"] for row in cur.fetchall()}
            for path in sorted(MIGRATIONS_DIR.glob("[0-9][0-9][0-9]_*.sql")):
                if path.stem in done:
                    continue
                cur.execute(path.read_text(encoding="utf-8"))
                cur.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (path.stem,))
                applied.append(path.stem)
        if applied:
            log.info("applied migrations: %s", ", ".join(applied))
        return applied


def _rollback_quietly(conn: psycopg2.extensions.connection) -> bool:
    try:
        conn.rollback()
        return True
    except psycopg2.Error:
        return False


def _close_quietly(conn: psycopg2.extensions.connection) -> None:
    try:
        conn.close()
    except psycopg2.Error:
        pass
