"""`stocksync [options] COMMAND ...`: the parser, the options every command takes, and
the exit statuses (commands.Exit).

Global options may come before or after the command: `stocksync --json jobs` and
`stocksync jobs --json` are the same.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path
from typing import Sequence, TextIO

from stocksync_cli import __version__
from stocksync_cli.client import API_ENV, DEFAULT_API, Api, Refused, Unreachable, find_token
from stocksync_cli.commands import COMMANDS, Context, Exit, UsageError
from stocksync_cli.render import Words

# Modules whose @command functions join the built-in ones (issue 12: audit, fill).
COMMAND_MODULES: list[str] = ["stocksync_cli.audit"]
LANG_ENV = "STOCKSYNC_LANG"

EPILOG = """exit status: 0 done (a watched job completed with no failed day), 1 the watched job
completed with failed days (audit: gaps found), 2 usage (or no job to act on), 3 the API refused (4xx), 4 the API
is unreachable or failed (5xx), 5 the watch timed out, 6 the watched job was cancelled.

The token: STOCKSYNC_API_TOKEN, else --token-file, else $STOCKSYNC_DATA_DIR/api-token, else the
local stack's .stocksync/api-token in this directory or a parent."""


def _global_options(parser: argparse.ArgumentParser, suppress: bool) -> None:
    def default(value: object) -> object:
        # On a command's own parser an option not given must not undo the one given before it.
        return argparse.SUPPRESS if suppress else value
    parser.add_argument("--api", metavar="URL", default=default(os.environ.get(API_ENV) or DEFAULT_API),
                        help=f"the API's base URL (default ${API_ENV} or {DEFAULT_API}; deployed: "
                             "https://your-domain or https://ID.execute-api.REGION.amazonaws.com/api)")
    parser.add_argument("--token-file", type=Path, metavar="PATH", default=default(None),
                        help="a file holding the API token (STOCKSYNC_API_TOKEN wins)")
    parser.add_argument("--lang", choices=("zh", "en"), default=default(os.environ.get(LANG_ENV) or "zh"),
                        help="the language of messages (default zh, as the API; $STOCKSYNC_LANG)")
    parser.add_argument("--json", action="store_true", default=default(False),
                        help="print the API's JSON (one document) instead of text")
    parser.add_argument("--interval", type=float, metavar="S", default=default(2.0),
                        help="seconds between progress polls while watching (default 2)")
    parser.add_argument("--timeout", type=float, metavar="S", default=default(1800.0),
                        help="give up watching after this many seconds (default 1800: exit 5)")


def build_parser() -> argparse.ArgumentParser:
    for module in COMMAND_MODULES:
        importlib.import_module(module)
    parser = argparse.ArgumentParser(
        prog="stocksync", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Start, watch, pause, resume, retry and cancel stocksync batch syncs; "
                    "audit what is stored and fill the gaps.")
    parser.add_argument("--version", action="version", version=f"stocksync {__version__}")
    _global_options(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, entry in COMMANDS.items():
        sub = commands.add_parser(name, help=entry.help, description=entry.help, epilog=EPILOG,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        entry.configure(sub)
        _global_options(sub, suppress=True)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None,
         err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help, --version (0) or a usage error (2)
        return int(done.code or 0)
    api = Api(base_url=args.api, token=find_token(args.token_file), lang=args.lang)
    ctx = Context(api=api, words=Words(args.lang), json=args.json, interval_s=max(0.05, args.interval),
                  timeout_s=args.timeout, out=out, err=err)
    try:
        return int(COMMANDS[args.command].run(ctx, args))
    except UsageError as wrong:
        return _fail(ctx, Exit.USAGE, str(wrong), {"status": "error", "code": "usage", "message": str(wrong)})
    except Refused as refused:
        hint = ""
        if refused.status == 401 and not api.token:
            hint = ("\n(no API token: set STOCKSYNC_API_TOKEN, pass --token-file, or run "
                    "`make serve` once, which keeps one in .stocksync/api-token)")
        return _fail(ctx, Exit.REFUSED, refused.message + hint, refused.as_json())
    except Unreachable as down:
        return _fail(ctx, Exit.UNREACHABLE, down.message, down.as_json())
    except KeyboardInterrupt:
        err.write("\n")
        return 130


def _fail(ctx: Context, code: Exit, text: str, document: dict) -> int:
    if ctx.json:
        ctx.emit(document)
    ctx.err.write(f"stocksync: {text}\n")
    ctx.err.flush()
    return int(code)


def run() -> None:
    """The console script's entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
