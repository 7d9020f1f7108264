"""Settings, read once from the environment.

In AWS the stages of `.chalice/config.json` set these variables; locally the
dev stack (`devstack/`) sets them before it starts the API and the workers.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Mapping
from zoneinfo import ZoneInfo

from chalicelib.auth import TokenEntry, parse_tokens
from chalicelib.errors import ConfigError

# A-share trading dates are Beijing dates, whatever the server's zone.
MARKET_TZ = ZoneInfo("Asia/Shanghai")

DAY_QUEUE_NAME = "stocksync-days"
DEAD_LETTER_QUEUE_NAME = "stocksync-days-dlq"
TUSHARE_DEFAULT_URL = "http://api.waditu.com/dataapi"
# The first A-share trading day (the Shanghai exchange opened on 1990-12-19): no
# data exists before it, so a range reaching back further only spends quota.
FIRST_TRADING_DAY = date(1990, 12, 19)
_ORIGIN = re.compile(r"https?://[a-z0-9.-]+(:[0-9]{1,5})?|https?://\[[0-9a-f:.]+\](:[0-9]{1,5})?")
_TRUE = {"1", "true", "yes", "on"}


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
    # Security (README, "Security model").
    api_tokens: tuple[TokenEntry, ...] = ()
    public_read: bool = False
    cors_allow_origins: frozenset[str] = field(default_factory=frozenset)
    max_body_bytes: int = 16 * 1024
    job_starts_per_hour: int = 30  # per token; 0: no limit
    forced_syncs_per_day: int = 10  # per token; 0: no limit
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
            api_tokens=parse_tokens(env.get("API_TOKENS")),
            public_read=env.get("PUBLIC_READ", "").strip().lower() in _TRUE,
            cors_allow_origins=frozenset(parse_origins(env.get("CORS_ALLOW_ORIGINS"),
                                                       "CORS_ALLOW_ORIGINS")),
            max_body_bytes=int(env.get("MAX_BODY_BYTES", "16384")),
            job_starts_per_hour=int(env.get("JOB_STARTS_PER_HOUR", "30")),
            forced_syncs_per_day=int(env.get("FORCED_SYNCS_PER_DAY", "10")),
            page_api_origins=parse_origins(env.get("PAGE_API_ORIGINS"), "PAGE_API_ORIGINS"),
        )


def normalize_origin(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


def parse_origins(text: str | None, setting: str = "CORS_ALLOW_ORIGINS") -> tuple[str, ...]:
    """A comma-separated list of `scheme://host[:port]`, in order, without repeats.

    Anything else (`*`, a path, a CSP fragment) is a configuration error rather than
    dropped: these lists open the API to other sites and go into the page's CSP header."""
    origins: list[str] = []
    for raw in (text or "").split(","):
        origin = normalize_origin(raw)
        if not origin:
            continue
        if not _ORIGIN.fullmatch(origin):
            raise ConfigError(f"{setting} lists origins as scheme://host[:port], comma-"
                              "separated; `*` and paths are not accepted")
        origins.append(origin)
    return tuple(dict.fromkeys(origins))
