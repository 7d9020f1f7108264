"""chalicelib.db on the real PostgreSQL: what a lost connection becomes."""
from __future__ import annotations

import psycopg2
import pytest

from chalicelib.db import Database
from chalicelib.errors import ServiceUnavailable


def _terminate(db: Database, pid: int) -> None:
    with db.transaction() as cur:
        cur.execute("SELECT pg_terminate_backend(%(pid)s)", {"pid": pid})


def test_a_bare_database_error_on_a_connection_that_is_gone_is_an_outage(stack, db):
    """Stopping PostgreSQL with `pg_ctl -m immediate` mid-request made psycopg2 raise a bare
    DatabaseError ("server closed the connection unexpectedly", no SQLSTATE) on a pooled
    connection used within its no-ping idle time: the progress route answered 500, and a
    worker re-raised instead of handing its message off as for an outage. A DatabaseError
    whose connection cannot even roll back is the database being unavailable: 503."""
    own = Database(stack.env["DATABASE_URL"], 2)
    other = Database(stack.env["DATABASE_URL"], 1)
    try:
        with pytest.raises(ServiceUnavailable) as outage:
            with own.transaction() as cur:
                cur.execute("SELECT pg_backend_pid() AS pid")
                _terminate(other, cur.fetchone()["pid"])
                # What psycopg2 raises when the server vanished without a message.
                raise psycopg2.DatabaseError("server closed the connection unexpectedly")
        assert outage.value.code == "database_unavailable" and outage.value.status_code == 503
        # The broken connection was dropped, not pooled: the next transaction works.
        with own.transaction() as cur:
            cur.execute("SELECT 1 AS one")
            assert cur.fetchone()["one"] == 1
    finally:
        own.close()
        other.close()


def test_a_database_error_on_a_healthy_connection_stays_what_it_is(stack, db):
    own = Database(stack.env["DATABASE_URL"], 1)
    try:
        with pytest.raises(psycopg2.DataError):
            with own.transaction() as cur:
                cur.execute("SELECT 1 / 0")
        with own.transaction() as cur:
            cur.execute("SELECT 2 AS two")
            assert cur.fetchone()["two"] == 2
    finally:
        own.close()
