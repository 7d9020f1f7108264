"""Start a batch sync over HTTP and draw its progress in the terminal.

`python -m devstack.progress_cli --api http://127.0.0.1:8000 2025-10-01 2025-10-09`
works against any stocksync API, local or deployed. It sends an operator token: the
environment's STOCKSYNC_API_TOKEN, else the one `make serve` keeps in .stocksync/api-token.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import requests

from devstack.tokens import read_token

BATCH = "/api/v1/sync-status/sync/batch"
BAR_WIDTH = 30


def auth_headers(token: str | None) -> dict[str, str]:
    token = token if token is not None else read_token()
    return {"Authorization": f"Bearer {token}"} if token else {}


def start_job(api: str, start: str, end: str, force: bool = False, lang: str = "zh",
              token: str | None = None) -> dict[str, Any]:
    """POST the seed's request; returns the answer's JSON whatever the status code."""
    body: dict[str, Any] = {"start_date": start, "end_date": end}
    if force:
        body["force"] = True
    answer = requests.post(api + BATCH, json=body, timeout=30, params={"lang": lang},
                           headers=auth_headers(token))
    payload = answer.json()
    payload["http_status"] = answer.status_code
    return payload


def fetch_progress(api: str, task_id: str, token: str | None = None) -> dict[str, Any]:
    answer = requests.get(f"{api}{BATCH}/progress/{task_id}", timeout=10,
                          headers=auth_headers(token))
    answer.raise_for_status()
    return answer.json()["data"]


def render(progress: dict[str, Any]) -> str:
    filled = int(BAR_WIDTH * progress["percent"] / 100)
    bar = "#" * filled + "." * (BAR_WIDTH - filled)
    return (f"[{bar}] {progress['percent']:5.1f}% {progress['current']}/{progress['total']}  "
            f"成功 {progress['success']} 失败 {progress['failed']} 跳过 {progress['skipped']}  "
            f"行 {progress['rows']:,}  {progress['message']}")


def watch(api: str, task_id: str, interval_s: float = 0.5, timeout_s: float = 1800,
          out: TextIO = sys.stdout, token: str | None = None) -> dict[str, Any]:
    """Poll until the job ends (or `timeout_s`, the seed's 30 minutes); returns the last progress."""
    live = out.isatty()
    deadline = time.monotonic() + timeout_s
    last_line = ""
    while True:
        progress = fetch_progress(api, task_id, token)
        line = render(progress)
        if live:
            out.write("\r\033[K" + line)
        elif line != last_line:
            out.write(line + "\n")
        out.flush()
        last_line = line
        if progress["status"] != "running" or time.monotonic() > deadline:
            if live:
                out.write("\n")
            return progress
        time.sleep(interval_s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("start_date")
    parser.add_argument("end_date")
    parser.add_argument("--api", default="http://127.0.0.1:8000")
    parser.add_argument("--force", action="store_true", help="sync dates already synced again")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between polls")
    parser.add_argument("--token-file", type=Path,
                        help="where the token is (default .stocksync/api-token; "
                             "STOCKSYNC_API_TOKEN wins)")
    args = parser.parse_args(argv)
    token = read_token(args.token_file)
    if not token:
        print("no API token: set STOCKSYNC_API_TOKEN, or start `make serve` once "
              "(it keeps one in .stocksync/api-token)", file=sys.stderr)
        return 1
    answer = start_job(args.api, args.start_date, args.end_date, args.force, token=token)
    if answer["status"] != "success":
        print(f"HTTP {answer['http_status']}: {answer['message']}", file=sys.stderr)
        return 1
    print(answer["data"]["message"], f"(task {answer['data']['task_id']})")
    final = watch(args.api, answer["data"]["task_id"], args.interval, token=token)
    return 0 if final["status"] == "completed" and final["failed"] == 0 else 2


if __name__ == "__main__":
    sys.exit(main())
