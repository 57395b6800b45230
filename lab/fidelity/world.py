"""The lab's world: which real PostgreSQL server plays which AWS resource.

Every cluster created through CreateDBCluster is played by a "blue"
server: `blue` unless the lab assigned that identifier a server of its own
(a lab of several clusters gives each cluster its own pair, `blue-2` and
`green-2`, …, so one cluster's switchover, read-only green and password
never touch another's). The green cluster a Blue/Green deployment creates is
played by the green server paired with its source's blue server. Instances
are played by their cluster's server, as Aurora instances share their
cluster's storage. Renames move names, never servers: after a switchover the
original name belongs to green.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab.fidelity.endpoints import EndpointProxy

if TYPE_CHECKING:
    from lab.postgres import PgServer

LAB_ACCOUNT = "123456789012"
PLAYED_BY = "_lab_played_by"
log = logging.getLogger("lab.fidelity")


@dataclass
class LabWorld:
    servers: dict[str, PgServer]
    region: str
    provisioning_delay: float = 0.0
    # cluster identifier -> the blue server that plays it, when not `blue`
    blue_server_of: dict[str, str] = field(default_factory=dict)
    # blue server -> the green server its Blue/Green deployments use
    green_server_of: dict[str, str] = field(default_factory=lambda: {"blue": "green"})
    account: str = LAB_ACCOUNT
    lab_dir: Path | None = None  # where lab.json records the servers' postmasters
    lock: threading.RLock = field(default_factory=threading.RLock)
    proxy: EndpointProxy = field(init=False)

    def __post_init__(self) -> None:
        self.proxy = EndpointProxy(self.backend_port_for)

    @property
    def rds(self) -> Any:
        from moto.rds.models import rds_backends

        return rds_backends[self.account][self.region]

    def server_name_of_cluster(self, cluster: Any) -> str:
        """The server playing `cluster`, fixed at first sight so that renames keep it."""
        name = cluster.__dict__.get(PLAYED_BY)
        if name is None:
            identifier = cluster.__dict__.get("_db_cluster_identifier") or ""
            name = self.blue_server_of.get(identifier.lower(), "blue")
            setattr(cluster, PLAYED_BY, name)
        return name

    def server_of_cluster(self, cluster: Any) -> PgServer:
        return self.servers[self.server_name_of_cluster(cluster)]

    def green_server_name_for(self, source: Any) -> str:
        """The green server of a deployment whose source is `source`."""
        return self.green_server_of[self.server_name_of_cluster(source)]

    def server_of_instance(self, instance: Any) -> PgServer | None:
        cluster = self.rds.clusters.get(getattr(instance, "db_cluster_identifier", None))
        return self.server_of_cluster(cluster) if cluster is not None else None

    def record_pid(self, server_name: str, pid: int) -> None:
        """Record in lab.json the postmaster a restart gave `server_name`, so that `lab
        status` and `lab down` know it."""
        if self.lab_dir is not None:
            from lab.control import record_server_pid

            record_server_pid(self.lab_dir, server_name, pid)

    def backend_port_for(self, key: str) -> int | None:
        """The PostgreSQL port behind an endpoint key, or None when the name is gone."""
        kind, _, identifier = key.partition("/")
        with self.lock:
            if kind == "cluster":
                cluster = self.rds.clusters.get(identifier)
                return self.server_of_cluster(cluster).port if cluster is not None else None
            instance = self.rds.databases.get(identifier)
            server = self.server_of_instance(instance) if instance is not None else None
            return server.port if server is not None else None


_world: LabWorld | None = None


def set_world(world: LabWorld) -> None:
    global _world
    _world = world


def world() -> LabWorld:
    if _world is None:
        raise RuntimeError("the lab's fidelity layer is not installed")
    return _world
