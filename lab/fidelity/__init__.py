"""Where moto differs from AWS, the lab reproduces AWS: one module per behaviour.

Patched into moto by `install`, in the lab's AWS API process:
- `endpoints`: endpoints reach the real PostgreSQL playing each resource.
- `passwords`: the managed/self-managed master password lifecycle.
- `blue_green`: provisioning, switchover with renames, deletion.
- `engine_versions`: DescribeDBEngineVersions and valid upgrade targets.

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

from lab.fidelity import blue_green, endpoints, engine_versions, passwords
from lab.fidelity.world import LabWorld, set_world


def install(lab_world: LabWorld) -> None:
    """Patch moto's RDS models in this process so they behave as AWS does."""
    set_world(lab_world)
    endpoints.install()
    passwords.install()
    blue_green.install()
    engine_versions.install()
