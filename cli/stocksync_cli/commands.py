"""The subcommands. Each is one function registered with `@command(...)`; a new one (issue
12's `audit` and `fill`, say) is one more such function, here or in a module listed in
main.COMMAND_MODULES. An option of `start` that becomes a field of the start request
(`--force` today, `--datasets` later) is one `BodyOption` in START_OPTIONS.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Callable, TextIO

from stocksync_cli.client import Api, Unreachable
from stocksync_cli.render import (Words, days_table, events_lines, jobs_table, progress_line,
                                  summary_lines)

ENDED = ("completed", "cancelled")
ACTIVE = ("running", "paused")


class Exit(IntEnum):
    """What the command's exit status tells a script (README, "The stocksync command")."""
    OK = 0  # done; for a watched job: completed with no failed day
    FAILED_DAYS = 1  # the watched job completed with failed days (`stocksync retry` them)
    USAGE = 2  # the command line is wrong, or names no job to act on
    REFUSED = 3  # the API refused (4xx: sign-in, role, no such task, a conflict, a limit)
    UNREACHABLE = 4  # no answer, or a 5xx (the database or the queue is down)
    TIMEOUT = 5  # the watched job had not ended within --timeout
    CANCELLED = 6  # the watched job was cancelled


class UsageError(Exception):
    """Nothing the API was asked: the command itself cannot go on (exit 2)."""


@dataclass
class Context:
    api: Api
    words: Words
    json: bool = False
    interval_s: float = 2.0
    timeout_s: float = 1800.0
    patience_s: float = 60.0  # how long a watch rides out an unreachable API
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    sleep: Callable[[float], None] = time.sleep

    def say(self, *lines: str) -> None:
        """Text for a person (nothing in --json mode: stdout is the JSON document)."""
        if not self.json:
            for line in lines:
                self.out.write(line + "\n")
            self.out.flush()

    def emit(self, document: Any) -> None:
        if self.json:
            self.out.write(json.dumps(document, ensure_ascii=False, indent=2) + "\n")
            self.out.flush()


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[Context, argparse.Namespace], int]


COMMANDS: dict[str, Command] = {}


def command(name: str, help: str, configure: Callable[[argparse.ArgumentParser], None] = lambda p: None
            ) -> Callable[[Callable[[Context, argparse.Namespace], int]], Callable[..., int]]:
    def register(run: Callable[[Context, argparse.Namespace], int]) -> Callable[..., int]:
        COMMANDS[name] = Command(name, help, configure, run)
        return run
    return register


@dataclass(frozen=True)
class BodyOption:
    """An option of `start` that becomes a field of the start request's JSON body."""
    flags: tuple[str, ...]
    field: str
    kwargs: dict[str, Any]
    value: Callable[[Any], Any] = lambda v: v

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(*self.flags, dest=self.field, **self.kwargs)

    def contribute(self, args: argparse.Namespace, body: dict[str, Any]) -> None:
        given = getattr(args, self.field, None)
        if given not in (None, False):
            body[self.field] = self.value(given)


START_OPTIONS: list[BodyOption] = [
    BodyOption(("--force",), "force", {"action": "store_true",
                                       "help": "fetch dates already synced again (a forced re-sync)"}),
    BodyOption(("--datasets",), "datasets",
               {"metavar": "A,B", "help": "comma-separated datasets to sync: daily, adj_factor, "
                                          "daily_basic, suspend_d (default daily)"},
               lambda text: [name.strip() for name in text.split(",") if name.strip()]),
]


def outcome(progress: dict[str, Any]) -> Exit:
    if progress["status"] == "cancelled":
        return Exit.CANCELLED
    return Exit.FAILED_DAYS if progress["failed"] else Exit.OK


def watch(ctx: Context, task_id: str) -> Exit:
    """Poll until the job ends: a bar redrawn in place on a terminal, a line per change
    otherwise, the final progress as JSON with --json. A paused job is waited for."""
    return follow(ctx, task_id)[1]


def follow(ctx: Context, task_id: str) -> tuple[dict[str, Any], Exit]:
    """`watch`, returning the last progress seen with the exit status."""
    w = ctx.words
    live = not ctx.json and ctx.out.isatty()
    deadline = time.monotonic() + ctx.timeout_s
    shown: Any = None
    failing_since: float | None = None
    said_paused = False
    while True:
        try:
            progress = ctx.api.progress(task_id)
            failing_since = None
        except Unreachable as exc:
            now = time.monotonic()
            if failing_since is None:
                failing_since = now
                ctx.err.write(w("poll_error", error=exc.message) + "\n")
            if now - failing_since > ctx.patience_s or now > deadline:
                raise
            ctx.sleep(ctx.interval_s)
            continue
        if not ctx.json:
            line = progress_line(progress, w)
            if live:
                ctx.out.write("\r\033[K" + line)
                ctx.out.flush()
            else:
                key = tuple(progress[k] for k in ("status", "current", "success", "failed", "skipped"))
                if key != shown:
                    ctx.say(line)
                    shown = key
        if progress["status"] == "paused" and not said_paused and not live:
            ctx.err.write(w("waiting_paused", task=task_id) + "\n")
        said_paused = progress["status"] == "paused"
        if progress["status"] in ENDED:
            if live:
                ctx.out.write("\n")
            ctx.say(*summary_lines(progress, w))
            ctx.emit(progress)
            return progress, outcome(progress)
        if time.monotonic() > deadline:
            if live:
                ctx.out.write("\n")
            ctx.err.write(w("timeout", t=w.duration(ctx.timeout_s)) + "\n")
            ctx.emit(progress)
            return progress, Exit.TIMEOUT
        ctx.sleep(ctx.interval_s)


