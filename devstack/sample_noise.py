"""Counter-based randomness for the sample market: a uniform per (symbol key,
day, stream) from a hash rather than a seeded generator, so any subset of
(symbol, day) pairs costs only its size and every process draws the same numbers.

Streams in use (a normal on stream s also uses s + 100):
0 close noise, 1 suspension, 2-5 open/high/low/volume, 10-19 corporate actions,
20-39 fundamentals (daily_basic).
"""
from __future__ import annotations

import numpy as np

SEED = 20251009
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: a bijective scramble of uint64s."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def uniform(key: np.ndarray, day: np.ndarray | int, stream: int) -> np.ndarray:
    """A uniform in (0, 1) per (symbol key, day, stream); `day` may be any integer
    coordinate (a trading-day index, a year, a quarter)."""
    day = np.asarray(day)
    with np.errstate(over="ignore"):
        salt = _mix(day.astype(np.int64).astype(np.uint64) * _GOLDEN
                    + np.uint64(SEED * 64 + stream))
        bits = _mix(salt ^ (np.asarray(key).astype(np.uint64) * _GOLDEN))
    return ((bits >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0 ** -53


def normal(key: np.ndarray, day: np.ndarray | int, stream: int) -> np.ndarray:
    """A standard normal per (symbol key, day, stream) (Box-Muller on two streams)."""
    u1, u2 = uniform(key, day, stream), uniform(key, day, stream + 100)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)
