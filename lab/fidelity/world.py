"""The lab's world: which real PostgreSQL server plays which AWS resource.

Every cluster created through CreateDBCluster is played by the "blue"
server; the green cluster a Blue/Green deployment creates is played by the
"green" server. Instances are played by their cluster's server, as Aurora
instances share their cluster's storage. Renames move names, never servers:
after a switchover the original name belongs to green.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
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
    dbname: str = "app"
    provisioning_delay: float = 0.0
    account: str = LAB_ACCOUNT
    lock: threading.RLock = field(default_factory=threading.RLock)
    proxy: EndpointProxy = field(init=False)

    def __post_init__(self) -> None:
        self.proxy = EndpointProxy(self.backend_port_for)

    @property
    def rds(self) -> Any:
        from moto.rds.models import rds_backends

        return rds_backends[self.account][self.region]

    def server_of_cluster(self, cluster: Any) -> PgServer:
        return self.servers[getattr(cluster, PLAYED_BY, "blue")]

    def server_of_instance(self, instance: Any) -> PgServer | None:
        cluster = self.rds.clusters.get(getattr(instance, "db_cluster_identifier", None))
        return self.server_of_cluster(cluster) if cluster is not None else None

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
