"""The SSE trading calendar of the sample market, and the date helpers every
sample module shares.

A session's position in `Calendar.sessions` is its 'trading-day index': prices,
suspensions and corporate actions are keyed by it.
"""
from __future__ import annotations

from datetime import date
from typing import Any

import exchange_calendars
import numpy as np

FIRST_SESSION = "1990-12-19"  # the SSE's first trading day
# exchange_calendars records XSHG holidays only a year or two ahead (to 2026 in
# 4.13); after that every weekday counts as open so future dates still work.
WEEKDAY_CALENDAR_END = np.datetime64("2099-12-31")

Table = dict[str, np.ndarray]  # column name -> equally long column


def parse_day(value: Any) -> np.datetime64:
    """tushare dates are 'YYYYMMDD' (str or int); 'YYYY-MM-DD' is accepted too."""
    text = str(value).strip().replace("-", "")
    if len(text) != 8 or not text.isdigit():
        raise ValueError(f"not a YYYYMMDD date: {value!r}")
    try:
        date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError as exc:
        raise ValueError(f"not a date: {value!r}") from exc
    return np.datetime64(f"{text[:4]}-{text[4:6]}-{text[6:]}", "D")


def yyyymmdd(days: np.ndarray) -> np.ndarray:
    """datetime64[D] array -> array of 'YYYYMMDD' str objects."""
    return np.array([s.replace("-", "") for s in np.datetime_as_string(days, unit="D").tolist()],
                    dtype=object)


class Calendar:
    """SSE sessions as a sorted datetime64[D] array, with their 'YYYYMMDD' names."""

    def __init__(self) -> None:
        xshg = exchange_calendars.get_calendar("XSHG", start=FIRST_SESSION)
        recorded = xshg.sessions.values.astype("datetime64[D]")
        later = np.arange(recorded[-1] + 1, WEEKDAY_CALENDAR_END + 1, dtype="datetime64[D]")
        self.sessions = np.concatenate([recorded, later[np.is_busday(later)]])
        self.names = yyyymmdd(self.sessions)

    def __len__(self) -> int:
        return len(self.sessions)

    def index(self, day: np.datetime64) -> int | None:
        """The trading-day index of `day`, or None when the exchange is closed."""
        pos = int(np.searchsorted(self.sessions, day))
        return pos if pos < len(self.sessions) and self.sessions[pos] == day else None

    def first_on_or_after(self, days: np.ndarray) -> np.ndarray:
        """Index of the first session on or after each day (len(self) past the end)."""
        return np.searchsorted(self.sessions, days, side="left")

    def sessions_through(self, day: np.datetime64) -> int:
        """How many sessions fall on or before `day`: the index one past its last session."""
        return int(np.searchsorted(self.sessions, day, side="right"))

    def session_indices(self, start: np.datetime64, end: np.datetime64) -> np.ndarray:
        """Indices of the sessions in [start, end], ascending."""
        lo = np.searchsorted(self.sessions, start, side="left")
        hi = np.searchsorted(self.sessions, end, side="right")
        return np.arange(lo, hi)

    def days(self, start: np.datetime64, end: np.datetime64) -> Table:
        """Every calendar day in [start, end]: cal_date, is_open, pretrade_date."""
        end = min(end, WEEKDAY_CALENDAR_END)
        days = np.arange(start, end + 1, dtype="datetime64[D]")
        pos = np.searchsorted(self.sessions, days)  # first session >= day
        found = np.minimum(pos, len(self.sessions) - 1)
        is_open = (pos < len(self.sessions)) & (self.sessions[found] == days)
        pretrade = np.where(pos > 0, self.names[np.maximum(pos - 1, 0)], None)
        return {"cal_date": yyyymmdd(days), "is_open": is_open.astype(np.int64),
                "pretrade_date": pretrade}
