"""The exchange's trading calendar, cached in PostgreSQL a year at a time."""
from __future__ import annotations

from datetime import date

from psycopg2.extras import execute_values

from chalicelib.db import Database, query
from chalicelib.source import EXCHANGE, TransientSourceError, TushareSource


class TradingCalendar:
    def __init__(self, db: Database, source: TushareSource):
        self._db = db
        self._source = source

    def is_trading_day(self, day: date) -> bool:
        cached = self._lookup(day)
        if cached is not None:
            return cached
        # One call caches the whole year: the next 364 lookups cost no request.
        days = self._source.trading_days(date(day.year, 1, 1), date(day.year, 12, 31))
        with self._db.transaction() as cur:
            execute_values(cur, query("upsert_calendar"),
                           [(EXCHANGE, d, is_open) for d, is_open in days.items()])
        if day not in days:
            raise TransientSourceError(f"the trading calendar has no entry for {day}")
        return days[day]

    def _lookup(self, day: date) -> bool | None:
        with self._db.transaction() as cur:
            cur.execute(query("calendar_day"), {"exchange": EXCHANGE, "day": day})
            row = cur.fetchone()
        return None if row is None else row["is_open"]
