"""The customer configuration as the edge sees it for one call (read from Redis)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from trunkedge.core.identity import NO_CALLER_IDS, CallerIds
from trunkedge.core.limits import NO_LIMITS, Limits
from trunkedge.core.names import NetworkSet

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class AclView:
    """One ACL attached to the called domain: its ranges and whether it has accounts."""

    name: str
    networks: NetworkSet
    has_accounts: bool
    caller_ids: CallerIds = NO_CALLER_IDS

    def lists(self, source: str | Address) -> bool:
        return source in self.networks


@dataclass(frozen=True)
class AccountView:
    """The account named by the request's credentials (one per username, edge-wide)."""

    username: str
    acl: str
    realm: str
    ha1: dict[str, str]  # algorithm name ("MD5", "SHA-256") -> hex HA1
    caller_ids: CallerIds = NO_CALLER_IDS
    limits: Limits = NO_LIMITS


@dataclass(frozen=True)
class DomainView:
    name: str
    acls: tuple[AclView, ...]
    pop: str | None = None  # provisioned POP for the default form
    algorithms: tuple[str, ...] = ()  # digest algorithms, preferred first (empty: the edge's)
    limits: Limits = NO_LIMITS


@dataclass(frozen=True)
class Lookup:
    """Everything one call needs from the store: the domain and the credentials' account."""

    domain: DomainView | None
    account: AccountView | None
    banned_for: int = 0  # seconds the source address stays banned (0: not banned)
