"""Errors that name what was wrong, for operators and provisioning systems."""


class TrunkEdgeError(Exception):
    """Base of the project's expected errors (never a crash)."""


class ConfigError(TrunkEdgeError):
    """A setting or a provisioning field is invalid; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class StoreUnavailable(TrunkEdgeError):
    """Redis could not be reached in time: the edge fails closed (503)."""
