"""Secrets: where they come from in AWS, and keeping them out of logs and answers.

Deployed, a function's environment holds no secret: `SECRETS_ARN` names the Secrets
Manager secrets (comma-separated ARNs, JSON objects) it may read, and the values of
SECRET_KEYS in them are read once per container, at cold start, behind
app.get_settings. Locally the same keys come from the environment.

Whatever a secret's shape (a DSN may be malformed), the text of an error that may
carry it is sanitized where the error is made (`connection_error_text`), and the
few places that log an unexpected error pass it through `redact`.
"""
from __future__ import annotations

import json
import re
import threading
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import unquote, urlsplit

from chalicelib.errors import ConfigError

# NOTIFY_WEBHOOKS may come from a secret too: some receivers' URLs are credentials themselves.
SECRET_KEYS = ("DATABASE_URL", "TUSHARE_TOKEN", "NOTIFY_WEBHOOK_SECRET", "NOTIFY_WEBHOOKS")
MASK = "***"
# Shorter values are not masked: masking "a" everywhere would make every log unreadable,
# and a secret that short protects nothing anyway.
MIN_SECRET_CHARS = 4

_registered: set[str] = set()
_lock = threading.Lock()


def environment_with_secrets(env: Mapping[str, str],
                             make_client: Callable[[], Any]) -> dict[str, str]:
    """`env` with the SECRET_KEYS of the secrets `SECRETS_ARN` names (one call per secret)."""
    merged = dict(env)
    arns = [arn.strip() for arn in env.get("SECRETS_ARN", "").split(",") if arn.strip()]
    if not arns:
        return merged
    client = make_client()
    for arn in arns:
        text = client.get_secret_value(SecretId=arn).get("SecretString") or ""
        values = _secret_object(text, arn)
        for key in SECRET_KEYS:
            if key in values:
                merged[key] = str(values[key])
    return merged


def _secret_object(text: str, arn: str) -> dict[str, Any]:
    try:
        values = json.loads(text)
    except ValueError:
        values = None  # the decoder's error keeps the whole document: never raise it
    if not isinstance(values, dict):
        raise ConfigError(f"secret {arn} is not a JSON object with keys such as DATABASE_URL")
    return values


def dsn_secrets(dsn: str) -> list[str]:
    """What in a DSN must not be shown: the DSN itself and its password, in every spelling."""
    found = [dsn]
    # URL form, parsed by hand as well: a malformed URL may not parse. An unescaped `@`
    # in the password makes it ambiguous: the shortest, the longest and its pieces.
    for pattern in (r"//[^:/@\s]*:([^@\s]*)@", r"//[^:/@\s]*:(\S*)@"):
        for match in re.finditer(pattern, dsn):
            found.append(match.group(1))
            found += match.group(1).split("@")
    try:
        password = urlsplit(dsn).password
    except ValueError:
        password = None
    if password:
        found.append(password)
    # key=value form (also `?password=` in a URL's query).
    for match in re.finditer(r"password\s*=\s*('(?:[^'\\]|\\.)*'|[^\s&]+)", dsn, re.IGNORECASE):
        value = match.group(1)
        found.append(value)
        found.append(value.strip("'"))
    found += [unquote(value) for value in list(found)]
    found += [part for value in found[1:] for part in value.split()]
    return [value for value in dict.fromkeys(found) if len(value) >= MIN_SECRET_CHARS]


def register(*values: str) -> None:
    """Remember values that `redact` masks from now on (the settings' secrets)."""
    with _lock:
        _registered.update(v for v in values if v and len(v) >= MIN_SECRET_CHARS)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    with _lock:
        values = set(_registered)
    values.update(s for s in secrets if s and len(s) >= MIN_SECRET_CHARS)
    # Longest first: a DSN is masked whole before its password is looked for.
    for value in sorted(values, key=len, reverse=True):
        text = text.replace(value, MASK)
    return text


def connection_error_text(exc: BaseException, dsn: str) -> str:
    """psycopg2's connection error, safe to log and to keep.

    libpq quotes what it could not use: a host, a port, a token of a malformed DSN,
    and with a mistyped DSN that may be part of the password. So every quoted
    value goes, and then anything left that is a secret of the DSN.
    """
    text = " ".join(str(exc).split())
    text = re.sub(r'"[^"]*"', '"…"', text)
    return f"{exc.__class__.__name__}: {redact(text, dsn_secrets(dsn))}"
