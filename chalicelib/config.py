"""Settings, read once from the environment.

In AWS the stages of `.chalice/config.json` set these variables; locally the
dev stack (`devstack/`) sets them before it starts the API and the workers.
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Mapping
from zoneinfo import ZoneInfo

# A-share trading dates are Beijing dates, whatever the server's zone.
MARKET_TZ = ZoneInfo("Asia/Shanghai")

DAY_QUEUE_NAME = "stocksync-days"
DEAD_LETTER_QUEUE_NAME = "stocksync-days-dlq"
TUSHARE_DEFAULT_URL = "http://api.waditu.com/dataapi"

log = logging.getLogger(__name__)

# scheme://host[:port], nothing else: an origin goes into the page's CSP header as it is.
_ORIGIN = re.compile(r"https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?")


def market_today() -> date:
    return datetime.now(MARKET_TZ).date()


@dataclass(frozen=True)
class Settings:
    database_url: str
    sqs_queue_url: str | None
    sqs_endpoint_url: str | None
    aws_region: str
    tushare_token: str
    tushare_api_url: str
    tushare_timeout_s: float
    max_range_days: int
    max_attempts: int
    retry_base_s: float
    retry_max_s: float
    db_pool_size: int
    stale_after_s: float
    unsent_after_s: float
    # Faults, round two: the day lease, lost messages, retention of ended jobs.
    worker_timeout_s: float  # sync_day's lambda_timeout in .chalice/config.json
    lease_margin_s: float
    lost_after_s: float
    job_retention_days: int  # 0: keep ended jobs forever
    # Origins besides its own that the sync page may call (`?api=`, CSP connect-src).
    page_api_origins: tuple[str, ...] = ()

    @property
    def lease_s(self) -> float:
        """How long a claimed day is its worker's: Lambda ends the worker by its timeout."""
        return self.worker_timeout_s + self.lease_margin_s

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        return cls(
            database_url=env.get("DATABASE_URL", ""),
            sqs_queue_url=env.get("SQS_QUEUE_URL") or None,
            sqs_endpoint_url=env.get("SQS_ENDPOINT_URL") or None,
            aws_region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "ap-east-1",
            tushare_token=env.get("TUSHARE_TOKEN", ""),
            tushare_api_url=env.get("TUSHARE_API_URL") or TUSHARE_DEFAULT_URL,
            tushare_timeout_s=float(env.get("TUSHARE_TIMEOUT_S", "30")),
            max_range_days=int(env.get("MAX_RANGE_DAYS", "90")),
            max_attempts=int(env.get("MAX_ATTEMPTS", "5")),
            retry_base_s=float(env.get("RETRY_BASE_S", "10")),
            retry_max_s=float(env.get("RETRY_MAX_S", "300")),
            db_pool_size=int(env.get("DB_POOL_SIZE", "4")),
            stale_after_s=float(env.get("STALE_AFTER_S", "900")),
            unsent_after_s=float(env.get("UNSENT_AFTER_S", "60")),
            worker_timeout_s=float(env.get("WORKER_TIMEOUT_S", "120")),
            lease_margin_s=float(env.get("LEASE_MARGIN_S", "15")),
            lost_after_s=float(env.get("LOST_AFTER_S", "120")),
            job_retention_days=int(env.get("JOB_RETENTION_DAYS", "180")),
            page_api_origins=parse_origins(env.get("PAGE_API_ORIGINS", "")),
        )


def parse_origins(value: str) -> tuple[str, ...]:
    """A comma-separated list of origins; an entry that is not exactly an origin is dropped
    with a warning (it would otherwise reach a CSP header), and a trailing `/` is ignored."""
    origins: list[str] = []
    for entry in value.split(","):
        origin = entry.strip().rstrip("/")
        if not origin:
            continue
        if _ORIGIN.fullmatch(origin):
            origins.append(origin.lower())
        else:
            log.warning("PAGE_API_ORIGINS: %r is not an origin (scheme://host[:port]); ignored",
                        origin[:80])
    return tuple(dict.fromkeys(origins))
