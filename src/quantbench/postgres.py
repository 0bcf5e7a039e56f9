"""The PostgreSQL connection of a results store: psycopg 3, with a deadline on every wait.

A server that refuses, accepts and never answers, or stops answering mid-run is an
error within a bounded time, never a hang: the connection has ``connect_timeout``
(:data:`CONNECT_TIMEOUT_S`; psycopg's own default is 130 s) and every round trip after
it a client-side deadline (:data:`QUERY_TIMEOUT_S`, :func:`deadline_connection`).
``postgresql://`` URLs mean psycopg 3, the driver ``quantbench[postgres]`` installs.
psycopg is imported only when a PostgreSQL store is opened.
"""

from __future__ import annotations

from typing import Any

# libpq applies connect_timeout to each address a host name resolves to: 5 s keeps a host
# with an IPv4 and an IPv6 address under 15 s. A URL's own ?connect_timeout= wins.
CONNECT_TIMEOUT_S = 5
# Each round trip (a statement, a batch of samples, a commit) must be answered within
# this, or the connection is closed and the write fails (see deadline_connection).
QUERY_TIMEOUT_S = 30.0
_DEADLINE_CLASS: Any = None  # made on first use: psycopg is imported only then


def postgres_driver(url: str) -> str:
    """``postgresql://`` (and libpq's ``postgres://``) mean psycopg 3, the driver
    ``quantbench[postgres]`` installs: SQLAlchemy would pick psycopg2 for them."""
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme) :]
    return url


def deadline_connection() -> Any:
    """A psycopg connection whose every wait for the server has a deadline.

    Why client-side: a server can stop answering in ways that neither TCP keepalives
    (its kernel still acknowledges them when the process is stopped or a proxy in the
    way is stuck) nor a server-side ``statement_timeout`` (never reached when the
    query is not) can see; libpq has no read timeout. psycopg waits for every reply in
    ``Connection.wait``, so a deadline there bounds execute, executemany, commit and
    rollback alike. On expiry the connection is closed (its protocol state is unknown)
    and SQLAlchemy discards it."""
    global _DEADLINE_CLASS
    if _DEADLINE_CLASS is None:
        import psycopg

        wait_timeout = getattr(psycopg.errors, "_WaitTimeout", psycopg.errors.OperationalError)

        class DeadlineConnection(psycopg.Connection):  # type: ignore[misc]
            def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
                if timeout is not None:  # psycopg's own bounded waits (cancel, notifies)
                    return super().wait(gen, interval, timeout)
                try:
                    return super().wait(gen, interval, QUERY_TIMEOUT_S)
                except wait_timeout:
                    self.close()
                    raise psycopg.OperationalError(
                        f"no answer from the server in {QUERY_TIMEOUT_S:g} s (connection closed)"
                    ) from None

        _DEADLINE_CLASS = DeadlineConnection
    return _DEADLINE_CLASS


def with_deadlines(engine: Any) -> None:
    """Connect through :func:`deadline_connection` with a connect timeout (psycopg's
    default is 130 s)."""
    import sqlalchemy as sa

    if engine.dialect.name != "postgresql" or engine.dialect.driver != "psycopg":
        return

    @sa.event.listens_for(engine, "do_connect")
    def _connect(dialect: Any, rec: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        cparams.setdefault("connect_timeout", CONNECT_TIMEOUT_S)
        return deadline_connection().connect(*cargs, **cparams)


def server_refusal(why: str, url: Any) -> str:
    """What a database server's refusal means, in words that say what to do."""
    if why == "connection timeout expired":  # psycopg's words for a silent server
        return (
            f"is unreachable: no answer in {url.query.get('connect_timeout', CONNECT_TIMEOUT_S)} s"
        )
    if "no password supplied" in why:
        return "needs a password: set PGPASSWORD or put it in ~/.pgpass (mode 0600), or in the URL"
    if "authentication failed" in why:
        return f"refused the login: {why.split('failed: ')[-1].replace('FATAL:  ', '')}"
    return f"is unreachable: {why}"
