"""Locally, what Lambda's SQS event source mapping does: poll, invoke, delete.

The handler is the very function the Lambda runs (`app.sync_day`), called with
an event shaped like Lambda's. As in Lambda, a message is deleted only when
the handler returns; when it raises, SQS delivers the message again later.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], Any], Any]


def lambda_sqs_event(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    return {"Records": [{
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": message.get("MessageAttributes", {}),
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }]}


class WorkerLoop:
    def __init__(self, sqs: Any, queue_url: str, handler: Handler, workers: int = 2,
                 wait_s: int = 1):
        self._sqs = sqs
        self._queue_url = queue_url
        self._handler = handler
        self._workers = workers
        self._wait_s = wait_s
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._region = sqs.meta.region_name
        self._queue_arn = sqs.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.handled = 0
        self.failed = 0
        self._count_lock = threading.Lock()

    def start(self) -> None:
        self._stop.clear()
        for index in range(self._workers):
            thread = threading.Thread(target=self._run, name=f"worker-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self._wait_s + 30)
        self._threads.clear()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:  # keep polling: a Lambda poller survives its failures too
                log.exception("worker poll failed")
                self._stop.wait(1)

    def poll_once(self, wait_s: int | None = None) -> int:
        """Receive up to one message and handle it; returns how many were received."""
        answer = self._sqs.receive_message(
            QueueUrl=self._queue_url, MaxNumberOfMessages=1,
            WaitTimeSeconds=self._wait_s if wait_s is None else wait_s,
            AttributeNames=["All"], MessageAttributeNames=["All"])
        messages = answer.get("Messages", [])
        for message in messages:
            self.invoke(message)
        return len(messages)

    def invoke(self, message: dict[str, Any]) -> bool:
        """Run the handler on one received message; delete it if the handler returned."""
        event = lambda_sqs_event(message, self._queue_arn, self._region)
        try:
            self._handler(event, None)
        except Exception as exc:
            with self._count_lock:
                self.failed += 1
            log.info("handler raised (%s); SQS will redeliver", exc)
            return False
        self._sqs.delete_message(QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"])
        with self._count_lock:
            self.handled += 1
        return True


def main(argv: list[str] | None = None) -> int:
    """`python -m devstack.worker_loop`: workers in a process of their own, configured by
    the environment the stack exports (a process a test can kill mid-write)."""
    import argparse
    import os
    import signal

    from devstack.services import sqs_client

    parser = argparse.ArgumentParser(description="Poll the day queue and run the Lambda handler.")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(message)s")
    import app  # reads its settings from the environment on first use

    loop = WorkerLoop(sqs_client(os.environ.get("SQS_ENDPOINT_URL") or None),
                      os.environ["SQS_QUEUE_URL"], app.sync_day, workers=args.workers)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    loop.start()
    print("worker ready", flush=True)
    stop.wait()
    loop.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