def pick_job(ctx: Context, given: str | None, wanted: Callable[[dict[str, Any]], bool], what: str) -> str:
    """The task id given, else the newest job `wanted` accepts (the API lists newest first)."""
    if given:
        return given
    for job in ctx.api.jobs():
        if wanted(job):
            return job["task_id"]
    raise UsageError(f"no {what}: name a task id (`stocksync jobs` lists them)")


def _task_arg(help_: str) -> Callable[[argparse.ArgumentParser], None]:
    def configure(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("task_id", nargs="?", help=help_)
    return configure


def _with_watch(configure: Callable[[argparse.ArgumentParser], None]) -> Callable[[argparse.ArgumentParser], None]:
    def both(parser: argparse.ArgumentParser) -> None:
        configure(parser)
        parser.add_argument("--watch", action="store_true",
                            help="then watch the job until it ends (exit status as `watch`)")
    return both


def _configure_start(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("start_date", help="YYYY-MM-DD")
    parser.add_argument("end_date", help="YYYY-MM-DD (at most 90 days after start_date)")
    for option in START_OPTIONS:
        option.add_to(parser)
    parser.add_argument("--watch", action="store_true",
                        help="then watch the job until it ends (exit status as `watch`)")


@command("start", "start a batch sync of a date range", _configure_start)
def start(ctx: Context, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"start_date": args.start_date, "end_date": args.end_date}
    for option in START_OPTIONS:
        option.contribute(args, body)
    started = ctx.api.start(body)
    task_id = started["task_id"]
    ctx.say(ctx.words("started", message=started.get("message", ""), task=task_id,
                      days=started.get("total_days")))
    if args.watch:
        return watch(ctx, task_id)
    ctx.emit(started)
    return Exit.OK


@command("watch", "watch a job until it ends (default: the active job, else the newest)",
         _task_arg("the job (default: the running or paused job, else the newest)"))
def watch_command(ctx: Context, args: argparse.Namespace) -> int:
    jobs = None if args.task_id else ctx.api.jobs()
    if jobs is not None:
        active = [j for j in jobs if j["status"] in ACTIVE]
        chosen = (active or jobs or [None])[0]
        if chosen is None:
            raise UsageError("no job to watch yet: start one (stocksync start START END)")
        args.task_id = chosen["task_id"]
    return watch(ctx, args.task_id)


@command("pause", "pause a running job: no new day starts, days in flight finish",
         _task_arg("the job (default: the running one)"))
def pause(ctx: Context, args: argparse.Namespace) -> int:
    task_id = pick_job(ctx, args.task_id, lambda j: j["status"] == "running", "running job")
    progress = ctx.api.control("pause", task_id)
    ctx.say(progress_line(progress, ctx.words))
    ctx.emit(progress)
    return Exit.OK


@command("resume", "resume a paused job where it stopped",
         _with_watch(_task_arg("the job (default: the paused one)")))
def resume(ctx: Context, args: argparse.Namespace) -> int:
    task_id = pick_job(ctx, args.task_id, lambda j: j["status"] == "paused", "paused job")
    progress = ctx.api.control("resume", task_id)
    if args.watch:
        return watch(ctx, task_id)
    ctx.say(progress_line(progress, ctx.words))
    ctx.emit(progress)
    return Exit.OK


@command("retry", "re-open an ended job with only its failed days, with fresh attempts",
         _with_watch(_task_arg("the job (default: the newest ended job with failed days)")))
def retry(ctx: Context, args: argparse.Namespace) -> int:
    task_id = pick_job(ctx, args.task_id, lambda j: j["status"] in ENDED and j["failed"] > 0,
                       "ended job with failed days")
    retried = ctx.api.control("retry", task_id)
    ctx.say(ctx.words("retried", message=retried.get("message", ""), task=task_id,
                      days=retried.get("retry_days"), n=retried.get("retries")))
    if args.watch:
        return watch(ctx, task_id)
    ctx.emit(retried)
    return Exit.OK


@command("cancel", "cancel a running or paused job: days not started are skipped",
         _task_arg("the job (default: the running or paused one)"))
def cancel(ctx: Context, args: argparse.Namespace) -> int:
    task_id = pick_job(ctx, args.task_id, lambda j: j["status"] in ACTIVE, "running or paused job")
    progress = ctx.api.control("cancel", task_id)
    ctx.say(*summary_lines(progress, ctx.words))
    ctx.emit(progress)
    return Exit.OK


@command("jobs", "list recent jobs, newest first")
def jobs(ctx: Context, args: argparse.Namespace) -> int:
    listed = ctx.api.jobs()
    ctx.say(jobs_table(listed, ctx.words))
    ctx.emit(listed)
    return Exit.OK


@command("days", "every day of a job, and the job's history (default: the newest job)",
         _task_arg("the job (default: the newest)"))
def days(ctx: Context, args: argparse.Namespace) -> int:
    task_id = pick_job(ctx, args.task_id, lambda j: True, "job yet")
    listed = ctx.api.days(task_id)
    events = ctx.api.events(task_id)
    ctx.say(days_table(listed, ctx.words), *events_lines(events, ctx.words))
    ctx.emit({"task_id": task_id, "days": listed, "events": events})
    return Exit.OK
