"""Phase 12: Terraform back in line with the upgraded cluster.

- cli: running the team's `terraform` and reading its diagnostics;
- state: the cluster's addresses in the state, its backup, `state rm`;
- version: the CLI's version against the version that wrote the state;
- hcl: where each block and attribute sits in the `*.tf` files;
- rewrite: the configuration pointed at the new cluster, and import.tf;
- plan: a saved plan reduced to imports, destroys, updates and blockers;
- report: the one status enum and the report of what was done and what is left;
- phase: `reconcile`, the steps in the runbook's order, and its Prefect task.
"""
