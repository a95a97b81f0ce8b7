"""Admission of an out-of-dialog call: the pure decision core (no KSR, no I/O).

Order of checks (SPEC "Admission of a call"), once the Request-URI host named a target:
1. the target's domain is one of our customers', else 403;
2. some attached ACL could admit the source address, else 403 and never a challenge;
3. an IP-only ACL listing the source admits at once; otherwise digest credentials of an
   account of a candidate ACL are required (407 when missing or stale, 403 when wrong);
4. the dialled number is E.164, else 484. It is checked only once the caller is admitted,
   so nobody learns anything about a domain before passing its ACLs;
5. the POPs to try, in order (pops.attempt_order); none configured for the call: 503;
6. the commit, shared by every edge (`after_commit`): a digest (nonce, nc) used before is
   a replay (403), a limit reached is 503 (calls per second) or 403 (channels).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from trunkedge.core.digest import Credentials, Outcome, Verdict
from trunkedge.core.identity import NO_CALLER_IDS, CallerIds
from trunkedge.core.limits import Commit
from trunkedge.core.names import address_value, is_e164
from trunkedge.core.pops import PopPlan
from trunkedge.core.reasons import Reason
from trunkedge.core.target import Target
from trunkedge.core.views import AccountView, Lookup

Verifier = Callable[[AccountView | None], Verdict]
"""The digest seam: checks the request's credentials against the account's HA1s. Given
None (no such account) it does the same work and fails, so that an unknown username and
a wrong password cannot be told apart."""


@dataclass(frozen=True)
class CallFacts:
    """The facts of one request that admission depends on."""

    source_ip: str
    ruri_user: str
    from_user: str
    credentials: Credentials | None  # the request's credentials for our realm, if any
    anonymous: bool = False  # the From withholds the caller (identity.is_anonymous)


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
    reason: Reason
    detail: str = ""  # why, for logs only (never in a reply): "response", "replay", ...

    @property
    def label(self) -> str:
        """The reason as logs and counters show it: `wrong-credentials:replay`."""
        return f"{self.reason.value}:{self.detail}" if self.detail else self.reason.value


Decision = Admit | Challenge | Refuse


def forbidden(reason: Reason, detail: str = "") -> Refuse:
    return Refuse(403, "Forbidden", reason, detail)


def decide(target: Target, facts: CallFacts, lookup: Lookup, verify: Verifier, *,
           realm: str, plan: PopPlan) -> Decision:
    """Decide whether an out-of-dialog request is admitted, challenged or refused."""
    domain = lookup.domain
    if domain is None:
        return forbidden(Reason.UNKNOWN_DOMAIN)
    source = facts.source_ip
    if address_value(source) is None:
        return forbidden(Reason.BAD_SOURCE_ADDRESS)
    candidates = []  # ACLs that need credentials and whose address rule (if any) holds
    for acl in domain.acls:
        listed = acl.lists(source)
        if listed and not acl.has_accounts:
            return _admit(facts, Admit(pops=plan.order(target.pop, domain.pop),
                                       acl=acl.name, username=None))
        if acl.has_accounts and (listed or not acl.networks):
            candidates.append(acl.name)
    if not candidates:
        return forbidden(Reason.ADDRESS_NOT_ALLOWED)
    pops = plan.order(target.pop, domain.pop)
    return _authenticate(facts, lookup, verify, realm, pops, candidates)


def _authenticate(facts: CallFacts, lookup: Lookup, verify: Verifier, realm: str,
                  pops: tuple[str, ...], candidates: list[str]) -> Decision:
    """Digest for the candidate ACLs (RFC 3261 §22.3): the credentials' account must
    belong to one of them under our realm and answer correctly; its (nonce, nc) is claimed
    by the commit that follows (see `after_commit`)."""
    creds = facts.credentials
    if creds is None:
        return Challenge()
    if creds.username != facts.from_user and not facts.anonymous:
        return forbidden(Reason.AUTH_USER_NOT_FROM_USER)  # an anonymous From names nobody
    account = lookup.account
    usable = (account is not None and account.username == creds.username
              and account.acl in candidates and account.realm.lower() == realm.lower())
    verdict = verify(account if usable else None)
    if not usable or account is None:
        return forbidden(Reason.WRONG_CREDENTIALS, "unknown-or-foreign-account")
    if verdict.outcome is Outcome.STALE:
        return Challenge(stale=True)
    if verdict.outcome is Outcome.WRONG:
        return forbidden(Reason.WRONG_CREDENTIALS, verdict.detail or "response")
    return _admit(facts, Admit(pops=pops, acl=account.acl, username=account.username))


def _admit(facts: CallFacts, admit: Admit) -> Decision:
    """The admitted caller still needs a valid number and a POP to go to."""
    if not is_e164(facts.ruri_user):
        return Refuse(484, "Address Incomplete", Reason.NOT_E164)
    if not admit.pops:
        return Refuse(503, "Service Unavailable", Reason.NO_POP_CONFIGURED)
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


@dataclass(frozen=True)
class LimitAnswers:
    """The operator's answers when a customer limit is reached (settings.limits)."""

    over_cps: tuple[int, str] = (503, "Service Unavailable")
    over_channels: tuple[int, str] = (403, "Channel Limit Exceeded")


def after_commit(admit: Admit, commit: Commit, answers: LimitAnswers) -> Decision:
    """An admitted call once the store claimed its nonce and its limits (BANNED is the
    caller's: such a request is dropped, not answered)."""
    if commit is Commit.OK:
        return admit
    if commit is Commit.REPLAY:
        return forbidden(Reason.WRONG_CREDENTIALS, "replay")
    if commit is Commit.OVER_CPS:
        return Refuse(*answers.over_cps, Reason.OVER_CPS)
    if commit is Commit.OVER_CHANNELS:
        return Refuse(*answers.over_channels, Reason.OVER_CHANNELS)
    raise ValueError(f"{commit} is not answered")
