"""The master password lifecycle, applied to the real PostgreSQL role.

AWS facts reproduced here:
- A cluster created with ManageMasterUserPassword gets a generated password
  stored in a new Secrets Manager secret (`rds!cluster-…`) holding
  `{"username": <master user>, "password": …}`; moto stores a fixed dummy.
- ModifyDBCluster with ManageMasterUserPassword=false and MasterUserPassword
  sets that password and deletes the managed secret; turning management off
  without a password is refused (InvalidParameterCombination), and so is
  giving both ManageMasterUserPassword=true and MasterUserPassword.
- Turning management on generates a NEW password, stores it in a NEW secret
  (new ARN) and sets it on the database.
- ModifyDBCluster with only MasterUserPassword changes the password.
The lab sets every such password on the role of the server that plays the
cluster, through a SCRAM verifier: the plaintext reaches no server log.
(The RDS Secrets Manager integration page; AWS-FACTS S1,
…/AuroraUserGuide/blue-green-deployments-considerations.html: a managed master
password is what a Blue/Green source may not have.)
"""

from __future__ import annotations

import json
import secrets
import string
from typing import Any

from lab.fidelity.patching import patch
from lab.fidelity.world import world

# AWS generated passwords avoid '/', '@', '"', ' ' and quotes.
_ALPHABET = string.ascii_letters + string.digits + "!#$%&()*+,-.:;<=>?[]^_{|}~"


def generate_password(length: int = 32) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def apply_password(resource: Any, password: str) -> None:
    """Set `password` on the master role of the server playing `resource`."""
    from lab.scram import set_role_password

    lab = world()
    server = lab.server_of_cluster(resource)
    set_role_password(server, resource.master_username, password)


def _invalid_combination(message: str) -> Exception:
    from moto.rds.exceptions import RDSClientError

    return RDSClientError("InvalidParameterCombination", message)


def install() -> None:
    from moto.rds.exceptions import DBClusterNotFoundError
    from moto.rds.models import MasterUserSecret, RDSBackend

    def generate_secret_string(self: MasterUserSecret) -> str:
        password = generate_password()
        apply_password(self.resource, password)
        return json.dumps({"username": self.resource.master_username, "password": password})

    patch(MasterUserSecret, "_generate_secret_string", generate_secret_string)

    original_modify = RDSBackend.modify_db_cluster

    def modify_db_cluster(self: RDSBackend, kwargs: dict[str, Any]) -> Any:
        identifier = kwargs.get("db_cluster_identifier")
        cluster = None if identifier is None else self.clusters.get(identifier)
        if cluster is None:
            raise DBClusterNotFoundError(str(identifier))
        manage = kwargs.get("manage_master_user_password")
        password = kwargs.get("master_user_password")
        if manage is True and password:
            raise _invalid_combination(
                "You can't specify both ManageMasterUserPassword and MasterUserPassword."
            )
        if manage is False and not password and cluster.manage_master_user_password:
            raise _invalid_combination(
                "You must specify MasterUserPassword when you turn off ManageMasterUserPassword."
            )
        if manage is True and cluster.manage_master_user_password:
            kwargs.pop("manage_master_user_password")  # already managed: nothing to do
        if password:
            if len(password) < 8:
                from moto.rds.exceptions import InvalidParameterValue

                raise InvalidParameterValue(
                    "The parameter MasterUserPassword is not a valid password "
                    "because it is shorter than 8 characters."
                )
            apply_password(cluster, password)
        return original_modify(self, kwargs)

    patch(RDSBackend, "modify_db_cluster", modify_db_cluster)
