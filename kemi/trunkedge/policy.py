"""Admission of an out-of-dialog call: the pure decision core (no KSR, no I/O).

Order of checks (SPEC "Admission of a call"):
1. the Request-URI host names one of our customer domains, else 403;
2. some attached ACL could admit the source address, else 403 and never a challenge;
3. an IP-only ACL listing the source admits at once; otherwise digest credentials of an
   account of a candidate ACL are required (407 when missing or stale, 403 when wrong);
4. the dialled number is E.164, else 484. It is checked only once the caller is admitted,
   so nobody learns anything about a domain before passing its ACLs;
5. the POPs to try, in order (pops.attempt_order); none configured for the call: 503.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from trunkedge.identity import NO_CALLER_IDS, CallerIds
from trunkedge.model import AccountView, Lookup
from trunkedge.names import address_value, is_e164
from trunkedge.pops import PopPlan
from trunkedge.target import Target


class DigestResult(enum.Enum):
    OK = "ok"
    WRONG = "wrong"  # wrong password or user, bad nonce/uri/algorithm, replay
    STALE = "stale"  # correct response on an expired nonce: challenge again, stale=true


@dataclass(frozen=True)
class DigestCheck:
    result: DigestResult
    detail: str = ""  # why, for the logs only (never in a reply)


Verifier = Callable[[AccountView | None], DigestCheck]
"""The digest seam: checks the request's credentials against the account's HA1s. Given
None (no such account) it does the same work and fails, so that an unknown username and
a wrong password cannot be told apart."""


@dataclass(frozen=True)
class Credentials:
    """What the request's Proxy-Authorization header claims (not yet verified)."""

    username: str
    realm: str


@dataclass(frozen=True)
class CallFacts:
    """The facts of one request that admission depends on."""

    source_ip: str
    ruri_user: str
    from_user: str
    credentials: Credentials | None


@dataclass(frozen=True)
class Admit:
    pops: tuple[str, ...]  # POPs to try, in order
    acl: str
    username: str | None  # the authenticated account, None when admitted by address


@dataclass(frozen=True)
class Challenge:
    stale: bool = False


@dataclass(frozen=True)
class Refuse:
    code: int
    phrase: str
    reason: str  # machine-readable, for logs and metrics


Decision = Admit | Challenge | Refuse

FORBIDDEN = "Forbidden"


def refuse_forbidden(reason: str) -> Refuse:
    return Refuse(403, FORBIDDEN, reason)


def decide(
    target: Target | None,
    facts: CallFacts,
    lookup: Lookup,
    verify: Verifier,
    *,
    realm: str,
    plan: PopPlan,
) -> Decision:
    """Decide whether an out-of-dialog request is admitted, challenged or refused."""
    if target is None:
        return refuse_forbidden("foreign-host")
    domain = lookup.domain
    if domain is None:
        return refuse_forbidden("unknown-domain")
    source = facts.source_ip
    if address_value(source) is None:
        return refuse_forbidden("bad-source-address")
    candidates = []  # ACLs that need credentials and whose address rule (if any) holds
    for acl in domain.acls:
        listed = acl.lists(source)
        if listed and not acl.has_accounts:
            return _admit(facts, Admit(pops=plan.order(target.pop, domain.pop), acl=acl.name,
                                       username=None))
        if acl.has_accounts and (listed or not acl.networks):
            candidates.append(acl.name)
    if not candidates:
        return refuse_forbidden("address-not-allowed")

    creds = facts.credentials
    if creds is None or creds.realm.lower() != realm.lower():
        return Challenge()
    if creds.username != facts.from_user:
        return refuse_forbidden("auth-user-not-from-user")
    account = lookup.account
    usable = (account is not None and account.username == creds.username
              and account.acl in candidates and account.realm.lower() == realm.lower())
    check = verify(account if usable else None)
    if not usable or account is None:
        return refuse_forbidden("wrong-credentials:unknown-or-foreign-account")
    if check.result is DigestResult.OK:
        return _admit(facts, Admit(pops=plan.order(target.pop, domain.pop), acl=account.acl,
                                   username=account.username))
    if check.result is DigestResult.STALE:
        return Challenge(stale=True)
    return refuse_forbidden(f"wrong-credentials:{check.detail or 'response'}")


def _admit(facts: CallFacts, admit: Admit) -> Decision:
    """The admitted caller still needs a valid number and a POP to go to."""
    if not is_e164(facts.ruri_user):
        return Refuse(484, "Address Incomplete", "not-e164")
    if not admit.pops:
        return Refuse(503, "Service Unavailable", "no-pop-configured")
    return admit


def caller_ids_for(admit: Admit, lookup: Lookup) -> CallerIds:
    """The authenticated account's caller IDs if it has any, else its (or the admitting)
    ACL's: an IP-only ACL's caller IDs serve every call it admits."""
    account = lookup.account
    if admit.username and account is not None and account.caller_ids.configured:
        return account.caller_ids
    for acl in lookup.domain.acls if lookup.domain else ():
        if acl.name == admit.acl:
            return acl.caller_ids
    return NO_CALLER_IDS
