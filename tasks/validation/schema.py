"""The schema's fingerprint on blue and on green, in every database, and what differs.

Green's schema is a copy of blue's made when the deployment was created, and
logical replication never carries DDL afterwards. So comparing blue's
fingerprint *now* with green's shows every schema change made on blue since
the deployment was created (and anything changed on green): schemas, tables
and partitions, columns, constraints, indexes, views, materialized views,
functions, types, triggers, extensions (the queries are in `schema_catalog`).
One check per kind, across every database, each listing what differs as
`database.schema.object`.

AWS answers DDL on blue with "Replication degraded", and the only cure it
documents is to delete the deployment and create a new one: applying the same
DDL on green does not bring the deployment back. So every difference blocks,
with that fix; only an extension whose version alone differs warns (the newer
engine may ship a newer version).
"""

from __future__ import annotations

from dataclasses import dataclass

from aurora_bg.errors import InvalidState
from tasks.validation.model import (
    BLOCKER,
    NEW_DEPLOYMENT_FIX,
    WARNING,
    Check,
    Session,
    listing,
)
from tasks.validation.schema_catalog import KINDS, shown_apart
from tasks.validation.scope import Scope, qualified

EXTENSION_FIX = (
    "A version difference only: run ALTER EXTENSION ... UPDATE on the new cluster after the "
    "switchover if you want the newer version. An extension missing on either side: "
    + NEW_DEPLOYMENT_FIX
)


@dataclass(frozen=True)
class Difference:
    only_blue: list[str]
    only_green: list[str]
    changed: list[str]  # "<object>: blue <def> / green <def>"

    @property
    def empty(self) -> bool:
        return not (self.only_blue or self.only_green or self.changed)

    @property
    def count(self) -> int:
        return len(self.only_blue) + len(self.only_green) + len(self.changed)

    def describe(self) -> str:
        parts = []
        if self.only_blue:
            parts.append(f"only on blue: {listing(self.only_blue)}")
        if self.only_green:
            parts.append(f"only on green: {listing(self.only_green)}")
        if self.changed:
            parts.append(f"different: {listing(self.changed, 4)}")
        return "; ".join(parts) or "identical"


def read_kind(scope: Scope, session: Session, kind: str) -> dict[str, str]:
    """{object: comparable definition} of one kind of object in `session`'s database."""
    spec = KINDS[kind]
    rows = scope.rows(session, spec.query, doing=f"reading the schema's {kind}")
    return {qualified(session.dbname, str(key)): spec.comparable(str(value)) for key, value in rows}


def compare(blue: dict[str, str], green: dict[str, str]) -> Difference:
    return Difference(
        only_blue=sorted(set(blue) - set(green)),
        only_green=sorted(set(green) - set(blue)),
        changed=[
            "{}: blue {} / green {}".format(key, *shown_apart(blue[key], green[key]))
            for key in sorted(set(blue) & set(green))
            if blue[key] != green[key]
        ],
    )


def check_schema(scope: Scope) -> list[Check]:
    """One check per kind: blue's schema now against green's copy, every database of the
    scope. A kind that cannot be read (say, behind a lock) fails its own check and
    leaves the others standing."""
    checks = []
    for kind in KINDS:
        blue: dict[str, str] = {}
        green: dict[str, str] = {}
        try:
            for pair in scope.pairs:
                blue |= read_kind(scope, pair.blue, kind)
                green |= read_kind(scope, pair.green, kind)
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
        why=KINDS[kind].why,
        fix="Validate again once the lock or load passes.",
    )


def _check(kind: str, blue_items: dict[str, str], difference: Difference) -> Check:
    if kind == "extensions":
        missing = difference.only_blue or difference.only_green
        severity, fix = (BLOCKER if missing else WARNING), EXTENSION_FIX
    else:
        severity, fix = BLOCKER, NEW_DEPLOYMENT_FIX
    count = difference.count
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
        why=KINDS[kind].why,
        fix=fix,
    )
