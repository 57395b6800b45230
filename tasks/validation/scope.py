"""What a validation looks at: each database open on blue and on green, and the schemas
of each.

A Blue/Green deployment replicates every database of the cluster, so validation
compares them all (`tasks.validation.databases` says which they are). Every
check family takes the same `Scope`: one `DatabasePair` per database (its two
sessions, opened once and reused by every check) and the schemas to look at,
by default every schema but PostgreSQL's own. Objects are named with their
database first (`app.public.orders`), so that a report over several databases
says where each one is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tasks.validation.databases import USER_SCHEMA_FILTER, list_databases
from tasks.validation.model import BLOCKER, NEW_DEPLOYMENT_FIX, Check, Session, listing

# The placeholder a catalog query writes where the schema condition goes; the
# condition reads `n.nspname` (pg_namespace aliased `n`).
SCHEMAS_PLACEHOLDER = "{schemas}"


@dataclass(frozen=True)
class DatabasePair:
    """One database of the cluster, with a session on blue and one on green."""

    name: str
    blue: Session
    green: Session


@dataclass(frozen=True)
class Scope:
    """The databases compared, in name order, and the schemas looked at in each
    (`schemas` None: every schema but PostgreSQL's system ones)."""

    pairs: tuple[DatabasePair, ...]
    schemas: tuple[str, ...] | None = None

    @property
    def databases(self) -> list[str]:
        return [pair.name for pair in self.pairs]

    def catalog_query(self, template: str) -> tuple[str, dict[str, Any]]:
        """`template` with its `{schemas}` condition filled in, and the parameters it takes.

        The parameters are always a mapping, so a query written for them escapes a
        literal percent sign as `%%` whether or not it names a schema list.
        """
        if self.schemas is None:
            return template.replace(SCHEMAS_PLACEHOLDER, f"({USER_SCHEMA_FILTER})"), {}
        condition = "n.nspname = ANY(%(schemas)s)"
        return template.replace(SCHEMAS_PLACEHOLDER, condition), {"schemas": list(self.schemas)}

    def rows(self, session: Session, template: str, *, doing: str) -> list[Any]:
        """Run a catalog query of `template` in `session`, its schemas those of this scope."""
        query, params = self.catalog_query(template)
        return session.rows(query, params, doing=doing)


@dataclass(frozen=True)
class DatabasesFound:
    """The databases asked for, those of each side, and whether every one was asked for."""

    asked: list[str]
    on_blue: list[str]
    on_green: list[str]
    every: bool  # no list given: every database of blue

    @property
    def compared(self) -> list[str]:
        """The databases validated: asked for, and on both sides."""
        return [name for name in self.asked if name in self.on_blue and name in self.on_green]


def find_databases(blue: Session, green: Session, databases: Sequence[str]) -> DatabasesFound:
    """The databases of each side (`tasks.validation.databases`), and those of `databases`
    (empty: every one of blue's) to validate."""
    on_blue, on_green = list_databases(blue), list_databases(green)
    asked = sorted(set(databases)) if databases else on_blue
    return DatabasesFound(asked, on_blue, on_green, every=not databases)


def check_databases(found: DatabasesFound) -> Check:
    """Every database asked for is on both sides; validating all, green has no other."""

    def where(name: str) -> str | None:
        on_blue, on_green = name in found.on_blue, name in found.on_green
        if on_blue and on_green:
            return None
        return "only on blue" if on_blue else "only on green" if on_green else "not on blue"

    names = found.asked + (
        [n for n in found.on_green if n not in found.on_blue] if found.every else []
    )
    problems = [f"{name} ({where(name)})" for name in names if where(name)]
    return Check(
        name="databases",
        side="both",
        passed=not problems,
        observed=listing(problems) if problems else f"{listing(found.compared)}: on both",
        expected="every database validated on blue and on green",
        severity=BLOCKER,
        why="The deployment replicates the databases blue had when it was created: one "
        "created on blue since is not on green, and its data is lost at the switchover.",
        fix="A database named by mistake: correct validation.databases. A database created or "
        "dropped on blue since the deployment: " + NEW_DEPLOYMENT_FIX,
    )


def schemas_of(schemas: Sequence[str] | None) -> tuple[str, ...] | None:
    """The schemas to look at: those named, or None (every user schema) when none are."""
    return tuple(schemas) if schemas else None


def qualified(database: str, name: str) -> str:
    """`name` (already quoted as PostgreSQL prints it) prefixed with its database."""
    return f"{database}.{name}"
