"""Completion notices: one per job ending and destination, through a transactional outbox.

The transaction that ends a job (`jobs.complete_job_if_done`, `JobService.cancel`) calls
`record_ending`: it counts the ending and writes one `job_notices` row per configured
destination, with the job's summary as it ended. Nothing is sent inside that transaction,
so a rollback (a crash, a lost race for the job row) leaves no notice, and a commit always
leaves one per destination: never zero, never two.

After commit, `NoticeSender.deliver_due` sends due rows: right away from the process that
ended the job, and from the sweeper for whatever that one left (it died, a destination
failed). A sender claims one row at a time (`FOR UPDATE SKIP LOCKED` and a lease longer than
one send), so two senders never send the same notice at once. A failed send is retried
with backoff up to `max_attempts` claims, then recorded as failed with its error; a
failing destination never fails the job, and never raises out of here.

What "exactly once" means here: one notice row per (job, ending, destination), and one
successful send of it, unless a sender dies after the destination accepted it but before
it was marked sent; then the row's lease lapses and it is sent again with the same notice
id (header `X-Stocksync-Notice-Id`, SNS attribute `notice_id`), which receivers deduplicate on.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Mapping, Protocol, Sequence
from zoneinfo import ZoneInfo

import psycopg2.extras
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.db import Database, query

log = logging.getLogger(__name__)

NOTICE_ID_HEADER = "X-Stocksync-Notice-Id"
TIMESTAMP_HEADER = "X-Stocksync-Timestamp"
SIGNATURE_HEADER = "X-Stocksync-Signature"
SIGNATURE_VERSION = "v1"
USER_AGENT = "stocksync-notices/1"
SHOWN_TZ = ZoneInfo("Asia/Shanghai")  # the market's clock, as the page shows times

# The destinations this container writes notices for (Settings.notice_destinations), set
# once per container by app.get_settings, as complete_job_if_done has no settings of its own.
_destinations: tuple[str, ...] = ()


def use_destinations(names: Sequence[str]) -> None:
    global _destinations
    _destinations = tuple(names)


def destinations() -> tuple[str, ...]:
    return _destinations


def record_ending(cur: Any, task_id: str) -> int:
    """In the transaction that just ended the job: count the ending, write its notices.

    Returns which ending of the job this is (1 for the first; a retried job ends again)."""
    cur.execute(query("count_job_ending"), {"task_id": task_id})
    ending = cur.fetchone()["endings"]
    if not _destinations:
        return ending
    cur.execute(query("job_notice_summary"), {"task_id": task_id})
    payload = notice_payload(cur.fetchone(), ending)
    for destination in _destinations:
        cur.execute(query("insert_notice"), {"task_id": task_id, "ending": ending,
                                             "destination": destination,
                                             "payload": psycopg2.extras.Json(payload)})
    return ending


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def notice_payload(row: Mapping[str, Any], ending: int) -> dict[str, Any]:
    """The job's summary as it ended: what every destination receives (plus the notice id)."""
    elapsed = (row["finished_at"] - row["created_at"]).total_seconds() if row["finished_at"] else None
    payload: dict[str, Any] = {
        "kind": "job_ended", "ending": ending, "task_id": row["task_id"], "status": row["status"],
        "start_date": _iso(row["start_date"]), "end_date": _iso(row["end_date"]),
        "force": row["force"], "total": row["total"], "success": row["success"],
        "failed": row["failed"], "skipped": row["skipped"],
        # Days still open when it ended: a cancelled job's days that a worker still held.
        "open": row["open"], "rows": int(row["rows"]),
        "created_at": _iso(row["created_at"]), "finished_at": _iso(row["finished_at"]),
        "elapsed_s": round(elapsed, 1) if elapsed is not None else None,
        "created_by": row["created_by"], "cancelled_by": row["cancelled_by"],
        "message": row["message"],
    }
    payload["summary"] = {"zh": summary_text(payload, "zh"), "en": summary_text(payload, "en")}
    return payload


def _shown(value: str | None) -> str:
    if not value:
        return "-"
    return datetime.fromisoformat(value).astimezone(SHOWN_TZ).strftime("%Y-%m-%d %H:%M:%S")


