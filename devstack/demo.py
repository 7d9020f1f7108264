"""`make demo`: the whole feature once, on a throwaway local stack.

Starts everything, syncs a sample range that spans China's National Day
holiday, shows the live progress bar, then runs the same range again to show
that every day is now skipped, and stops the stack.
"""
from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

from stocksync_cli.client import Api, ApiError
from stocksync_cli.commands import Context, follow
from stocksync_cli.render import Words

from devstack.services import free_port
from devstack.stack import LocalStack, StackOptions

DEFAULT_RANGE = ("2025-09-22", "2025-10-17")


def run_job(api: str, start: str, end: str, token: str) -> dict:
    """What `stocksync start START END --watch` does (the cli/ package), timed."""
    began = time.monotonic()
    client = Api(base_url=api, token=token)
    try:
        started = client.start({"start_date": start, "end_date": end})
    except ApiError as error:
        raise SystemExit(error.message) from None
    print(f"  {started['message']}  (task {started['task_id']})")
    # The bar on a terminal, a line per change otherwise; then why days were skipped.
    final, _ = follow(Context(api=client, words=Words("zh"), interval_s=0.25), started["task_id"])
    final["wall_s"] = time.monotonic() - began
    return final


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", default=DEFAULT_RANGE[0])
    parser.add_argument("--end", default=DEFAULT_RANGE[1])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="stocksync-demo-") as tmp:
        options = StackOptions(data_dir=Path(tmp), port=free_port(), workers=args.workers,
                               api_log=Path(tmp) / "api.log")
        print("Starting the local stack (PostgreSQL, SQS, sample tushare, API, workers)...")
        with LocalStack(options) as stack:
            print(f"  up in {time.monotonic() - began:.1f} s; API at {stack.api_url}")
            print(f"  the page, signed in while the demo runs: {stack.page_url}\n")
            print(f"1) Batch sync {args.start} .. {args.end}:")
            first = run_job(stack.api_url, args.start, args.end, stack.api_token)
            trading = first["success"] + first["failed"]
            per_day = first["wall_s"] / max(trading, 1)
            print(f"  {first['rows']:,} rows written in {first['wall_s']:.1f} s "
                  f"({per_day:.2f} s per trading day)\n")
            print("2) The same range again: every day is already synced or not a trading day:")
            second = run_job(stack.api_url, args.start, args.end, stack.api_token)
            print(f"  {second['rows']:,} rows written in {second['wall_s']:.1f} s\n")
    print(f"Demo finished in {time.monotonic() - began:.1f} s; the stack is stopped.")
    ok = first["status"] == "completed" and first["failed"] == 0 and second["success"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
