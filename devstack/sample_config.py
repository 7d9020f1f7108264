"""What a sample tushare server may be configured to do, checked in one place, so
the constructor and the control endpoint accept exactly the same values."""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from devstack.sample_apis import DEFAULT_ROW_CAPS, HANDLERS
from devstack.sample_quota import Limits, normalize_limits

DEFAULT_PUBLISH_TIME = "17:00"  # tushare publishes a day's daily/daily_basic by then
_HH_MM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def _api_names(value: Any, what: str) -> frozenset[str]:
    if value is None:
        return frozenset()
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, Iterable):
        raise ValueError(f"{what} must be a list of api names, not {value!r}")
    names = frozenset(str(n).strip() for n in value if str(n).strip())
    unknown = names - set(HANDLERS)
    if unknown:
        raise ValueError(f"{what}: unknown api {sorted(unknown)}; expected some of {sorted(HANDLERS)}")
    return names


def row_caps(value: int | Mapping[str, int | None] | None) -> dict[str, int | None]:
    """None: tushare's caps; a number: that cap for every capped api; a mapping: those
    apis' caps (None: uncapped), the others as tushare."""
    caps = dict(DEFAULT_ROW_CAPS)
    if value is None:
        return caps
    if isinstance(value, bool):
        raise ValueError(f"not a row cap: {value!r}")
    if isinstance(value, (int, float, str)):
        value = {api: value for api, cap in caps.items() if cap is not None}
    if not isinstance(value, Mapping):
        raise ValueError(f"row_caps must be a number or a mapping, not {value!r}")
    for api, cap in value.items():
        if api not in caps:
            raise ValueError(f"row_caps: unknown api {api!r}")
        if cap is not None and (isinstance(cap, bool) or int(cap) != float(cap) or int(cap) < 1):
            raise ValueError(f"row cap for {api!r} must be a whole number >= 1 or null, not {cap!r}")
        caps[api] = None if cap is None else int(cap)
    return caps


def ignore_offset(value: bool | Iterable[str] | None) -> frozenset[str]:
    """True: every api ignores `offset` (pages can't be walked); False/None: none do;
    a list: those apis."""
    if value is None or value is False:
        return frozenset()
    if value is True:
        return frozenset(HANDLERS)
    return _api_names(value, "ignore_offset")


def publish_time(value: Any) -> str:
    text = str(value).strip()
    if not _HH_MM.match(text):
        raise ValueError(f"publish_time must be HH:MM (Asia/Shanghai), not {value!r}")
    return text


@dataclass(frozen=True)
class ServerConfig:
    """A server's behaviour beyond its data. Every field has a default that behaves
    like tushare for a token with every permission and no quota."""
    rate_limit_per_minute: Limits = field(default_factory=dict)  # {} unlimited; "*": any api
    denied_apis: frozenset[str] = frozenset()
    row_caps: dict[str, int | None] = field(default_factory=lambda: dict(DEFAULT_ROW_CAPS))
    ignore_offset: frozenset[str] = frozenset()
    publish_time: str = DEFAULT_PUBLISH_TIME

    @property
    def publish_minute(self) -> int:
        hours, minutes = self.publish_time.split(":")
        return int(hours) * 60 + int(minutes)

    def updated(self, changes: Mapping[str, Any]) -> ServerConfig:
        """A copy with `changes` (names as the fields; values as the constructor takes)."""
        unknown = set(changes) - set(self.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown setting {sorted(unknown)}; expected some of "
                             f"{sorted(self.__dataclass_fields__)}")
        parsers: dict[str, Callable[[Any], Any]] = {
            "rate_limit_per_minute": normalize_limits,
            "denied_apis": lambda v: _api_names(v, "denied_apis"),
            "row_caps": row_caps, "ignore_offset": ignore_offset, "publish_time": publish_time}
        try:
            return replace(self, **{name: parsers[name](value) for name, value in changes.items()})
        except (TypeError, ValueError) as exc:
            raise ValueError(str(exc)) from None

    def as_json(self) -> dict[str, Any]:
        return {"rate_limit_per_minute": dict(self.rate_limit_per_minute),
                "denied_apis": sorted(self.denied_apis), "row_caps": dict(self.row_caps),
                "ignore_offset": sorted(self.ignore_offset), "publish_time": self.publish_time}
