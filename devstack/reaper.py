"""The local stack's reaper: when the process that started the stack dies, however it
dies (SIGKILL included), stop what that process started.

The stack starts this as a child in a session of its own and keeps the write end of a
pipe to its stdin, telling it what to stop: `group PGID` (the `chalice local`
process group), `postgres PGDATA` (the embedded PostgreSQL). The kernel closes that
pipe when the stack's process ends, so end-of-file here means "it is gone": the reaper
then stops the API's process group and, unless another process still uses it, the
database, and exits. A clean stop writes `exit` first, and the reaper leaves quietly.

Usage (by devstack.stack only): python -m devstack.reaper
"""
from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path


def stop_group(pgid: int, grace_s: float = 5.0) -> bool:
    """SIGTERM a process group, then SIGKILL what is left; False if it was already gone."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return True


def main() -> int:
    # Ctrl-C and a closed terminal belong to the stack, which stops itself; the reaper
    # is for when it cannot.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    owner = os.getppid()
    groups: list[int] = []
    databases: list[Path] = []
    for line in sys.stdin:
        verb, _, argument = line.strip().partition(" ")
        if verb == "exit":
            return 0
        if verb == "group":
            groups.append(int(argument))
        elif verb == "postgres":
            databases.append(Path(argument))
    stopped = [f"API process group {pgid}" for pgid in groups if stop_group(pgid)]
    from devstack.services import EmbeddedPostgres  # only now: most runs never need it
    stopped += [f"PostgreSQL in {pgdata}" for pgdata in databases
                if EmbeddedPostgres.stop_abandoned(pgdata, owner)]
    if stopped:
        print(f"stocksync reaper: process {owner} died without stopping the local stack; "
              f"stopped {', '.join(stopped)}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
