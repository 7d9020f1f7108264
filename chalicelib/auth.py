"""Who may call what: bearer tokens with two roles, kept only as hashes.

`API_TOKENS` lists the accepted tokens as `name:role:sha256hex` entries separated
by commas or newlines; `python -m devstack.tokens new NAME ROLE` mints a token and
prints its entry. Only the SHA-256 of a token is configured, so neither the
configuration, a template nor a log can give a token away. A name may appear with
several hashes: the old and the new token while one is being rotated.

`operator` may do everything (start, cancel, force, every later write); `reader`
may read. `PUBLIC_READ=true` lets callers without a token read; a token that is
sent but unknown is refused all the same, so a typo never passes silently.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Iterable, Mapping

from chalicelib.errors import ConfigError, Forbidden, Unauthorized

OPERATOR = "operator"
READER = "reader"
ROLES = (OPERATOR, READER)
# What a view may declare: a role a caller needs, or `public` (the page's static files).
PUBLIC = "public"

# What each role may do; an operator may also read.
GRANTS = {OPERATOR: {OPERATOR, READER}, READER: {READER}}

TOKEN_PREFIX = "sst_"
# Longer than any token `new_token` makes: anything longer is refused before hashing.
MAX_TOKEN_CHARS = 256
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
_HASH = re.compile(r"[0-9a-f]{64}")
_ENTRY_SPLIT = re.compile(r"[,\n]")


@dataclass(frozen=True)
class TokenEntry:
    name: str
    role: str
    sha256: str

    def line(self) -> str:
        return f"{self.name}:{self.role}:{self.sha256}"


@dataclass(frozen=True)
class Principal:
    """The caller: a token's name and role, or nobody (PUBLIC_READ without a token)."""
    name: str | None
    role: str | None

    def may(self, role: str) -> bool:
        return self.role is not None and role in GRANTS[self.role]


ANONYMOUS = Principal(None, None)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    """A fresh token: 256 random bits, URL- and header-safe."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def entry_for(name: str, role: str, token: str) -> TokenEntry:
    return parse_tokens(f"{name}:{role}:{hash_token(token)}")[0]


def parse_tokens(text: str | None) -> tuple[TokenEntry, ...]:
    """Parse `API_TOKENS`; a malformed entry is a configuration error (never half-applied)."""
    entries: dict[str, TokenEntry] = {}
    for number, raw in enumerate(_ENTRY_SPLIT.split(text or ""), start=1):
        item = raw.strip()
        if not item or item.startswith("#"):
            continue
        parts = item.split(":")
        # Never echo the entry: a token pasted here by mistake must not reach a log.
        if len(parts) != 3:
            raise ConfigError(f"API_TOKENS entry {number}: expected name:role:sha256hex")
        name, role, digest = (p.strip() for p in parts)
        if not _NAME.fullmatch(name):
            raise ConfigError(f"API_TOKENS entry {number}: a name is 1-64 of A-Z a-z 0-9 _ . @ -")
        if role not in ROLES:
            raise ConfigError(f"API_TOKENS entry {number}: the role is operator or reader")
        digest = digest.lower()
        if not _HASH.fullmatch(digest):
            raise ConfigError(f"API_TOKENS entry {number}: the hash is 64 hex digits (SHA-256 "
                              "of the token), not the token itself")
        known = entries.get(digest)
        if known is not None and (known.name, known.role) != (name, role):
            raise ConfigError(f"API_TOKENS entry {number}: one token listed under two names or roles")
        entries[digest] = TokenEntry(name, role, digest)
    return tuple(entries.values())


def bearer_token(headers: Mapping[str, str] | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header; None when there is none."""
    value = (headers or {}).get("authorization")
    if value is None:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer":
        return ""  # some other scheme: a credential, but never one of ours
    return token.strip()


class Authenticator:
    def __init__(self, entries: Iterable[TokenEntry], public_read: bool = False):
        self._entries = tuple(entries)
        self.public_read = public_read

    def identify(self, headers: Mapping[str, str] | None) -> Principal | None:
        """The caller's principal; ANONYMOUS without a token; None for an unknown token."""
        token = bearer_token(headers)
        if token is None:
            return ANONYMOUS
        if not token or len(token) > MAX_TOKEN_CHARS:
            return None
        digest = hash_token(token).encode("ascii")
        found: TokenEntry | None = None
        # Every entry is compared, each in constant time: the answer's timing tells
        # nothing about which entry, or how much of a hash, matched.
        for entry in self._entries:
            if hmac.compare_digest(digest, entry.sha256.encode("ascii")):
                found = entry
        return Principal(found.name, found.role) if found else None

    def authorize(self, headers: Mapping[str, str] | None, role: str) -> Principal:
        """The caller if it may act as `role`; raises Unauthorized (401) or Forbidden (403)."""
        principal = self.identify(headers)
        if principal is None:
            raise Unauthorized.bad_token()
        if principal is ANONYMOUS and role == READER and self.public_read:
            return principal
        require(principal, role)
        return principal


def require(principal: Principal, role: str) -> None:
    """Raise unless `principal` may act as `role`: 401 for nobody, 403 for too small a role.
    Also for the part of a read that costs what a write does (an audit's re-check spends
    the tushare quota)."""
    if principal.may(role):
        return
    if principal is ANONYMOUS:
        raise Unauthorized.missing()
    raise Forbidden.role(role)
