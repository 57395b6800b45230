"""Validation: read-only checks of green against blue, and of the cluster after the switchover.

- session: PostgreSQL sessions whose errors never carry a secret;
- model: what a check is made of (verdict, report, session, table name);
- builtin: one server's version, read-only state and whether it takes writes;
- replication: whether green receives blue's changes, and its lag;
- schema: the schema's fingerprint on blue and on green, and what differs;
- rows: every table on both sides, with the same number of rows;
- sequences: sequence values compared, and advanced after the switchover;
- hazards: what logical replication will not carry, seen on blue;
- guardrails: what makes AWS refuse or stall a switchover, seen on blue;
- custom: the operator's own checks from a YAML file;
- suites: the checks run in order into one report;
- phases: the flow's validation phases (4, 6 and 9), and the sequences moved after a switchover.
"""
