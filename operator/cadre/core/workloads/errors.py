"""Why a workload's children cannot be built, in words a status condition can show."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import ValidationError


def invalid_spec_message(err: ValidationError) -> str:
    """One line saying what to fix: the first error's field and message."""
    first = err.errors()[0]
    where = ".".join(str(p) for p in first.get("loc") or ())
    return f"the spec is not valid: {where + ': ' if where else ''}{first['msg']}"


class BuildError(ValueError):
    """The children of a workload cannot be built from its spec and the operator config.

    `reason` is a CamelCase word for the condition's reason; `str(error)` is the message.
    """

    reason: str = "InvalidSpec"


class UnknownFlavourError(BuildError):
    """The spec names a flavour the operator config does not define."""

    reason = "UnknownFlavour"

    def __init__(self, flavour: str, known: Sequence[str]) -> None:
        self.flavour = flavour
        self.known = tuple(known)
        super().__init__(
            f"flavour {flavour!r} is not in the operator config; known: {', '.join(self.known)}"
        )


class FlavourRequiredError(BuildError):
    """GPUs were asked for without a flavour (the CRD's CEL rule normally stops this)."""

    reason = "FlavourRequired"

    def __init__(self, gpus: int, known: Sequence[str]) -> None:
        self.gpus = gpus
        self.known = tuple(known)
        super().__init__(
            f"{gpus} GPU(s) per worker need a flavour: set spec.resources.flavor to one of "
            f"{', '.join(self.known)}"
        )


class InvalidTeamError(BuildError):
    """The team (ResourceBudget) name cannot be a label value (longer than 63 characters)."""

    reason = "InvalidTeamName"

    def __init__(self, team: str) -> None:
        self.team = team
        super().__init__(
            f"team {team!r} cannot label the workers: a label value is at most 63 letters, "
            "digits, '-', '_' or '.'; give the ResourceBudget a shorter name"
        )
