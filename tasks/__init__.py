"""The steps of an upgrade, one module per concern, each usable without Prefect's flow.

- aws: AWS clients from the standard credential chain, and error classification;
- aws_budget: every AWS API attempt paced by a shared rate limit, and counted;
- rds_state: read-only views of clusters, instances and deployments;
- password: the master password out of Secrets Manager for the deployment, and back;
- preflight: phase 1, every read-only check before anything changes;
- blue_green: the Blue/Green deployment: create, wait, switch over, delete;
- way_out: back to blue exactly as it was, before a switchover;
- cleanup: phase 11, retire the old blue after a switchover;
- run_lock: one run per cluster, through a Prefect concurrency lease;
- fleet_limits: a fleet's clusters and its two limits, before its first upgrade;
- artifacts: Prefect artifacts with stable keys;
- steps: every Prefect task of the flows, its name and options, in one table;
- validation/: the read-only checks of green and of the switched cluster;
- terraform/: phase 12, Terraform back in line with the upgraded cluster.
"""