def summary_text(p: Mapping[str, Any], lang: str) -> str:
    """A plain summary without links: what an email says (nothing to click, nothing to leak)."""
    rows = f"{p['rows']:,}"
    if lang == "en":
        verb = "completed" if p["status"] == "completed" else "cancelled"
        lines = [f"stocksync sync job {verb}: {p['start_date']} to {p['end_date']}"
                 + (" (forced)" if p["force"] else ""),
                 f"Task {p['task_id']}" + (f", ending {p['ending']}" if p["ending"] > 1 else ""),
                 f"{p['success']} days synced, {p['failed']} failed, {p['skipped']} skipped, "
                 f"of {p['total']}; {rows} rows written",
                 f"Started {_shown(p['created_at'])} by {p['created_by'] or 'unknown'}; "
                 f"ended {_shown(p['finished_at'])} (Beijing time)"]
        if p["status"] == "cancelled":
            lines.append(f"Cancelled by {p['cancelled_by'] or 'the system'}"
                         + (f"; {p['open']} days were still running" if p["open"] else ""))
        return "\n".join(lines)
    verb = "已完成" if p["status"] == "completed" else "已取消"
    lines = [f"stocksync 同步任务{verb}：{p['start_date']} 至 {p['end_date']}"
             + ("（强制重新同步）" if p["force"] else ""),
             f"任务 {p['task_id']}" + (f"，第 {p['ending']} 次结束" if p["ending"] > 1 else ""),
             f"共 {p['total']} 天：成功 {p['success']} 天，失败 {p['failed']} 天，"
             f"跳过 {p['skipped']} 天；写入 {rows} 行",
             f"开始于 {_shown(p['created_at'])}（{p['created_by'] or '未知'} 启动），"
             f"结束于 {_shown(p['finished_at'])}（北京时间）"]
    if p["status"] == "cancelled":
        lines.append(f"由 {p['cancelled_by'] or '系统'} 取消"
                     + (f"；取消时仍有 {p['open']} 天在同步" if p["open"] else ""))
    return "\n".join(lines)


@dataclass(frozen=True)
class Notice:
    """A claimed outbox row: what a destination is sent."""
    notice_id: str
    task_id: str
    ending: int
    destination: str
    payload: dict[str, Any]
    attempts: int
    lease_token: str = ""  # the claim's: only its holder records a failed attempt

    def body(self) -> dict[str, Any]:
        return {"notice_id": self.notice_id, **self.payload}

    def text(self) -> str:
        summary = self.payload["summary"]
        return f"{summary['zh']}\n\n{summary['en']}\n\n(notice {self.notice_id})"

    def subject(self) -> str:
        # SNS subjects (email subjects) are plain ASCII under 100 characters.
        p = self.payload
        return (f"stocksync: {p['start_date']}..{p['end_date']} {p['status']} "
                f"({p['success']} ok, {p['failed']} failed, {p['skipped']} skipped)")[:99]


class DeliveryError(Exception):
    """A destination did not accept a notice; str() says why, with nothing secret in it."""


class Transport(Protocol):
    def send(self, notice: Notice) -> None: ...


class SnsTransport:
    """Publishes to the notices topic: text for email subscriptions, JSON for machines."""

    def __init__(self, sns_client: Any, topic_arn: str):
        self._sns = sns_client
        self.topic_arn = topic_arn

    def send(self, notice: Notice) -> None:
        body = json.dumps(notice.body(), ensure_ascii=False)
        text = notice.text()
        message = {"default": text, "email": text,
                   **{protocol: body for protocol in ("email-json", "sqs", "lambda", "http", "https")}}
        try:
            self._sns.publish(
                TopicArn=self.topic_arn, Subject=notice.subject(), MessageStructure="json",
                Message=json.dumps(message, ensure_ascii=False),
                MessageAttributes={
                    "notice_id": {"DataType": "String", "StringValue": notice.notice_id},
                    "task_id": {"DataType": "String", "StringValue": notice.task_id},
                    "status": {"DataType": "String", "StringValue": str(notice.payload["status"])},
                    "ending": {"DataType": "Number", "StringValue": str(notice.ending)}})
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise DeliveryError(f"SNS {error.get('Code', '?')}: {error.get('Message', '')}"[:300]) from None
        except BotoCoreError as exc:
            raise DeliveryError(f"SNS unreachable: {exc.__class__.__name__}") from None


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """`v1=` and the hex HMAC-SHA256 of `<timestamp>.<body>` under the webhook secret."""
    digest = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return f"{SIGNATURE_VERSION}={digest.hexdigest()}"


