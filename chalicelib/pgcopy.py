"""One day's bars in PostgreSQL's binary COPY format, built with numpy.

About 1 ms for a day of ~5,300 rows, against ~25 ms for pandas' CSV, and the
server parses no floats. Only frames of str codes, YYYYMMDD dates and float or
integer values are encoded; for anything else `encode_daily_bars` returns None
and the caller keeps to CSV.
"""
from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from chalicelib.datasets import DAILY_FIELDS

PGCOPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags 0, no header extension
PGCOPY_TRAILER = b"\xff\xff"
_PG_EPOCH_ORDINAL = date(2000, 1, 1).toordinal()   # binary dates count days from it
_MAX_LAYOUTS = 64  # more distinct (code length, NULL pattern) row layouts than this: CSV


def encode_daily_bars(frame: pd.DataFrame, encoding: str) -> tuple[bytes, list[date]] | None:
    """(COPY BINARY input, the distinct trade dates), or None for the CSV path."""
    return encode_frame(frame, DAILY_FIELDS, encoding)


def encode_frame(frame: pd.DataFrame, fields: tuple[str, ...],
                 encoding: str) -> tuple[bytes, list[date]] | None:
    """A dataset frame whose `fields` are ts_code, trade_date, then doubles, as
    (COPY BINARY input in `fields` order, the distinct trade dates), or None for
    the CSV path."""
    if any(field not in frame.columns for field in fields):
        return None
    codes = _codes(frame["ts_code"], encoding)
    dates = _dates(frame["trade_date"])
    values = _values(frame, fields[2:])
    if codes is None or dates is None or values is None:
        return None
    if not len(frame):
        return PGCOPY_HEADER + PGCOPY_TRAILER, []
    code_bytes, lengths = codes
    day_numbers, distinct = dates
    encoded = _encode(code_bytes, lengths, day_numbers, values)
    return None if encoded is None else (encoded, distinct)


def encode_columns(codes: np.ndarray, day_numbers: np.ndarray, values: np.ndarray) -> bytes:
    """Rows from arrays: codes of one byte length (numpy `S` dtype), trade dates as
    days since 2000-01-01, a float64 matrix of the value columns (NaN: NULL)."""
    lengths = np.full(len(codes), codes.dtype.itemsize, dtype=np.int64)
    encoded = _encode(codes, lengths, day_numbers.astype(np.int64), values)
    if encoded is None:
        raise ValueError("too many row layouts for binary COPY")
    return encoded


def _encode(code_bytes: np.ndarray, lengths: np.ndarray, day_numbers: np.ndarray,
            values: np.ndarray) -> bytes | None:
    if not len(code_bytes):
        return PGCOPY_HEADER + PGCOPY_TRAILER
    width = values.shape[1]
    # Rows differ in layout only by their code's length and which values are NULL
    # (a NULL field is a length of -1 and no bytes): one layout, one numpy record type.
    nulls = np.isnan(values)
    if lengths.min() == lengths.max() and not nulls.any():
        which, kinds = None, 1  # the usual day: one layout
    else:
        layout = lengths * (1 << width) + nulls @ (1 << np.arange(width))
        layouts, which = np.unique(layout, return_inverse=True)
        kinds = len(layouts)
        if kinds > _MAX_LAYOUTS:
            return None
    parts = [PGCOPY_HEADER]
    for kind in range(kinds):
        rows = slice(None) if which is None else np.flatnonzero(which == kind)
        first = 0 if which is None else rows[0]
        parts.append(_records(code_bytes[rows], int(lengths[first]), day_numbers[rows],
                              values[rows], nulls[first]))
    parts.append(PGCOPY_TRAILER)
    return b"".join(parts)


