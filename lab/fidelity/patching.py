"""How the fidelity layer changes moto: by replacing attributes of moto's classes.

A patch swaps a method for the lab's, teaches a responder an action moto lacks,
or turns a plain attribute into a property computed from the lab's world. A
type checker rejects such assignments by design (a method is not assignable, an
int attribute is not a property); this function is the one place that says the
lab means them.
"""

from __future__ import annotations


def patch(owner: type, name: str, value: object) -> None:
    """Set `owner.<name>` to `value`, for every instance of `owner` in this process."""
    setattr(owner, name, value)