def verify(secret: str, headers: Mapping[str, str], body: bytes, now: float | None = None,
           tolerance_s: float = 300.0) -> bool:
    """What a receiver checks: the signature over the timestamp and body, and a fresh timestamp."""
    lowered = {k.lower(): v for k, v in headers.items()}
    timestamp = lowered.get(TIMESTAMP_HEADER.lower(), "")
    given = lowered.get(SIGNATURE_HEADER.lower(), "")
    if not timestamp.isdigit():
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), given)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A receiver's redirect could point anywhere: the configured URL is the only host called.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class WebhookTransport:
    """POSTs the notice as JSON to one configured URL, signed; 2xx is accepted."""

    def __init__(self, name: str, url: str, secret: str, timeout_s: float,
                 clock: Callable[[], float] = time.time):
        self.name = name
        self._url = url
        self._secret = secret
        self._timeout_s = timeout_s
        self._clock = clock
        # No proxies from the environment, no redirects: only the configured host.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects())

    def send(self, notice: Notice) -> None:
        body = json.dumps(notice.body(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        timestamp = str(int(self._clock()))
        request = urllib.request.Request(self._url, data=body, method="POST", headers={
            "Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT,
            NOTICE_ID_HEADER: notice.notice_id, TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self._secret, timestamp, body)})
        try:
            with self._opener.open(request, timeout=self._timeout_s) as answer:
                answer.read(65536)
                status = answer.status
        except urllib.error.HTTPError as exc:
            raise DeliveryError(f"webhook {self.name} answered HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DeliveryError(f"webhook {self.name} unreachable: {reason.__class__.__name__}"
                                f"{': ' + str(reason)[:120] if isinstance(reason, (str, OSError)) else ''}") from None
        if not 200 <= status < 300:
            raise DeliveryError(f"webhook {self.name} answered HTTP {status}")


@dataclass(frozen=True)
class NoticePolicy:
    max_attempts: int = 6
    retry_base_s: float = 30.0
    retry_max_s: float = 1800.0
    lease_s: float = 60.0

    def retry_s(self, attempts: int) -> float:
        return min(self.retry_base_s * 2 ** max(attempts - 1, 0), self.retry_max_s)


@dataclass
class DeliveryReport:
    sent: list[str] = field(default_factory=list)  # notice ids
    retrying: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # gave up: attempts used up


class NoticeSender:
    def __init__(self, db: Database, transports: Mapping[str, Transport], policy: NoticePolicy,
                 clock: Callable[[], float] = time.monotonic):
        self._db = db
        self._transports = dict(transports)
        self._policy = policy
        self._clock = clock

    def deliver_due(self, task_id: str | None = None, budget_s: float = 20.0,
                    limit: int = 200) -> DeliveryReport:
        """Send due notices (of one job, or all) one by one until none is due or the time
        budget is spent (a send started in time may end up to one timeout later). Never
        raises for a destination's sake."""
        report = DeliveryReport()
        deadline = self._clock() + budget_s
        tried: list[str] = []  # one try per notice per round, even if its retry is due at once
        for _ in range(limit):
            if self._clock() >= deadline:
                break
            notice = self._claim(task_id, tried)
            if notice is None:
                break
            tried.append(notice.notice_id)
            self._deliver(notice, report)
        return report

    def fail_abandoned(self) -> list[str]:
        """Rows whose last allowed claim never reported back (the sender died): failed."""
        with self._db.transaction() as cur:
            cur.execute(query("fail_abandoned_notices"), {
                "max_attempts": self._policy.max_attempts,
                "reason": f"no sender reported back after {self._policy.max_attempts} attempts"})
            rows = cur.fetchall()
        for row in rows:
            log.warning("notice %s of %s to %s: failed, its senders never reported back",
                        row["notice_id"], row["task_id"], row["destination"])
        return [row["notice_id"] for row in rows]

    def _claim(self, task_id: str | None, tried: list[str]) -> Notice | None:
        token = uuid.uuid4().hex
        with self._db.transaction() as cur:
            cur.execute(query("claim_notice"), {
                "lease_token": token, "lease_s": self._policy.lease_s,
                "max_attempts": self._policy.max_attempts, "task_id": task_id, "tried": tried})
            row = cur.fetchone()
        if row is None:
            return None
        return Notice(notice_id=row["notice_id"], task_id=row["task_id"], ending=row["ending"],
                      destination=row["destination"], payload=row["payload"], attempts=row["attempts"],
                      lease_token=token)

    def _deliver(self, notice: Notice, report: DeliveryReport) -> None:
        where = f"notice {notice.notice_id} of {notice.task_id} (ending {notice.ending}) to {notice.destination}"
        transport = self._transports.get(notice.destination)
        try:
            if transport is None:
                raise DeliveryError(f"{notice.destination} is not configured in this function")
            transport.send(notice)
        except Exception as exc:  # noqa: BLE001 - a destination's failure is the notice's, never the job's
            error = str(exc) if isinstance(exc, DeliveryError) else f"unexpected {exc.__class__.__name__}"
            self._failed(notice, error, where, report)
            return
        with self._db.transaction() as cur:
            cur.execute(query("notice_sent"), {"notice_id": notice.notice_id})
        log.info("%s: sent (attempt %s)", where, notice.attempts)
        report.sent.append(notice.notice_id)

    def _failed(self, notice: Notice, error: str, where: str, report: DeliveryReport) -> None:
        retry_s = self._policy.retry_s(notice.attempts)
        with self._db.transaction() as cur:
            cur.execute(query("notice_attempt_failed"), {
                "notice_id": notice.notice_id, "lease_token": notice.lease_token,
                "max_attempts": self._policy.max_attempts,
                "retry_s": retry_s, "error": error[:500]})
            row = cur.fetchone()
        if row is None:
            log.info("%s: attempt %s failed (%s); another sender has it now", where, notice.attempts, error)
        elif row["status"] == "failed":
            log.warning("%s: gave up after %s attempts: %s", where, notice.attempts, error)
            report.failed.append(notice.notice_id)
        else:
            log.warning("%s: attempt %s of %s failed (%s); again in %.0f s", where, notice.attempts,
                        self._policy.max_attempts, error, retry_s)
            report.retrying.append(notice.notice_id)
