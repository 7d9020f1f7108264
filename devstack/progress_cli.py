"""The old `python -m devstack.progress_cli START END`: now `stocksync start START END --watch`.

The `stocksync` command's package (cli/stocksync_cli, installed into .venv by `make venv`)
does the work: its client starts the job, its watch draws the bar. This module keeps the
old entry point and helpers (`start_job`, `watch`, `auth_headers`) for the demo, the
benchmarks and scripts written against them, with the old exit status: 0 completed with
no failure, 1 refused (or no token), 2 the job ended otherwise.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TextIO

from stocksync_cli.client import Api, ApiError
from stocksync_cli.commands import Context, follow
from stocksync_cli.render import Words

from devstack.tokens import read_token


def auth_headers(token: str | None) -> dict[str, str]:
    token = token if token is not None else read_token()
    return {"Authorization": f"Bearer {token}"} if token else {}


def start_job(api: str, start: str, end: str, force: bool = False, lang: str = "zh",
              token: str | None = None) -> dict[str, Any]:
    """POST the seed's request; the answer's envelope whatever its status, plus `http_status`."""
    client = Api(base_url=api, token=token if token is not None else read_token(), lang=lang)
    body: dict[str, Any] = {"start_date": start, "end_date": end}
    if force:
        body["force"] = True
    try:
        return {"status": "success", "data": client.start(body), "http_status": 200}
    except ApiError as error:
        envelope = error.as_json()
        envelope["message"] = error.message.split(": ", 1)[-1]  # the API's own words
        return envelope


def watch(api: str, task_id: str, interval_s: float = 0.5, timeout_s: float = 1800,
          out: TextIO = sys.stdout, token: str | None = None, lang: str = "zh") -> dict[str, Any]:
    """Draw the job's progress until it ends (or `timeout_s`); returns the last progress."""
    client = Api(base_url=api, token=token if token is not None else read_token(), lang=lang)
    ctx = Context(api=client, words=Words(lang), interval_s=interval_s, timeout_s=timeout_s, out=out)
    return follow(ctx, task_id)[0]


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
