"""The databases of a cluster, and one session per database for the checks.

A Blue/Green deployment replicates every database of the cluster (one
subscription per database), so every check that looks for what replication
will not carry looks in each of them: every database that accepts connections
and is not a template, except AWS's own (`rdsadmin`), and in each database
every schema except PostgreSQL's system ones.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Final

from tasks.validation.model import Session, open_session
from tasks.validation.session import Endpoint

# Databases AWS creates and manages on an Aurora cluster: never the customer's.
AWS_DATABASES: Final = ("rdsadmin",)

# An SQL condition on `n.nspname` (alias `n` for pg_namespace) that keeps the
# customer's schemas: not the catalog, not the information schema, not TOAST,
# not a session's temporary schema (pg_temp_N, pg_toast_temp_N). Written without
# a percent sign so that it can go into a query that also takes parameters.
USER_SCHEMA_FILTER: Final = (
    "n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')"
    " AND n.nspname !~ '^pg_(toast_)?temp_'"
)

LIST_DATABASES: Final = """
SELECT datname
  FROM pg_database
 WHERE datallowconn AND NOT datistemplate AND NOT (datname = ANY(%s))
"""


def list_databases(session: Session) -> list[str]:
    """The cluster's databases (sorted by name) as the deployment replicates them:
    every one that accepts connections and is not a template, AWS's own left out."""
    rows = session.rows(LIST_DATABASES, [list(AWS_DATABASES)], doing="listing the databases")
    return sorted(str(name) for (name,) in rows)


@contextlib.contextmanager
def database_sessions(
    side: str,
    endpoint: Endpoint,
    user: str,
    password: str,
    databases: Iterable[str],
    *,
    read_only: bool = True,
    statement_timeout_ms: int = 15000,
    lock_timeout_ms: int = 2000,
) -> Iterator[dict[str, Session]]:
    """One open session per database, keyed by database name, reused for every check.

    Every session has the same settings (read-only from its first statement by
    default, every statement bounded by the two timeouts), and all of them are
    closed when the block ends, whatever happens inside; a database that cannot
    be reached raises the connect error of `tasks.validation.session.connect`
    after the sessions already open are closed.
    """
    with contextlib.ExitStack() as stack:
        sessions: dict[str, Session] = {}
        for dbname in databases:
            if dbname in sessions:
                continue
            sessions[dbname] = stack.enter_context(
                open_session(
                    side,
                    endpoint,
                    user,
                    password,
                    dbname,
                    read_only=read_only,
                    statement_timeout_ms=statement_timeout_ms,
                    lock_timeout_ms=lock_timeout_ms,
                )
            )
        yield sessions
