"""Cursors for the statements every signup and every delivery runs.

Django's PostgreSQL backend binds parameters on the client, so PostgreSQL parses and plans each
statement afresh; for the repeat-signup lookup on a table with many indexes the planning cost
ten times the execution (``docs/performance.md``). On psycopg 3 the cursors here bind on the
server instead, so psycopg prepares a statement once it has run ``prepare_threshold`` times on
a connection: set the database's ``OPTIONS["prepare_threshold"]`` (Django leaves it ``None``,
which prepares nothing; keep it ``None`` behind PgBouncer's transaction pooling). Django's
own queries are unaffected: they keep their client-side cursors.

Server-side binding takes one statement per ``execute``; :func:`cursor` with ``pipeline=True``
sends several in one round trip. Elsewhere (SQLite, psycopg 2) these are Django's cursors.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from django.db import connection


def server_binding() -> bool:
    if connection.vendor != "postgresql":
        return False
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    return bool(is_psycopg3)


@contextmanager
def cursor(*, pipeline: bool = False) -> Iterator[Any]:
    """A cursor of the default connection for hot statements (see the module's docstring).

    ``pipeline``: statements are sent without waiting for each answer; a ``fetch*`` waits for
    all before it. Errors come out as Django's database exceptions either way."""
    if not server_binding():
        with connection.cursor() as django_cursor:
            yield django_cursor
        return
    import psycopg

    # What connection.cursor() does first: CONN_HEALTH_CHECKS, then (re)connect.
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    raw = connection.connection
    with ExitStack() as stack:
        stack.enter_context(connection.wrap_database_errors)
        if pipeline:
            stack.enter_context(raw.pipeline())
        server_cursor = stack.enter_context(psycopg.Cursor(raw))
        # Django's wrapper, as connection.cursor() gives: execute_wrapper() hooks, and the
        # query log when it is on (DEBUG, the debug toolbar, assertNumQueries).
        yield (connection.make_debug_cursor(server_cursor) if connection.queries_logged
               else connection.make_cursor(server_cursor))