def _records(codes: np.ndarray, length: int, days: np.ndarray, values: np.ndarray,
             nulls: np.ndarray) -> bytes:
    fields: list[tuple[Any, ...]] = [("count", ">i2"), ("code_len", ">i4"), ("code", f"S{length}"),
                                     ("date_len", ">i4"), ("date", ">i4")]
    if not nulls.any():
        # The usual row: every value there, as one (length, double) subarray.
        fields.append(("vals", [("len", ">i4"), ("val", ">f8")], (len(nulls),)))
    else:
        for i, null in enumerate(nulls):
            fields.append((f"len{i}", ">i4"))
            if not null:
                fields.append((f"val{i}", ">f8"))
    records = np.empty(len(codes), dtype=np.dtype(fields))
    records["count"] = 2 + len(nulls)
    records["code_len"] = length
    records["code"] = codes
    records["date_len"] = 4
    records["date"] = days
    if not nulls.any():
        if len(nulls):
            records["vals"]["len"] = 8
            records["vals"]["val"] = values
        return records.tobytes()
    for i, null in enumerate(nulls):
        records[f"len{i}"] = -1 if null else 8
        if not null:
            records[f"val{i}"] = values[:, i]
    return records.tobytes()


def _codes(column: pd.Series, encoding: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(each ts_code encoded, as an array of bytes, their byte lengths); None for a
    missing or empty code (CSV makes it NULL) or one the encoding cannot carry."""
    items = column.to_numpy(dtype=object)
    if not len(items):
        return np.array([], dtype=object), np.array([], dtype=np.int64)
    same_width = _codes_of_one_width(items, encoding)
    if same_width is not None:
        return same_width
    if pd.api.types.infer_dtype(items, skipna=False) != "string" or (items == "").any():
        return None
    lengths = np.fromiter(map(len, items), dtype=np.int64, count=len(items))
    try:
        if lengths.min() == lengths.max():
            # Codes of one length: encoded in one go, split by position when every
            # character took one byte (tushare's codes are ASCII: always).
            joined = "".join(items).encode(encoding)
            if len(joined) == len(items) * lengths[0]:
                return np.frombuffer(joined, dtype=f"S{lengths[0]}"), lengths
        encoded = [item.encode(encoding) for item in items]
    except UnicodeEncodeError:
        return None
    byte_lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
    return np.array(encoded, dtype=object), byte_lengths


def _codes_of_one_width(items: np.ndarray, encoding: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The usual day, fast: codes of one byte width, none empty. Joined with NULs, the
    NULs must fall exactly every width + 1 bytes and nowhere else (text holds no NUL),
    which no other shape satisfies; None leaves the frame to the general checks."""
    try:
        joined = ("\0".join(items) + "\0").encode(encoding)
    except (TypeError, UnicodeEncodeError):  # not all str, or not in the client encoding
        return None
    count = len(items)
    if len(joined) % count or len(joined) // count < 2:
        return None
    width = len(joined) // count - 1
    grid = np.frombuffer(joined, dtype=np.uint8).reshape(count, width + 1)
    if grid[:, width].any() or not grid[:, :width].all():
        return None
    codes = np.ascontiguousarray(grid[:, :width]).view(f"S{width}").ravel()
    return codes, np.full(count, width, dtype=np.int64)


def _dates(column: pd.Series) -> tuple[np.ndarray, list[date]] | None:
    """trade_date as days since 2000-01-01, from tushare's 'YYYYMMDD' (str or int)."""
    items = column.to_numpy(dtype=object)
    if len(items) and (items == items[0]).all():
        positions, distinct = np.zeros(len(items), dtype=np.int64), [items[0]]
    else:
        positions, uniques = pd.factorize(items, use_na_sentinel=True)
        if len(positions) and positions.min() < 0:
            return None
        distinct = list(uniques)
    days: list[date] = []
    for value in distinct:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (str, int, np.integer)):
            return None
        text = str(value)
        if len(text) != 8 or not (text.isascii() and text.isdigit()):
            return None
        try:
            days.append(date(int(text[:4]), int(text[4:6]), int(text[6:])))
        except ValueError:
            return None
    numbers = np.array([d.toordinal() - _PG_EPOCH_ORDINAL for d in days], dtype=np.int64)
    return numbers[positions], days


def _values(frame: pd.DataFrame, fields: tuple[str, ...]) -> np.ndarray | None:
    """The value columns as one float64 matrix (NaN: NULL); None unless every column
    is float64 or integer, whose CSV text PostgreSQL would read as the same double."""
    matrix = np.empty((len(frame), len(fields)))
    for i, field in enumerate(fields):
        column = frame[field]
        dtype = column.dtype
        if not isinstance(dtype, np.dtype) or not (dtype == np.float64 or dtype.kind in "iu"):
            return None
        matrix[:, i] = column.to_numpy()
    return matrix
