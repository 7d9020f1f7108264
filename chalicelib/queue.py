"""The SQS queue of day messages: one message per (task, day)."""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import date
from typing import Any, Iterable

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.validation import is_task_id

log = logging.getLogger(__name__)

SQS_BATCH_LIMIT = 10  # SendMessageBatch's hard limit
SQS_MAX_DELAY_S = 900  # SendMessage's DelaySeconds limit
SQS_MAX_VISIBILITY_S = 43_200
# A day message is about 120 characters; anything far longer is not one of ours, and
# the cap also bounds what json.loads is asked to do with a hostile body.
MAX_BODY_CHARS = 2048
# The counts the sweeper reads to tell a lost message from one merely waiting.
QUEUE_COUNTS = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed")

_ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_LEASE_TOKEN = re.compile(r"[0-9a-f]{32}")
_MAX_OUTAGES = 1_000_000


class QueueError(Exception):
    """SQS refused or could not be reached."""


class MalformedMessage(ValueError):
    """A body no delivery could ever process; str() says why, without echoing it."""


@dataclass(frozen=True)
class DayMessage:
    task_id: str
    day: date
    # Set only on a database-outage hand-off: the claim it continues, and how many
    # deliveries in a row found the database down (the backoff's step).
    lease: str | None = None
    outages: int = 0

    def to_body(self) -> str:
        body: dict[str, Any] = {"task_id": self.task_id, "day": self.day.isoformat()}
        if self.lease is not None:
            body["lease"] = self.lease
        if self.outages:
            body["outages"] = self.outages
        return json.dumps(body)


def parse_day_message(body: Any) -> DayMessage:
    """A message body as a DayMessage; raises MalformedMessage naming what is wrong.

    Anything may arrive: SQS carries whatever someone sent, and a dead-letter queue
    collects exactly the bodies that failed before. So no input may raise anything else.
    """
    if isinstance(body, (bytes, bytearray)):
        try:
            body = bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedMessage("body is not UTF-8") from None
    if not isinstance(body, str):
        raise MalformedMessage(f"body is {type(body).__name__}, not text")
    if len(body) > MAX_BODY_CHARS:
        raise MalformedMessage(f"body has {len(body)} characters, more than {MAX_BODY_CHARS}")
    try:
        data = json.loads(body)
    except RecursionError:
        raise MalformedMessage("body is JSON nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise MalformedMessage(f"body is not JSON ({exc.msg} at {exc.pos})") from None
    except ValueError as exc:  # e.g. an integer literal past Python's digit limit
        raise MalformedMessage(f"body is not usable JSON ({exc.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise MalformedMessage(f"body is a JSON {_json_type(data)}, not an object")
    task_id = data.get("task_id")
    if not is_task_id(task_id):
        raise MalformedMessage("task_id is missing" if task_id is None else "task_id is not a task id")
    day = data.get("day")
    if not isinstance(day, str) or not _ISO_DAY.fullmatch(day):
        raise MalformedMessage("day is missing or not YYYY-MM-DD")
    try:
        parsed_day = date.fromisoformat(day)
    except ValueError:
        raise MalformedMessage("day is not a real date") from None
    lease = data.get("lease")
    if lease is not None and not (isinstance(lease, str) and _LEASE_TOKEN.fullmatch(lease)):
        raise MalformedMessage("lease is not a lease token")
    outages = data.get("outages", 0)
    if type(outages) is not int or not 0 <= outages <= _MAX_OUTAGES:
        raise MalformedMessage("outages is not a count")
    return DayMessage(task_id=task_id, day=parsed_day, lease=lease, outages=outages)


def preview(body: Any, limit: int = 80) -> str:
    """A body as it may appear in a log line: ASCII only, cut short, its length told."""
    if isinstance(body, (str, bytes, bytearray)):
        shown = ascii(body[:limit])
        return shown if len(body) <= limit else f"{shown}... ({len(body)} in all)"
    return f"<{type(body).__name__}>"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else type(value).__name__


class DayQueue:
    def __init__(self, sqs_client: Any, queue_url: str):
        self._sqs = sqs_client
        self.url = queue_url

    def send_days(self, task_id: str, days: Iterable[date]) -> list[date]:
        """Send one message per day, ten per call; returns the days sent.

        Raises QueueError when SQS fails a call or keeps refusing entries.
        """
        days = list(days)
        sent: list[date] = []
        for offset in range(0, len(days), SQS_BATCH_LIMIT):
            chunk = days[offset:offset + SQS_BATCH_LIMIT]
            sent.extend(self._send_chunk(task_id, chunk))
        return sent

    def _send_chunk(self, task_id: str, chunk: list[date]) -> list[date]:
        pending = {str(i): day for i, day in enumerate(chunk)}
        for _ in range(3):  # entries SQS refuses are usually throttling: try them again
            entries = [{"Id": key, "MessageBody": DayMessage(task_id, day).to_body()}
                       for key, day in pending.items()]
            try:
                answer = self._sqs.send_message_batch(QueueUrl=self.url, Entries=entries)
            except (BotoCoreError, ClientError) as exc:
                raise QueueError(str(exc)) from exc
            for failed in answer.get("Failed", []):
                log.warning("SQS refused day %s: %s", pending[failed["Id"]], failed.get("Message"))
            failed_ids = {f["Id"] for f in answer.get("Failed", [])}
            pending = {key: day for key, day in pending.items() if key in failed_ids}
            if not pending:
                return chunk
        raise QueueError(f"SQS refused {len(pending)} messages three times")

    def send_later(self, message: DayMessage, delay_s: int) -> None:
        """Send one message that becomes visible after `delay_s` (a fresh copy: its receive count starts at 0)."""
        try:
            self._sqs.send_message(QueueUrl=self.url, MessageBody=message.to_body(),
                                   DelaySeconds=max(0, min(int(delay_s), SQS_MAX_DELAY_S)))
        except (BotoCoreError, ClientError) as exc:
            raise QueueError(str(exc)) from exc

    def delete(self, receipt_handle: str) -> None:
        try:
            self._sqs.delete_message(QueueUrl=self.url, ReceiptHandle=receipt_handle)
        except (BotoCoreError, ClientError) as exc:
            raise QueueError(str(exc)) from exc

    def delay_redelivery(self, receipt_handle: str, seconds: int) -> None:
        """Make a received message come back after `seconds` (the retry backoff)."""
        try:
            self._sqs.change_message_visibility(
                QueueUrl=self.url, ReceiptHandle=receipt_handle,
                VisibilityTimeout=max(0, min(int(seconds), SQS_MAX_VISIBILITY_S)))
        except (BotoCoreError, ClientError) as exc:
            # The message still returns after the queue's own visibility timeout.
            log.warning("could not set retry delay: %s", exc)

    def counts(self) -> dict[str, int]:
        """Messages visible, in flight and delayed (SQS's approximations); raises QueueError."""
        try:
            answer = self._sqs.get_queue_attributes(QueueUrl=self.url,
                                                    AttributeNames=list(QUEUE_COUNTS))
        except (BotoCoreError, ClientError) as exc:
            raise QueueError(str(exc)) from exc
        attributes = answer.get("Attributes", {})
        return {name: int(attributes.get(name, 0)) for name in QUEUE_COUNTS}
