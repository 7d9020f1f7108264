"""API tokens: mint one, and the local stack's own operator token.

    python -m devstack.tokens new NAME ROLE     # ROLE: operator or reader
    python -m devstack.tokens hash              # a token from stdin -> its API_TOKENS entry

`new` prints the token (give it to its user; it is shown once, and stored nowhere)
and the `name:role:sha256` entry to add to API_TOKENS (`STOCKSYNC_API_TOKENS=...
make deploy`, or the environment of `make serve`). Revoke a token by removing its
entry; rotate one by adding the new entry under the same name, handing the new
token out, then removing the old entry.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from chalicelib.auth import ROLES, entry_for, new_token

TOKEN_FILE_NAME = "api-token"
TOKEN_ENV = "STOCKSYNC_API_TOKEN"
LOCAL_TOKEN_NAME = "local-operator"
DEFAULT_TOKEN_FILE = Path(__file__).resolve().parent.parent / ".stocksync" / TOKEN_FILE_NAME


def local_operator_token(data_dir: Path) -> str:
    """`STOCKSYNC_API_TOKEN`, else the token kept in DATA_DIR/api-token (made on first use, 0600)."""
    given = os.environ.get(TOKEN_ENV, "").strip()
    if given:
        return given
    path = Path(data_dir) / TOKEN_FILE_NAME
    if path.exists():
        token = path.read_text(encoding="utf-8").strip()
        if token:
            path.chmod(0o600)
            return token
    path.parent.mkdir(parents=True, exist_ok=True)
    token = new_token()
    # Created with its final mode: the token is never readable by others, not even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(token + "\n")
    return token


def read_token(token_file: Path | None = None) -> str | None:
    """What the CLI sends: `STOCKSYNC_API_TOKEN`, else .stocksync/api-token, else nothing."""
    given = os.environ.get(TOKEN_ENV, "").strip()
    if given:
        return given
    path = token_file or DEFAULT_TOKEN_FILE
    if path.exists():
        return path.read_text(encoding="utf-8").strip() or None
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    new = commands.add_parser("new", help="mint a token and print it with its API_TOKENS entry")
    new.add_argument("name")
    new.add_argument("role", choices=ROLES)
    hashed = commands.add_parser("hash", help="read a token on stdin, print its entry")
    hashed.add_argument("name")
    hashed.add_argument("role", choices=ROLES)
    args = parser.parse_args(argv)
    token = new_token() if args.command == "new" else sys.stdin.readline().strip()
    entry = entry_for(args.name, args.role, token)
    if args.command == "new":
        print(f"token (give it to {args.name}; it is not stored anywhere): {token}")
    print(f"API_TOKENS entry: {entry.line()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
