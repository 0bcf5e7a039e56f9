"""Credentials are used, never written down.

A store URL (``postgresql+psycopg://user:PASSWORD@host/db``) or any other address given
to quantbench may hold a password, in its user part or in its query string
(``?password=...``). What quantbench records or prints (results.json, the store's run
rows, exports, reports, logs, error messages, Ray's job metadata) holds the address with
those removed, not masked: :func:`strip_url`. Every password seen is also remembered in
this process, so that a third party's message that echoes it is cleaned before it is
printed or stored (:func:`scrub`).

The usual ways to give a password without a URL work and leave nothing to remove:
``PGPASSWORD`` or ``~/.pgpass`` (read by libpq when the URL has no password), or the
whole URL in ``$QUANTBENCH_STORE``.

Example::

    >>> strip_url("postgresql+psycopg://qb:s3cret@db:5432/bench?password=x&sslmode=require")
    'postgresql+psycopg://qb@db:5432/bench?sslmode=require'
    >>> strip_url("quantbench.db")
    'quantbench.db'
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, unquote, urlencode

# Query parameters that carry a credential (libpq's password / sslpassword, tokens, keys).
SECRET_PARAM = re.compile(r"pass|pwd|secret|token|auth|credential|api[_-]?key|access[_-]?key",
                          re.IGNORECASE)  # fmt: skip
# scheme://user:password@ -- as SQLAlchemy reads it: the password runs to the first '@'.
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][\w+.\-]*://)(?P<user>[^:/\s]*):(?P<pw>[^@\s]*)@")
_URL_IN_TEXT = re.compile(r"[A-Za-z][\w+.\-]*://[^\s'\"`]+")
_MASK = "***"
_seen: set[str] = set()


def strip_url(text: str | None) -> str | None:
    """``text`` with the password and the secret query parameters of the URL it is
    removed (a path or a ``HOST:PORT`` comes back as it is). The secrets are remembered
    for :func:`scrub`."""
    if not text or "://" not in text:
        return text
    m = _USERINFO.match(text)
    if m:
        _remember(m["pw"])
        text = text[: m.start("user") + len(m["user"])] + text[m.end("pw") :]
    head, sep, query = text.partition("?")
    if not sep:
        return head
    kept = []
    for key, value in parse_qsl(query, keep_blank_values=True):
        if SECRET_PARAM.search(key):
            _remember(value)
        else:
            kept.append((key, value))
    return f"{head}?{urlencode(kept, safe='/:')}" if kept else head


def remember_url(url: str | None) -> None:
    """Remember the credentials in ``url`` for :func:`scrub`, before it is used (a
    command line that holds it may be recorded by another program)."""
    strip_url(url)


def _remember(secret: str | None) -> None:
    if secret and len(secret) >= 3:  # shorter ones would erase ordinary text
        _seen.update({secret, unquote(secret), quote(unquote(secret), safe="")})


def scrub(text: str) -> str:
    """``text`` (an error message, a traceback, a command line) with every URL in it
    stripped (:func:`strip_url`) and any credential seen in this process replaced by
    ``***``."""
    text = _URL_IN_TEXT.sub(lambda m: strip_url(m[0]) or "", text)
    for secret in sorted(_seen, key=len, reverse=True):
        text = text.replace(secret, _MASK)
    return text
