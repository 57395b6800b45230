"""Grants: privileges, owners and roles on blue against green's copy.

GRANT, REVOKE, ALTER ... OWNER and CREATE/ALTER ROLE are not replicated (Aurora
warns about them): green keeps the privileges copied when the deployment was
created. Compared as one set of items per side, each an object with one owner
or one grantee and its privileges (`app.public.orders: reporting=SELECT`), so
that a report names exactly the grant that differs:

- in every database: tables, views, materialized views, sequences, foreign
  tables, their columns' own grants, schemas, functions (not an extension's),
  the database itself, and default privileges (ALTER DEFAULT PRIVILEGES);
- once per server: roles, their attributes and memberships (never a password).

Privileges are read through `aclexplode`, effective defaults included
(`acldefault`), and only the kinds every supported version knows, so that an
explicit grant equal to the default, or a privilege a newer version adds to
owners (MAINTAIN in 17), is no difference. A difference is a warning: the
switchover goes ahead, and the fix is to repeat the grant on the new cluster.
"""

from __future__ import annotations

from aurora_bg.errors import InvalidState
from tasks.validation.model import WARNING, Check, Session, listing
from tasks.validation.scope import Scope, qualified

PRIVILEGES = (
    "'SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER', "
    "'USAGE', 'CREATE', 'CONNECT', 'TEMPORARY', 'EXECUTE'"
)


def _grantees(acl: str) -> str:
    """A subquery: one `grantee=PRIV,PRIV` item per grantee of the ACL expression `acl`."""
    return f"""
SELECT CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END
       || '=' || string_agg(a.privilege_type, ',' ORDER BY a.privilege_type)
       || CASE WHEN bool_or(a.is_grantable) THEN ' with grant option' ELSE '' END
  FROM aclexplode({acl}) a
 WHERE a.privilege_type IN ({PRIVILEGES})
 GROUP BY a.grantee"""


def _owned(owner: str, acl: str) -> str:
    """A LATERAL subquery of items: the owner, then each grantee."""
    return (
        f"LATERAL (SELECT 'owner ' || quote_ident(pg_get_userbyid({owner})) "
        f"UNION ALL {_grantees(acl)}) AS g(item)"
    )


_NOT_IN_EXTENSION = (
    " AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '{catalog}'::regclass"
    " AND d.objid = {oid} AND d.deptype = 'e')"
)

