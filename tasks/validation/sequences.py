"""Sequences: logical replication does not carry their values.

Before the switchover, `check_sequences` compares each sequence's last value
on blue and on green, in every database: green's lag behind blue is expected
(a warning that says the flow will advance it); a sequence missing on green
blocks.

After the switchover, `advance_sequences` moves every sequence of one database
of the new cluster to at least the old blue's last value (the flow calls it
for each database; blue is read-only by then, so
its values are final): without it the first inserts on the new cluster hand
out ids blue already used, and collide. It only ever moves a sequence
forward (in its own direction), in one statement per sequence, so that values
the applications drew on the new cluster meanwhile are never handed out again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aurora_bg.results import StepResult
from tasks.validation.model import BLOCKER, NEW_DEPLOYMENT_FIX, WARNING, Check, Session, listing
from tasks.validation.scope import Scope, qualified

SEQUENCES = """
SELECT format('%I.%I', schemaname, sequencename), last_value, increment_by
  FROM pg_sequences
 WHERE schemaname NOT IN ('pg_catalog', 'information_schema')
 ORDER BY 1
"""
# greatest/least in the server, in one statement: a value drawn meanwhile is never reused
ADVANCE = """
SELECT setval(s.seq, CASE WHEN %(up)s THEN greatest(%(blue)s, coalesce(s.now, %(blue)s))
                          ELSE least(%(blue)s, coalesce(s.now, %(blue)s)) END, true)
  FROM (SELECT %(seq)s::regclass AS seq, pg_sequence_last_value(%(seq)s::regclass) AS now) s
"""


@dataclass(frozen=True)
class SequenceValue:
    name: str
    last_value: int | None  # None: never used (or not readable by this user)
    increment: int

    def is_behind(self, reference: SequenceValue) -> bool:
        """True when `self` would hand out a value `reference` already handed out."""
        if reference.last_value is None:
            return False
        if self.last_value is None:
            return True
        if self.increment > 0:
            return self.last_value < reference.last_value
        return self.last_value > reference.last_value


def read_sequences(session: Session) -> dict[str, SequenceValue]:
    rows = session.rows(SEQUENCES, doing="reading sequences")
    return {name: SequenceValue(name, last, int(step)) for name, last, step in rows}


def check_sequences(scope: Scope) -> Check:
    blue: dict[str, SequenceValue] = {}
    green: dict[str, SequenceValue] = {}
    for pair in scope.pairs:
        blue |= _named_in_database(read_sequences(pair.blue), pair.name)
        green |= _named_in_database(read_sequences(pair.green), pair.name)
    missing = sorted(set(blue) - set(green))
    behind = [
        f"{name} (green {_value(green[name])}, blue {_value(seq)})"
        for name, seq in blue.items()
        if name in green and green[name].is_behind(seq)
    ]
    parts = []
    if missing:
        parts.append(f"missing on green: {listing(missing)}")
    if behind:
        parts.append(f"behind blue: {listing(behind)}")
    return Check(
        name="sequences",
        side="both",
        passed=not parts,
        observed="; ".join(parts) or f"{len(blue)} sequences, green at or past blue",
        expected="every sequence of blue on green, at or past blue's last value",
        severity=BLOCKER if missing else WARNING,
        why="Logical replication does not carry sequence values: behind blue, the new "
        "cluster hands out ids blue already used. The flow advances them right after the "
        "switchover.",
        fix="Nothing for sequences behind (the flow advances them after the switchover). A "
        "sequence missing on green was created on blue since the deployment: " + NEW_DEPLOYMENT_FIX,
    )


def _named_in_database(
    sequences: dict[str, SequenceValue], database: str
) -> dict[str, SequenceValue]:
    return {qualified(database, name): seq for name, seq in sequences.items()}


def advance_sequences(old_blue: Session, new: Session) -> StepResult:
    """Move every sequence of `new` to at least `old_blue`'s last value; never backwards.

    Both sessions are on the same database; `new` must be writable, `old_blue` is
    only read. Returns what was done per sequence in `facts["rows"]`. Sequences
    that exist only on the old blue are reported, not created.
    """
    blue, before = read_sequences(old_blue), read_sequences(new)
    rows, advanced, missing = [], [], []
    for name, seq in blue.items():
        current = before.get(name)
        if current is None:
            missing.append(name)
            rows.append(_row(new.dbname, name, seq, None, None, "missing on the new cluster"))
            continue
        if not current.is_behind(seq):
            rows.append(
                _row(new.dbname, name, seq, current, current.last_value, "already at or past blue")
            )
            continue
        after = new.value(
            ADVANCE,
            {"seq": name, "up": seq.increment > 0, "blue": seq.last_value},
            doing=f"advancing {name}",
        )
        advanced.append(name)
        rows.append(_row(new.dbname, name, seq, current, after, "advanced"))
    new.conn.commit()
    return _outcome(len(blue), advanced, missing, rows)


def advance_every_database(pairs: Sequence[tuple[Session, Session]]) -> StepResult:
    """`advance_sequences` for each (old blue, new cluster) pair of sessions, one pair per
    database, as one result whose sequences are named with their database."""
    rows: list[dict[str, str]] = []
    advanced: list[str] = []
    missing: list[str] = []
    total = 0
    for old_blue, new in pairs:
        done = advance_sequences(old_blue, new)
        rows += done.facts["rows"]
        advanced += [qualified(new.dbname, name) for name in done.facts["advanced"]]
        missing += [qualified(new.dbname, name) for name in done.facts["missing"]]
        total += done.facts["total"]
    return _outcome(total, advanced, missing, rows)


def _outcome(
    total: int, advanced: list[str], missing: list[str], rows: list[dict[str, str]]
) -> StepResult:
    if missing:
        action = "incomplete"
        reason = (
            f"Advanced {len(advanced)} of {total} sequences to blue's last values; "
            f"missing on the new cluster: {listing(missing)}."
        )
    elif advanced:
        action = "advanced"
        reason = (
            f"Advanced {len(advanced)} of {total} sequences to at least blue's last "
            f"values: {listing(advanced)}."
        )
    else:
        action = "already-done"
        reason = f"All {total} sequences of the new cluster are at or past blue's last values."
    facts = {"rows": rows, "advanced": advanced, "missing": missing, "total": total}
    return StepResult(action, reason, facts)


def _row(
    database: str,
    name: str,
    blue: SequenceValue,
    before: SequenceValue | None,
    after: int | None,
    action: str,
) -> dict[str, str]:
    return {
        "database": database,
        "sequence": name,
        "old blue": _value(blue),
        "new cluster before": _value(before) if before else "missing",
        "new cluster after": "unset" if after is None else str(after),
        "action": action,
    }


def _value(seq: SequenceValue) -> str:
    return "unset" if seq.last_value is None else str(seq.last_value)
