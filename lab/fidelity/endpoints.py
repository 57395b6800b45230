"""Endpoints that reach real databases.

In AWS an endpoint is a DNS name that follows the resource's *name*: after a
switchover the original cluster and instance names belong to green, so the
original endpoints reach green, and the `-old1` names reach the old blue.
The lab gives every cluster and instance name its own TCP port on 127.0.0.1
and forwards each new connection to the PostgreSQL server that plays the
resource currently holding that name. A cluster's reader endpoint shares the
cluster's port, as AWS's `Port` is one per cluster. AWS drops connections at
a switchover; `drop_connections` does the same, for the names of the
switched deployment only: other clusters keep their sessions. (AWS-FACTS S3,
"Switching a B/G deployment", …/AuroraUserGuide/blue-green-deployments-switching.html;
S6, the overview, …/AuroraUserGuide/blue-green-deployments-overview.html.)
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from typing import Any

from lab.fidelity.patching import patch

LAB_HOST = "127.0.0.1"
Resolver = Callable[[str], int | None]  # endpoint key -> backend TCP port (None: no such name)


def cluster_key(identifier: str) -> str:
    return f"cluster/{identifier.lower()}"


def instance_key(identifier: str) -> str:
    return f"instance/{identifier.lower()}"


class EndpointProxy:
    """One listening port per endpoint key, forwarding to a resolved backend."""

    def __init__(self, resolve: Resolver) -> None:
        self._resolve = resolve
        self._ports: dict[str, int] = {}
        self._listeners: list[socket.socket] = []
        self._open: dict[socket.socket, str] = {}  # forwarded socket -> its endpoint key
        self._lock = threading.Lock()
        self._closed = False

    def port_for(self, key: str) -> int:
        """The port of `key`, opening its listener on first use (stable afterwards)."""
        with self._lock:
            if key not in self._ports:
                listener = socket.create_server((LAB_HOST, 0))
                self._ports[key] = listener.getsockname()[1]
                self._listeners.append(listener)
                threading.Thread(
                    target=self._accept, args=(key, listener), daemon=True, name=f"proxy {key}"
                ).start()
            return self._ports[key]

    def ports(self) -> dict[str, int]:
        with self._lock:
            return dict(self._ports)

    def drop_connections(self, keys: set[str] | None = None) -> None:
        """Close the forwarded connections of `keys` (default: all), as AWS does at a
        switchover."""
        with self._lock:
            sockets = [s for s, key in self._open.items() if keys is None or key in keys]
            for sock in sockets:
                del self._open[sock]
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self._closed = True
        for listener in self._listeners:
            listener.close()
        self.drop_connections()

    def _accept(self, key: str, listener: socket.socket) -> None:
        while not self._closed:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=self._connect, args=(key, client), daemon=True).start()

    def _connect(self, key: str, client: socket.socket) -> None:
        backend_port = self._resolve(key)
        if backend_port is None:  # the name no longer exists: like NXDOMAIN
            client.close()
            return
        try:
            backend = socket.create_connection((LAB_HOST, backend_port), timeout=10)
            backend.settimeout(None)
        except OSError:
            client.close()
            return
        with self._lock:
            self._open.update({client: key, backend: key})
        for source, target in ((client, backend), (backend, client)):
            threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            with self._lock:
                self._open.pop(source, None)
                self._open.pop(target, None)


def install() -> None:
    """Report lab endpoints from moto's models: 127.0.0.1 and the name's port."""
    from moto.rds.models import DBCluster, DBInstance

    from lab.fidelity.world import world

    def cluster_port(self: DBCluster) -> int:
        identifier = self.__dict__.get("_db_cluster_identifier")
        if not identifier:
            return self.__dict__.get("_aws_port", 5432)
        return world().proxy.port_for(cluster_key(identifier))

    def instance_port(self: DBInstance) -> int:
        identifier = self.__dict__.get("_db_instance_identifier")
        if not identifier:
            return self.__dict__.get("_aws_port", 5432)
        return world().proxy.port_for(instance_key(identifier))

    def keep_aws_port(self: Any, value: int | None) -> None:
        self.__dict__["_aws_port"] = value

    patch(DBCluster, "port", property(cluster_port, keep_aws_port))
    patch(DBCluster, "endpoint", property(lambda self: LAB_HOST))
    patch(DBCluster, "reader_endpoint", property(lambda self: LAB_HOST))
    patch(DBInstance, "port", property(instance_port, keep_aws_port))
    patch(DBInstance, "address", property(lambda self: LAB_HOST))
