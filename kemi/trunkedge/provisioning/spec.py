"""The customer configuration as provisioning writes it (SPEC.md, "The objects").

Plain data: validation.py builds these from YAML or the command line, writer.py stores
them in Redis and reads them back for export.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trunkedge.core.identity import NO_CALLER_IDS, CallerIds
from trunkedge.core.limits import NO_LIMITS, Limits


@dataclass
class AccountSpec:
    ha1: dict[str, str]  # algorithm -> HA1
    caller_ids: CallerIds = NO_CALLER_IDS
    limits: Limits = NO_LIMITS


@dataclass
class AclSpec:
    networks: list[str] = field(default_factory=list)
    accounts: dict[str, AccountSpec] = field(default_factory=dict)
    caller_ids: CallerIds = NO_CALLER_IDS


@dataclass
class DomainSpec:
    acls: list[str] = field(default_factory=list)
    pop: str | None = None
    algorithms: list[str] = field(default_factory=list)  # empty: the edge's default
    limits: Limits = NO_LIMITS


@dataclass
class ConfigSpec:
    """The whole customer configuration (what import writes and export reads)."""

    acls: dict[str, AclSpec] = field(default_factory=dict)
    domains: dict[str, DomainSpec] = field(default_factory=dict)

    def account_count(self) -> int:
        return sum(len(acl.accounts) for acl in self.acls.values())
