"""One small exception tree for the whole project.

The flow and the command line catch these families and turn them into one
line for the operator. No message may ever carry a password: build messages
from identifiers and AWS error codes only.
"""

from __future__ import annotations


class AuroraBGError(Exception):
    """Base of every error this project raises on purpose."""


class TransientError(AuroraBGError):
    """Worth retrying: throttling, 5xx, connection resets, refused connects."""


class BusinessError(AuroraBGError):
    """Never retried: the world is not in a state that allows the step."""


class PreconditionFailed(BusinessError):
    """A read-only check found something that must be fixed before we act."""


class InvalidState(BusinessError):
    """AWS (or the database) is in a state the step cannot act on."""


class WaitTimedOut(BusinessError):
    """A bounded wait reached its deadline before its goal held."""


class SwitchoverFailed(BusinessError):
    """AWS reported SWITCHOVER_FAILED: it rolled back, both sides unchanged."""


class Rejected(BusinessError):
    """A person rejected a pause, or the pause timed out."""


class BadInput(BusinessError):
    """Parameters, files or command-line input that cannot be used as given."""


class LabError(AuroraBGError):
    """The rehearsal lab cannot start, stop or answer."""


class RunCancelled(BusinessError):
    """Somebody cancelled the run from Prefect (the UI's button, or the API)."""
