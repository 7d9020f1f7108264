"""Validation of a batch-sync request body: every rule names what is wrong."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Mapping

from chalicelib.config import FIRST_TRADING_DAY
from chalicelib.datasets import DATASETS, DEFAULT_DATASETS
from chalicelib.errors import ValidationError, shorten

# ASCII digits only, matched whole: `\d` takes any Unicode digit and `$` a trailing newline.
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# The seed's task id, start_end_epochseconds. Explicit [0-9] and fullmatch: `\d` takes any
# Unicode digit and `$` a trailing newline, and an id is checked before it reaches any SQL.
TASK_ID = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}_[0-9]{4}-[0-9]{2}-[0-9]{2}_[0-9]{1,12}")


def is_task_id(value: object) -> bool:
    """Whether `value` has the shape of a task id (it may still name no job)."""
    return isinstance(value, str) and TASK_ID.fullmatch(value) is not None


@dataclass(frozen=True)
class BatchRequest:
    start_date: date
    end_date: date
    force: bool = False
    datasets: tuple[str, ...] = DEFAULT_DATASETS

    @property
    def days(self) -> list[date]:
        count = (self.end_date - self.start_date).days + 1
        return [self.start_date + timedelta(days=i) for i in range(count)]


def parse_json_body(raw: bytes | str | None) -> Any:
    if raw is None or (isinstance(raw, (bytes, str)) and not raw.strip()):
        raise ValidationError("body_required", "请求体不能为空，需要 JSON 对象，例如 "
                              '{"start_date": "2025-10-01", "end_date": "2025-10-09"}',
                              "The request body is empty; send a JSON object such as "
                              '{"start_date": "2025-10-01", "end_date": "2025-10-09"}')
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        # RecursionError: JSON nested deeper than the parser's stack (`[[[[...`).
        raise ValidationError("body_not_json", "请求体不是合法的 JSON",
                              "The request body is not valid JSON") from None


def parse_date(body: Mapping[str, Any], field: str) -> date:
    """`body[field]` as a date (a JSON body or a query string); every message names the field."""
    if field not in body or body[field] is None:
        raise ValidationError(f"{field}_missing", f"缺少参数 {field}（格式 YYYY-MM-DD）",
                              f"{field} is required (format YYYY-MM-DD)")
    value = body[field]
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
        shown = shorten(repr(value) if isinstance(value, str) else value)
        raise ValidationError(f"{field}_format",
                              f"{field} 日期格式错误: {shown}，应为 YYYY-MM-DD",
                              f"{field} must be a date as YYYY-MM-DD, got {shown}")
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise ValidationError(f"{field}_invalid", f"{field} 不是有效日期: {value}",
                              f"{field} is not a real date: {value}") from None
    if day < FIRST_TRADING_DAY:
        raise ValidationError(f"{field}_too_early",
                              f"{field} 不能早于 {FIRST_TRADING_DAY}（A 股首个交易日）: {value}",
                              f"{field} must not be before {FIRST_TRADING_DAY}, the first "
                              f"A-share trading day: {value}")
    return day


def check_range(start: date, end: date, max_days: int,
                names: tuple[str, str] = ("start_date", "end_date")) -> None:
    """start <= end, and at most `max_days` days counting both ends."""
    if start > end:
        raise ValidationError("range_reversed",
                              f"开始日期 {start} 不能晚于结束日期 {end}",
                              f"{names[0]} {start} must not be after {names[1]} {end}")
    span = (end - start).days + 1
    if span > max_days:
        raise ValidationError("range_too_long",
                              f"日期范围不能超过{max_days}天（当前 {span} 天）",
                              f"The range must be at most {max_days} days (got {span})")


def validate_batch_request(body: Any, today: date, max_days: int) -> BatchRequest:
    """Check the seed's rules: start <= end, at most `max_days` days, nothing in the future."""
    if not isinstance(body, dict):
        raise ValidationError("body_not_object", "请求体必须是 JSON 对象，包含 start_date 和 end_date",
                              "The request body must be a JSON object with start_date and end_date")
    start = parse_date(body, "start_date")
    end = parse_date(body, "end_date")
    force = body.get("force", False)
    if not isinstance(force, bool):
        raise ValidationError("force_type", "force 必须是布尔值 true 或 false",
                              "force must be a boolean, true or false")
    datasets = parse_datasets(body.get("datasets"))
    check_range(start, end, max_days)
    if end > today:
        raise ValidationError("end_in_future",
                              f"结束日期 {end} 不能晚于今天 {today}（北京时间）",
                              f"end_date {end} must not be after today {today} (Beijing time)")
    return BatchRequest(start, end, force, datasets)


def parse_datasets(value: Any, field: str = "datasets") -> tuple[str, ...]:
    """The datasets a job syncs: a JSON array of names (or, in a query string, a comma-
    separated list); absent or null: daily alone, as the seed. Known names only, no repeats
    kept, in the order DATASETS lists them."""
    if value is None:
        return DEFAULT_DATASETS
    known = ", ".join(DATASETS)
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",")]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValidationError(f"{field}_type",
                              f"{field} 必须是数据集名称的数组，例如 [\"daily\", \"adj_factor\"]（可选: {known}）",
                              f"{field} must be an array of dataset names such as "
                              f"[\"daily\", \"adj_factor\"] (known: {known})")
    names = [v for v in value if v]
    if not names:
        raise ValidationError(f"{field}_empty", f"{field} 至少需要一个数据集（可选: {known}）",
                              f"{field} must name at least one dataset (known: {known})")
    unknown = [v for v in names if v not in DATASETS]
    if unknown:
        shown = shorten(unknown[0])
        raise ValidationError("dataset_unknown", f"未知的数据集: {shown}（可选: {known}）",
                              f"Unknown dataset: {shown} (known: {known})")
    return tuple(name for name in DATASETS if name in names)  # the datasets' own order
