"""Where moto differs from AWS, the lab reproduces AWS: one module per behaviour.

- `endpoints`: endpoints reach the real PostgreSQL playing each resource.
- `passwords`: the managed/self-managed master password lifecycle.
- `blue_green`: provisioning, switchover with renames, deletion.
- `engine_versions`: DescribeDBEngineVersions and valid upgrade targets.
- `faults` and `call_log`: fault injection and a redacted log of every call.
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
