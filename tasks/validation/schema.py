"""The schema's fingerprint on blue and on green, and what differs between them.

Green's schema is a copy of blue's made when the deployment was created, and
logical replication never carries DDL afterwards. So comparing blue's
fingerprint *now* with green's shows every schema change made on blue since
the deployment was created (and anything changed on green): tables and
partitions, columns with their types, indexes, constraints, extensions and
their versions. One check per kind, each listing what differs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aurora_bg.errors import InvalidState
from tasks.validation.model import BLOCKER, WARNING, Check, Session, listing

# kind -> query returning (key, value) rows; values are compared as text
QUERIES: dict[str, str] = {
    "tables": """
SELECT format('%%I.%%I', n.nspname, c.relname),
       CASE c.relkind WHEN 'p' THEN 'partitioned table' ELSE 'table' END
       || CASE WHEN c.relispartition THEN ', partition' ELSE '' END
       || CASE c.relpersistence WHEN 'u' THEN ', unlogged' ELSE '' END
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY(%(schemas)s)
""",
    "columns": """
SELECT format('%%I.%%I.%%I', n.nspname, c.relname, a.attname),
       format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END
  FROM pg_attribute a
  JOIN pg_class c ON c.oid = a.attrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
   AND n.nspname = ANY(%(schemas)s)
""",
    "indexes": """
SELECT format('%%I.%%I', schemaname, indexname), indexdef
  FROM pg_indexes WHERE schemaname = ANY(%(schemas)s)
""",
    "constraints": """
SELECT format('%%I.%%I.%%I', n.nspname, c.relname, con.conname),
       pg_get_constraintdef(con.oid)
  FROM pg_constraint con
  JOIN pg_class c ON c.oid = con.conrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = ANY(%(schemas)s)
""",
    "extensions": "SELECT extname, extversion FROM pg_extension",
}

# why each kind matters, and how bad a difference is
WHY = {
    "tables": "DDL is not replicated: a table or partition created on blue after the deployment "
    "was created is missing on green, and its rows are lost at the switchover.",
    "columns": "DDL is not replicated: a column added or changed on blue after the deployment "
    "was created breaks replication of that table, or is missing after the switchover.",
    "indexes": "Indexes are not replicated: one created on blue after the deployment was "
    "created is missing after the switchover, and queries that need it slow down.",
    "constraints": "Constraints are not replicated: green enforces the copy made at creation, "
    "so a changed constraint rejects replicated rows or lets bad ones in after the switchover.",
    "extensions": "An extension missing on green breaks what uses it after the switchover; "
    "a different version behaves differently.",
}
SEVERITY = {"tables": BLOCKER, "columns": BLOCKER, "indexes": WARNING, "constraints": BLOCKER}
FIX = (
    "Apply the same DDL on green (in a session with default_transaction_read_only off), "
    "or delete the deployment and create it again after the schema change."
)
EXTENSION_FIX = (
    "Install the missing extension on green, or ALTER EXTENSION ... UPDATE on the side "
    "that lags once the switchover is done."
)


@dataclass(frozen=True)
class Difference:
    only_blue: list[str]
    only_green: list[str]
    changed: list[str]  # "<object>: blue <def> / green <def>"

    @property
    def empty(self) -> bool:
        return not (self.only_blue or self.only_green or self.changed)

    def describe(self) -> str:
        parts = []
        if self.only_blue:
            parts.append(f"only on blue: {listing(self.only_blue)}")
        if self.only_green:
            parts.append(f"only on green: {listing(self.only_green)}")
        if self.changed:
            parts.append(f"different: {listing(self.changed, 4)}")
        return "; ".join(parts) or "identical"


def read_kind(session: Session, kind: str, schemas: Sequence[str]) -> dict[str, str]:
    """{object: definition} of one kind of object of `schemas` (extensions: the database's)."""
    query = QUERIES[kind]
    params = {"schemas": list(schemas)} if "%(schemas)s" in query else None
    rows = session.rows(query, params, doing=f"reading the schema's {kind}")
    return {str(key): str(value) for key, value in rows}


def compare(blue: dict[str, str], green: dict[str, str]) -> Difference:
    return Difference(
        only_blue=sorted(set(blue) - set(green)),
        only_green=sorted(set(green) - set(blue)),
        changed=[
            f"{key}: blue {blue[key]} / green {green[key]}"
            for key in sorted(set(blue) & set(green))
            if blue[key] != green[key]
        ],
    )


def check_schema(on_blue: Session, on_green: Session, schemas: Sequence[str]) -> list[Check]:
    """One check per kind: blue's schema now against green's copy. A kind that cannot be
    read (say, behind a lock) fails its own check and leaves the others standing."""
    checks = []
    for kind in QUERIES:
        try:
            blue = read_kind(on_blue, kind, schemas)
            green = read_kind(on_green, kind, schemas)
        except InvalidState as error:
            checks.append(_unread(kind, str(error)))
            continue
        checks.append(_check(kind, blue, compare(blue, green)))
    return checks


def _unread(kind: str, reason: str) -> Check:
    return Check(
        name=f"schema-fingerprint {kind}",
        side="both",
        passed=False,
        observed=f"not read: {reason}",
        expected=f"the same {kind} on green as on blue",
        severity=BLOCKER,
        why=WHY[kind],
        fix="Validate again once the lock or load passes.",
    )


def _check(kind: str, blue_items: dict[str, str], difference: Difference) -> Check:
    if kind == "extensions":
        # a newer engine may ship newer versions: only a missing extension blocks
        severity = BLOCKER if difference.only_blue else WARNING
        fix = EXTENSION_FIX
    else:
        severity, fix = SEVERITY[kind], FIX
    count = len(difference.only_blue) + len(difference.only_green) + len(difference.changed)
    return Check(
        name=f"schema-fingerprint {kind}",
        side="both",
        passed=difference.empty,
        observed=(
            f"{len(blue_items)} {kind}, identical"
            if difference.empty
            else f"{count} difference{'s' if count != 1 else ''}: {difference.describe()}"
        ),
        expected=f"the same {kind} on green as on blue",
        severity=severity,
        why=WHY[kind],
        fix=fix,
    )
