"""Settings, read once from the environment.

In AWS the stages of `.chalice/config.json` set these variables; locally the
dev stack (`devstack/`) sets them before it starts the API and the workers.
"""
from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Mapping
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from chalicelib.auth import TokenEntry, parse_tokens
from chalicelib.errors import ConfigError
from chalicelib.quota import parse_quota

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
_WEBHOOK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
_LOOPBACK_NAMES = {"localhost"}


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
    # Completion notices (README, "Notices"): where they go, how they are signed, retried.
    notify_sns_topic_arn: str | None = None
    notify_webhooks: tuple["Webhook", ...] = ()
    notify_webhook_secret: str = ""
    notify_max_attempts: int = 6
    notify_retry_base_s: float = 30.0
    notify_retry_max_s: float = 1800.0
    notify_timeout_s: float = 5.0
    notify_lease_s: float = 60.0  # a claimed notice is its sender's this long: more than one send
    sns_endpoint_url: str | None = None  # the dev stack's moto server; unset in AWS
    # Pushed progress (README, "Live progress"): the WebSocket URL the page connects to, the
    # management endpoint pushes are posted to, and how long a connect ticket is valid.
    live_websocket_url: str | None = None
    live_management_url: str | None = None
    live_ticket_ttl_s: float = 30.0
    # Datasets, completeness and the shared tushare quota (README, "Datasets", "Quota").
    publish_time: str = "17:00"  # Asia/Shanghai: a trade date's data is out from then on
    completeness_tolerance: int = 0  # rows a day may differ from the listings' count
    listings_max_age_s: float = 12 * 3600.0
    listings_recheck_s: float = 60.0
    quota_per_minute: tuple[tuple[str, int], ...] = ()  # over chalicelib.quota's defaults
    quota_window_s: float = 60.0
    quota_margin_s: float = 1.0
    quota_max_wait_s: float = 20.0
    audit_recheck_max: int = 31  # (day, dataset) pairs one audit may re-count at the source

    def notice_destinations(self) -> tuple[str, ...]:
        """The names completion notices are written for: `sns`, then `webhook:<name>` each."""
        names = ["sns"] if self.notify_sns_topic_arn else []
        return tuple(names + [webhook.destination for webhook in self.notify_webhooks])

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
            notify_sns_topic_arn=env.get("NOTIFY_SNS_TOPIC_ARN") or None,
            notify_webhooks=parse_webhooks(env.get("NOTIFY_WEBHOOKS"), env.get("NOTIFY_WEBHOOK_SECRET", "")),
            notify_webhook_secret=env.get("NOTIFY_WEBHOOK_SECRET", ""),
            notify_max_attempts=int(env.get("NOTIFY_MAX_ATTEMPTS", "6")),
            notify_retry_base_s=float(env.get("NOTIFY_RETRY_BASE_S", "30")),
            notify_retry_max_s=float(env.get("NOTIFY_RETRY_MAX_S", "1800")),
            notify_timeout_s=float(env.get("NOTIFY_TIMEOUT_S", "5")),
            notify_lease_s=float(env.get("NOTIFY_LEASE_S", "60")),
            sns_endpoint_url=env.get("SNS_ENDPOINT_URL") or None,
            live_websocket_url=parse_url(env.get("LIVE_WEBSOCKET_URL"), ("ws", "wss"), "LIVE_WEBSOCKET_URL"),
            live_management_url=parse_url(env.get("LIVE_MANAGEMENT_URL"), ("http", "https"),
                                          "LIVE_MANAGEMENT_URL"),
            live_ticket_ttl_s=float(env.get("LIVE_TICKET_TTL_S", "30")),
            publish_time=parse_hh_mm(env.get("PUBLISH_TIME") or "17:00", "PUBLISH_TIME"),
            completeness_tolerance=int(env.get("COMPLETENESS_TOLERANCE", "0")),
            listings_max_age_s=float(env.get("LISTINGS_MAX_AGE_S", "43200")),
            listings_recheck_s=float(env.get("LISTINGS_RECHECK_S", "60")),
            quota_per_minute=tuple(sorted(parse_quota(env.get("QUOTA_PER_MINUTE")).items())),
            quota_window_s=float(env.get("QUOTA_WINDOW_S", "60")),
            quota_margin_s=float(env.get("QUOTA_MARGIN_S", "1")),
            quota_max_wait_s=float(env.get("QUOTA_MAX_WAIT_S", "20")),
            audit_recheck_max=int(env.get("AUDIT_RECHECK_MAX", "31")),
        )


