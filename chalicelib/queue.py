"""The SQS queue of day messages: one message per (task, day)."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import date
from typing import Any, Iterable

from botocore.exceptions import BotoCoreError, ClientError

log = logging.getLogger(__name__)

SQS_BATCH_LIMIT = 10  # SendMessageBatch's hard limit


class QueueError(Exception):
    """SQS refused or could not be reached."""


@dataclass(frozen=True)
class DayMessage:
    task_id: str
    day: date

    def to_body(self) -> str:
        return json.dumps({"task_id": self.task_id, "day": self.day.isoformat()})

    @classmethod
    def from_body(cls, body: str) -> "DayMessage":
        data = json.loads(body)
        return cls(task_id=str(data["task_id"]), day=date.fromisoformat(data["day"]))


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

    def delay_redelivery(self, receipt_handle: str, seconds: int) -> None:
        """Make a received message come back after `seconds` (the retry backoff)."""
        try:
            self._sqs.change_message_visibility(
                QueueUrl=self.url, ReceiptHandle=receipt_handle,
                VisibilityTimeout=max(0, min(int(seconds), 43_200)))
        except (BotoCoreError, ClientError) as exc:
            # The message still returns after the queue's own visibility timeout.
            log.warning("could not set retry delay: %s", exc)
