"""Where moto differs from AWS, the lab reproduces AWS: one module per behaviour.

Patched into moto by `install`, in the lab's AWS API process:
- `endpoints`: endpoints reach the real PostgreSQL playing each resource.
- `passwords`: the managed/self-managed master password lifecycle.
- `blue_green`: creation and provisioning (`deployments` holds their state),
  with what `creation_refusals` refuses at once and what `creation_failures` fails
  after the provisioning delay; `switchover`: switchover with renames, deletion.
- `replication_degraded`: DDL or a large-object change on blue while a deployment
  exists.
- `parameter_groups`: static parameters pending a reboot; RebootDBInstance applies them.
- `events`: the RDS events of deployments, DescribeEvents' time window.
- `engine_versions`: DescribeDBEngineVersions and valid upgrade targets.
- `integrations`: zero-ETL integrations (moto has none).

Around moto, in the same process:
- `faults` and `call_log`: fault injection and a redacted log of every call.
- `iam`: the account's root key (patched in by the server beside `install`), IAM
  enforcement on demand, and users holding the shipped policy as moto can evaluate it.

For the tests:
- `iam_scope`: the IAM evaluation moto skips (resources, request-tag conditions),
  replayed on the call log.

Shared:
- `world`: which real PostgreSQL server plays which AWS resource.
- `patching`: the one way these modules replace attributes of moto's classes.
"""

from __future__ import annotations

from lab.fidelity import (
    blue_green,
    endpoints,
    engine_versions,
    events,
    integrations,
    parameter_groups,
    passwords,
)
from lab.fidelity.world import LabWorld, set_world


def install(lab_world: LabWorld) -> None:
    """Patch moto's RDS models in this process so they behave as AWS does."""
    set_world(lab_world)
    endpoints.install()
    passwords.install()
    parameter_groups.install()  # after passwords: it wraps their ModifyDBCluster
    blue_green.install()
    engine_versions.install()
    events.install()
    integrations.install()
