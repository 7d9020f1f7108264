"""`make serve`: the local stack until Ctrl-C.

PORT (default 8000) sets the API's port, STOCKSYNC_DATA_DIR (default .stocksync) where data is kept; DATABASE_URL, SQS_QUEUE_URL (with
SQS_ENDPOINT_URL) and TUSHARE_TOKEN replace the embedded parts with real ones.
Data persists in .stocksync/ between runs, and so does the operator token made on
the first start (.stocksync/api-token, mode 0600; STOCKSYNC_API_TOKEN overrides it).
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from pathlib import Path

from devstack.stack import LocalStack, StackError, StackOptions


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(threadName)s %(message)s")
    for noisy in ("botocore", "pgserver", "werkzeug"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    options = StackOptions(port=int(os.environ.get("PORT", "8000")),
                           workers=int(os.environ.get("WORKERS", "2")))
    if os.environ.get("STOCKSYNC_DATA_DIR"):
        options.data_dir = Path(os.environ["STOCKSYNC_DATA_DIR"])
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        stack = LocalStack(options).start()
    except StackError as exc:
        print(f"stocksync did not start: {exc}", file=sys.stderr, flush=True)
        return 1
    try:
        print(f"stocksync is up: API {stack.api_url}  (Ctrl-C stops everything)", flush=True)
        print(f"  open the page (it signs in with the token once): {stack.page_url}", flush=True)
        print(f"  try: curl -X POST {stack.api_url}/api/v1/sync-status/sync/batch "
              "-H \"Authorization: Bearer $(cat .stocksync/api-token)\" "
              "-d '{\"start_date\": \"2025-10-01\", \"end_date\": \"2025-10-09\"}'", flush=True)
        if stack.live is not None:
            print(f"  live progress: {stack.live.websocket_url} (the page subscribes there)", flush=True)
        if stack.webhooks is not None or stack.notice_topic_arn:
            print(f"  completion notices: SNS topic {stack.notice_topic_arn or '-'}, webhook "
                  f"{stack.webhooks.url if stack.webhooks else '-'} (verifies signatures)", flush=True)
        stop.wait()
        print("stopping...", flush=True)
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
