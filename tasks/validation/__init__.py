"""Validation: read-only checks of green against blue, in every database of the cluster,
and of the cluster after the switchover.

- session: PostgreSQL sessions whose errors never carry a secret;
- model: what a check is made of (verdict, report, session, table name);
- databases: the databases of a cluster, and one session per database;
- scope: what a validation looks at (each database on both sides, the schemas);
- prerequisites: what preflight checks inside blue before a deployment exists;
- builtin: one server's version, read-only state and whether it takes writes;
- replication: whether green receives blue's changes, and its lag;
- schema, schema_catalog: the schema's fingerprint on blue and on green, and what differs;
- rows: every table on both sides, with the same number of rows;
- sequences: sequence values compared, and advanced after the switchover;
- hazards: what logical replication will not carry, seen on blue;
- grants: privileges, owners and roles, blue against green's copy;
- guardrails: what makes AWS refuse or stall a switchover, seen on blue;
- deployment: what the deployment itself says (available, members, replication degraded);
- custom: the operator's own checks from a YAML file;
- suites: the checks run in order into one report;
- phases: the flow's validation phases (4, 6 and 9), and the sequences moved after a switchover.
"""
