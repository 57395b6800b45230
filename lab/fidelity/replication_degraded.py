"""DDL or a large-object change on blue while a deployment exists: "Replication degraded".

AWS facts reproduced here (AWS-FACTS S1, "Aurora B/G limitations and considerations",
…/AuroraUserGuide/blue-green-deployments-considerations.html; S3, "Switching a B/G
deployment", …/AuroraUserGuide/blue-green-deployments-switching.html):

- Logical replication carries no DDL. DDL on blue while the deployment exists puts it
  in the "Replication degraded" state; so does creating or changing a large object,
  which replication does not carry either. The only cure is to delete the deployment
  (and its green) and create a new one.
- The switchover guardrails refuse a deployment whose replication is degraded.
- GRANT and REVOKE are not replicated but do not degrade it (Aurora warns), nor do
  VACUUM, ANALYZE or TRUNCATE.

The API has no status value for it (S13 lists PROVISIONING … DELETING): the lab keeps
`Status` as it was and says "Replication degraded: …" in `StatusDetails`, and
SwitchoverBlueGreenDeployment answers InvalidBlueGreenDeploymentStateFault.

How the lab notices: a fingerprint of blue's catalog (per database: user relations,
columns, defaults, constraints, indexes, functions, schemas, types, triggers, view
rules, extensions) and of its large objects, taken at creation and compared whenever
the deployment is described or switched over. An event trigger would see DDL as it
happens, but it is itself an object on blue (a function and a trigger the checks of
blue would find, and that a clone of blue would carry), and large-object writes fire
no event trigger; comparing fingerprints leaves blue as the customer made it, and the
state is observed exactly when AWS's API would report it.
"""

from __future__ import annotations

from collections.abc import Iterable

from lab.postgres import PgServer, connect_admin
from lab.replication import replicated_databases

DEGRADED = "Replication degraded"
CURE = "Delete the blue/green deployment and create a new one."

# Objects with an OID from 16384 on (FirstNormalObjectId) are the user's; a session's
# temporary schemas and what lives in them are nobody's DDL.
SCHEMA_FINGERPRINT = """
WITH temp_ns AS (SELECT oid FROM pg_namespace WHERE nspname ~ '^pg_(toast_)?temp_'),
     rel AS (SELECT * FROM pg_class
              WHERE oid >= 16384 AND relnamespace NOT IN (SELECT oid FROM temp_ns))
SELECT md5(coalesce(string_agg(item, E'\\n' ORDER BY item), '')) FROM (
  SELECT format('relation %s %s %s %s %s', oid, relnamespace, relname, relkind, relreplident)
    FROM rel
  UNION ALL
  SELECT format('column %s %s %s %s %s %s', a.attrelid, a.attnum, a.attname, a.atttypid,
                a.attnotnull, a.attisdropped)
    FROM pg_attribute a JOIN rel ON rel.oid = a.attrelid WHERE a.attnum > 0
  UNION ALL
  SELECT format('default %s %s %s', d.adrelid, d.adnum, md5(d.adbin::text))
    FROM pg_attrdef d JOIN rel ON rel.oid = d.adrelid
  UNION ALL
  SELECT format('constraint %s %s %s %s', c.oid, c.conrelid, c.conname,
                md5(pg_get_constraintdef(c.oid)))
    FROM pg_constraint c
   WHERE c.oid >= 16384 AND c.connamespace NOT IN (SELECT oid FROM temp_ns)
  UNION ALL
  SELECT format('index %s %s', i.indexrelid, md5(pg_get_indexdef(i.indexrelid)))
    FROM pg_index i JOIN rel ON rel.oid = i.indexrelid
  UNION ALL
  SELECT format('function %s %s %s %s', p.oid, p.pronamespace, p.proname, md5(p.prosrc))
    FROM pg_proc p
   WHERE p.oid >= 16384 AND p.pronamespace NOT IN (SELECT oid FROM temp_ns)
  UNION ALL
  SELECT format('schema %s %s', n.oid, n.nspname) FROM pg_namespace n
   WHERE n.oid >= 16384 AND n.oid NOT IN (SELECT oid FROM temp_ns)
  UNION ALL
  SELECT format('type %s %s %s', t.oid, t.typnamespace, t.typname) FROM pg_type t
   WHERE t.oid >= 16384 AND t.typnamespace NOT IN (SELECT oid FROM temp_ns)
  UNION ALL
  SELECT format('trigger %s %s %s %s', g.oid, g.tgrelid, g.tgname, g.tgenabled)
    FROM pg_trigger g JOIN rel ON rel.oid = g.tgrelid
  UNION ALL
  SELECT format('rule %s %s %s', r.oid, r.ev_class, md5(r.ev_action::text))
    FROM pg_rewrite r JOIN rel ON rel.oid = r.ev_class
  UNION ALL
  SELECT format('extension %s %s', e.extname, e.extversion) FROM pg_extension e
) AS items(item)
"""
LARGE_OBJECT_FINGERPRINT = """
SELECT md5(coalesce((SELECT string_agg(oid::text, ',' ORDER BY oid)
                       FROM pg_largeobject_metadata), '')
           || '|' ||
           coalesce((SELECT string_agg(format('%s:%s:%s', loid, pageno, xmin), ','
                                       ORDER BY loid, pageno)
                       FROM pg_largeobject), ''))
"""

Fingerprints = dict[str, tuple[str, str]]  # database -> (schema, large objects)


def fingerprints(blue: PgServer, databases: Iterable[str]) -> Fingerprints:
    """The schema and large-object fingerprints of each of blue's `databases`."""
    found = {}
    for name in databases:
        with connect_admin(blue, name) as conn:
            schema = conn.execute(SCHEMA_FINGERPRINT).fetchone()
            objects = conn.execute(LARGE_OBJECT_FINGERPRINT).fetchone()
        found[name] = (str(schema[0] if schema else ""), str(objects[0] if objects else ""))
    return found


def changes(blue: PgServer, baseline: Fingerprints) -> list[str]:
    """What changed on blue since `baseline`, in words; empty when nothing did. A
    database created or dropped counts as DDL too."""
    current = replicated_databases(blue)
    now = fingerprints(blue, [name for name in current if name in baseline])
    found = [f"database {name} created on blue" for name in current if name not in baseline]
    for name, (schema, objects) in baseline.items():
        if name not in now:
            found.append(f"database {name} dropped on blue")
        elif now[name][0] != schema:
            found.append(f"DDL on blue in database {name}")
        elif now[name][1] != objects:
            found.append(f"a large object created or changed on blue in database {name}")
    return found


def status_details(found: list[str]) -> str:
    """The StatusDetails text of a degraded deployment."""
    return f"{DEGRADED}: {'; '.join(found)} is not replicated to green. {CURE}"