def parse_hh_mm(text: str, setting: str) -> str:
    value = text.strip()
    if not re.fullmatch(r"([01][0-9]|2[0-3]):[0-5][0-9]", value):
        raise ConfigError(f"{setting} is a time of day as HH:MM (Asia/Shanghai), e.g. 17:00")
    return value


def published_through(now: datetime, publish_time: str) -> date:
    """The newest date whose data is out at `now`: today from the publish time on
    (Asia/Shanghai), yesterday before it."""
    local = now.astimezone(MARKET_TZ)
    hours, minutes = (int(part) for part in publish_time.split(":"))
    if (local.hour, local.minute) >= (hours, minutes):
        return local.date()
    return local.date() - timedelta(days=1)


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


@dataclass(frozen=True)
class Webhook:
    """A configured receiver of completion notices: its name (what logs and rows show) and URL."""
    name: str
    url: str

    @property
    def destination(self) -> str:
        return f"webhook:{self.name}"


def is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_webhooks(text: str | None, secret: str) -> tuple[Webhook, ...]:
    """`NOTIFY_WEBHOOKS`: `name=url` pairs, comma- or newline-separated.

    Only configuration names receivers: nothing a request carries can make the API call a
    host. Each URL is https (plain http only to a loopback address, for the dev stack),
    without credentials; and notices are signed, so a secret is required. Errors name the
    entry by position, never its URL (a receiver's URL may itself be a credential)."""
    hooks: dict[str, Webhook] = {}
    for number, raw in enumerate(re.split(r"[,\n]", text or ""), start=1):
        item = raw.strip()
        if not item:
            continue
        name, sep, url = (part.strip() for part in item.partition("="))
        if not sep or not _WEBHOOK_NAME.fullmatch(name):
            raise ConfigError(f"NOTIFY_WEBHOOKS entry {number}: expected name=https://..., the name "
                              "1-32 of A-Z a-z 0-9 _ . -")
        try:
            parts = urlsplit(url)
            host = parts.hostname or ""
            parts.port  # noqa: B018 - a malformed port raises here
        except ValueError:
            raise ConfigError(f"NOTIFY_WEBHOOKS entry {number} ({name}): not a URL") from None
        if parts.username or parts.password or not host:
            raise ConfigError(f"NOTIFY_WEBHOOKS entry {number} ({name}): a URL with a host and "
                              "no user or password in it")
        if not (parts.scheme == "https" or (parts.scheme == "http" and is_loopback(host))):
            raise ConfigError(f"NOTIFY_WEBHOOKS entry {number} ({name}): https is required "
                              "(plain http only to a loopback address)")
        if name in hooks:
            raise ConfigError(f"NOTIFY_WEBHOOKS entry {number}: the name {name} is listed twice")
        hooks[name] = Webhook(name, url)
    if hooks and not secret:
        raise ConfigError("NOTIFY_WEBHOOKS needs NOTIFY_WEBHOOK_SECRET: every notice is signed with it")
    return tuple(hooks.values())


def parse_url(text: str | None, schemes: tuple[str, ...], setting: str) -> str | None:
    """An absolute URL of one of `schemes` with a host, or None when unset."""
    value = (text or "").strip()
    if not value:
        return None
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018
    except ValueError:
        raise ConfigError(f"{setting} is not a URL") from None
    if parts.scheme not in schemes or not parts.hostname or parts.username or parts.query:
        raise ConfigError(f"{setting} is a {' or '.join(schemes)} URL with a host, no user, no query")
    return value