RELATIONS = (
    "SELECT format('%%I.%%I', n.nspname, c.relname), g.item"
    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, "
    + _owned(
        "c.relowner",
        "coalesce(c.relacl, acldefault("
        "CASE c.relkind WHEN 'S' THEN 's' ELSE 'r' END::\"char\", c.relowner))",
    )
    + " WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND {schemas}"
    + _NOT_IN_EXTENSION.format(catalog="pg_class", oid="c.oid")
)
COLUMNS = (
    "SELECT format('%%I.%%I.%%I', n.nspname, c.relname, a.attname), g.item"
    " FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
    " JOIN pg_namespace n ON n.oid = c.relnamespace,"
    f" LATERAL ({_grantees('a.attacl')}) AS g(item)"
    " WHERE a.attacl IS NOT NULL AND a.attnum > 0 AND NOT a.attisdropped AND {schemas}"
)
SCHEMAS = (
    "SELECT 'schema ' || format('%%I', n.nspname), g.item FROM pg_namespace n, "
    + _owned("n.nspowner", "coalesce(n.nspacl, acldefault('n', n.nspowner))")
    + " WHERE {schemas}"
    + _NOT_IN_EXTENSION.format(catalog="pg_namespace", oid="n.oid")
)
FUNCTIONS = (
    "SELECT format('%%I.%%I(%%s)', n.nspname, p.proname,"
    " pg_get_function_identity_arguments(p.oid)), g.item"
    " FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace, "
    + _owned("p.proowner", "coalesce(p.proacl, acldefault('f', p.proowner))")
    + " WHERE {schemas}"
    + _NOT_IN_EXTENSION.format(catalog="pg_proc", oid="p.oid")
)
DATABASE = (
    "SELECT 'database ' || format('%%I', d.datname), g.item FROM pg_database d, "
    + _owned("d.datdba", "coalesce(d.datacl, acldefault('d', d.datdba))")
    + " WHERE d.datname = current_database()"
)
DEFAULT_PRIVILEGES = (
    "SELECT 'default privileges of ' || quote_ident(pg_get_userbyid(p.defaclrole))"
    " || coalesce(' in schema ' || quote_ident(n.nspname), '')"
    " || ' on ' || CASE p.defaclobjtype WHEN 'r' THEN 'tables' WHEN 'S' THEN 'sequences'"
    " WHEN 'f' THEN 'functions' WHEN 'T' THEN 'types' ELSE 'schemas' END, g.item"
    " FROM pg_default_acl p LEFT JOIN pg_namespace n ON n.oid = p.defaclnamespace,"
    f" LATERAL ({_grantees('p.defaclacl')}) AS g(item)"
)
PER_DATABASE = (RELATIONS, COLUMNS, SCHEMAS, FUNCTIONS, DATABASE, DEFAULT_PRIVILEGES)
ROLES = """
SELECT 'role ' || quote_ident(r.rolname),
       concat_ws(' ', CASE WHEN r.rolcanlogin THEN 'login' ELSE 'nologin' END,
                 CASE WHEN r.rolsuper THEN 'superuser' END,
                 CASE WHEN r.rolcreaterole THEN 'createrole' END,
                 CASE WHEN r.rolcreatedb THEN 'createdb' END,
                 CASE WHEN r.rolreplication THEN 'replication' END,
                 CASE WHEN r.rolbypassrls THEN 'bypassrls' END,
                 'member of ' || (SELECT string_agg(DISTINCT quote_ident(m.rolname), ', ')
                                    FROM pg_auth_members am JOIN pg_roles m ON m.oid = am.roleid
                                   WHERE am.member = r.oid))
  FROM pg_roles r
 WHERE r.rolname !~ '^pg_'
"""


def read_grants(scope: Scope, session: Session) -> set[str]:
    """Every `object: item` of `session`'s database (objects named with the database)."""
    items = set()
    for query in PER_DATABASE:
        for name, item in scope.rows(session, query, doing="reading privileges"):
            items.add(f"{qualified(session.dbname, str(name))}: {item}")
    return items


def read_roles(session: Session) -> set[str]:
    rows = session.rows(ROLES, doing="reading roles")
    return {f"{name}: {attributes}" for name, attributes in rows}


def check_grants(scope: Scope) -> Check:
    """Blue's privileges, owners and roles now against green's copy (a warning)."""
    blue: set[str] = set()
    green: set[str] = set()
    try:
        for pair in scope.pairs:
            blue |= read_grants(scope, pair.blue)
            green |= read_grants(scope, pair.green)
        first = scope.pairs[0]
        blue |= read_roles(first.blue)
        green |= read_roles(first.green)
    except InvalidState as error:
        return _check(passed=False, observed=f"not read: {error}")
    only_blue, only_green = sorted(blue - green), sorted(green - blue)
    parts = []
    if only_blue:
        parts.append(f"only on blue: {listing(only_blue, 6)}")
    if only_green:
        parts.append(f"only on green: {listing(only_green, 6)}")
    return _check(
        passed=not parts,
        observed="; ".join(parts) or f"{len(blue)} owners, grants and roles, identical",
    )


def _check(*, passed: bool, observed: str) -> Check:
    return Check(
        name="grants",
        side="both",
        passed=passed,
        observed=observed,
        expected="the same owners, grants and roles on green as on blue",
        severity=WARNING,
        why="GRANT, REVOKE, owner and role changes are not replicated: after the switchover "
        "the new cluster has the privileges blue had when the deployment was created.",
        fix="Repeat the GRANT/REVOKE (or ALTER ... OWNER, CREATE/ALTER ROLE) on the new "
        "cluster right after the switchover: green is read-only until then. Or delete the "
        "deployment and run the upgrade again, so that green copies blue's grants as they are.",
    )
