"""Table-driven tests of the admission core: every rule of SPEC "Admission of a call"."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from trunkedge.core.admission import (
    Admit,
    CallFacts,
    Challenge,
    Decision,
    LimitAnswers,
    Refuse,
    after_commit,
    decide,
)
from trunkedge.core.digest import Outcome, Verdict, credentials_for_realm
from trunkedge.core.limits import Commit
from trunkedge.core.names import NetworkSet
from trunkedge.core.pops import PopPlan
from trunkedge.core.reasons import Reason
from trunkedge.core.target import Target
from trunkedge.core.views import AccountView, AclView, DomainView, Lookup

REALM = "sip.example.net"
PBX, PBX6, OTHER = "192.0.2.10", "2001:db8::10", "198.51.100.7"


def acl(name: str, nets: tuple[str, ...] = (), accounts: bool = False) -> AclView:
    return AclView(name, NetworkSet(nets), accounts)


IP_ONLY = acl("ip", ("192.0.2.0/24", "2001:db8::/64"))
ACCOUNTS = acl("acct", accounts=True)
BOTH = acl("both", ("192.0.2.10/32",), accounts=True)
NEITHER = acl("neither")

ALICE = AccountView("31000000", "acct", REALM, {"MD5": "a" * 32})
BOB = AccountView("31000001", "both", REALM, {"MD5": "b" * 32})


EUROPE_FIRST = ("eu1", "eu2", "us1", "us2", "apac1", "apac2")
PLAN = PopPlan("eu1", ("eu", "us", "apac"), frozenset(EUROPE_FIRST))


DEFAULT_FORM = Target("acme", None)
ADMIT_IP = Admit(EUROPE_FIRST, "ip", None)


@dataclass
class Case:
    id: str
    acls: tuple[AclView, ...]
    src: str = PBX
    creds: str | None = None  # username in Proxy-Authorization
    digest: Outcome = Outcome.OK
    account: AccountView | None = None
    from_user: str | None = None
    number: str = "+3123456789"
    target: Target = DEFAULT_FORM
    known: bool = True
    realm: str = REALM
    domain_pop: str | None = None
    plan: PopPlan = PLAN
    want: Decision = ADMIT_IP


def admit(acl_name: str, user: str | None = None,
          pops: tuple[str, ...] = EUROPE_FIRST) -> Admit:
    return Admit(pops, acl_name, user)


def forbidden(label: str) -> Refuse:
    """A 403 by its logged label: `wrong-credentials:response` is reason and detail."""
    reason, _, detail = label.partition(":")
    return Refuse(403, "Forbidden", Reason(reason), detail)


CASES = [
    # the domain
    Case("unknown domain", (IP_ONLY,), known=False, want=forbidden("unknown-domain")),
    Case("no acl attached", (), want=forbidden("address-not-allowed")),
    # IP-only ACLs
    Case("ip acl, listed v4", (IP_ONLY,), want=admit("ip")),
    Case("ip acl, listed v6", (IP_ONLY,), src=PBX6, want=admit("ip")),
    Case("ip acl, unlisted: 403, no challenge", (IP_ONLY,), src=OTHER,
         want=forbidden("address-not-allowed")),
    Case("ip acl, unlisted even with credentials", (IP_ONLY,), src=OTHER, creds="31000000",
         account=ALICE, want=forbidden("address-not-allowed")),
    Case("ip acl, pinned pop", (IP_ONLY,), target=Target("acme", "us2"),
         want=admit("ip", pops=("us2", "us1"))),
    Case("ip acl, domain's pop", (IP_ONLY,), domain_pop="apac1",
         want=admit("ip", pops=("apac1", "apac2", "eu1", "eu2", "us1", "us2"))),
    Case("pinned to a pop with no gateways: 503", (IP_ONLY,), target=Target("acme", "us1"),
         plan=PopPlan("eu1", ("eu", "us", "apac"), frozenset({"eu1"})),
         want=Refuse(503, "Service Unavailable", "no-pop-configured")),
    # accounts-only ACLs
    Case("account acl, no credentials: challenge", (ACCOUNTS,), src=OTHER, want=Challenge()),
    Case("account acl, right digest", (ACCOUNTS,), src=OTHER, creds="31000000", account=ALICE,
         want=admit("acct", "31000000")),
    Case("account acl, wrong digest: 403", (ACCOUNTS,), src=OTHER, creds="31000000",
         account=ALICE, digest=Outcome.WRONG, want=forbidden("wrong-credentials:response")),
    Case("account acl, stale nonce: challenge stale", (ACCOUNTS,), src=OTHER, creds="31000000",
         account=ALICE, digest=Outcome.STALE, want=Challenge(stale=True)),
    Case("account acl, unknown user: 403", (ACCOUNTS,), src=OTHER, creds="nobody",
         want=forbidden("wrong-credentials:unknown-or-foreign-account")),
    Case("account acl, account of an unattached acl: 403", (ACCOUNTS,), src=OTHER,
         creds="31000001", account=BOB,
         want=forbidden("wrong-credentials:unknown-or-foreign-account")),
    Case("account acl, auth user is not the From user", (ACCOUNTS,), src=OTHER,
         creds="31000000", account=ALICE, from_user="31000009",
         want=forbidden("auth-user-not-from-user")),
    Case("account acl, credentials for another realm: challenge", (ACCOUNTS,), src=OTHER,
         creds="31000000", account=ALICE, realm="other.example", want=Challenge()),
    # both-required ACLs
    Case("both, listed + right digest", (BOTH,), creds="31000001", account=BOB,
         want=admit("both", "31000001")),
    Case("both, listed + no credentials: challenge", (BOTH,), want=Challenge()),
    Case("both, listed + wrong digest: 403", (BOTH,), creds="31000001", account=BOB,
         digest=Outcome.WRONG, want=forbidden("wrong-credentials:response")),
    Case("both, unlisted + right digest: 403 unchallenged", (BOTH,), src=OTHER,
         creds="31000001", account=BOB, want=forbidden("address-not-allowed")),
    # ACL with neither admits nothing, and never challenges
    Case("neither", (NEITHER,), want=forbidden("address-not-allowed")),
    # any one ACL may admit
    Case("any: ip acl admits although account acl would challenge", (ACCOUNTS, IP_ONLY),
         want=admit("ip")),
    Case("any: unlisted falls to the account acl", (IP_ONLY, ACCOUNTS), src=OTHER,
         want=Challenge()),
    Case("any: unlisted, both + ip acls: 403 unchallenged", (IP_ONLY, BOTH, NEITHER), src=OTHER,
         want=forbidden("address-not-allowed")),
    # the number, once admitted
    Case("short number: 484", (IP_ONLY,), number="1234567",
         want=Refuse(484, "Address Incomplete", "not-e164")),
    Case("long number: 484", (IP_ONLY,), number="+1234567890123456",
         want=Refuse(484, "Address Incomplete", "not-e164")),
    Case("letters: 484", (IP_ONLY,), number="12345678a", want=Refuse(484, "Address Incomplete",
                                                                      "not-e164")),
    Case("8 digits ok", (IP_ONLY,), number="12345678", want=admit("ip")),
    Case("15 digits with + ok", (IP_ONLY,), number="+123456789012345", want=admit("ip")),
    Case("bad number from an unlisted address: 403, not 484", (IP_ONLY,), src=OTHER,
         number="12", want=forbidden("address-not-allowed")),
    Case("bad number before auth: challenge, not 484", (ACCOUNTS,), src=OTHER, number="12",
         want=Challenge()),
    Case("garbage source address", (IP_ONLY,), src="not-an-ip",
         want=forbidden("bad-source-address")),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_each_admission_rule_gives_its_decision(case: Case) -> None:
    verified: list[str | None] = []

    def verify(account: AccountView | None) -> Verdict:
        verified.append(account.username if account else None)
        outcome = case.digest if account else Outcome.WRONG
        return Verdict(outcome, "response" if outcome is Outcome.WRONG else "")

    facts = CallFacts(
        source_ip=case.src,
        ruri_user=case.number,
        from_user=case.from_user or case.creds or "pbx",
        credentials=credentials_for_realm([
            f'Digest username="{case.creds}", realm="{case.realm}", nonce="n", uri="sip:x",'
            f' response="r"'] if case.creds else [], REALM),
    )
    domain = DomainView("acme", case.acls, case.domain_pop) if case.known else None
    got = decide(case.target, facts, Lookup(domain, case.account),
                 verify, realm=REALM, plan=case.plan)
    assert got == case.want
    # The digest is checked for the account the credentials name, or worked through for
    # nobody (None) when there is no usable account: the same work either way.
    assert verified in ([], [case.creds], [None])
    if isinstance(got, Refuse) and got.detail == "unknown-or-foreign-account":
        assert verified == [None]


def test_an_anonymous_from_is_no_other_user_than_the_credentials() -> None:
    facts = CallFacts(source_ip=OTHER, ruri_user="+3123456789", from_user="anonymous",
                      credentials=credentials_for_realm([
                          f'Digest username="31000000", realm="{REALM}", nonce="n", '
                          f'uri="sip:x", response="r"'], REALM))
    lookup = Lookup(DomainView("acme", (ACCOUNTS,)), ALICE)

    def ok(account: AccountView | None) -> Verdict:
        return Verdict(Outcome.OK if account else Outcome.WRONG, "")

    named = decide(DEFAULT_FORM, facts, lookup, ok, realm=REALM, plan=PLAN)
    assert named == forbidden("auth-user-not-from-user")
    anonymous = CallFacts(**{**facts.__dict__, "anonymous": True})
    assert decide(DEFAULT_FORM, anonymous, lookup, ok, realm=REALM, plan=PLAN) == \
        Admit(EUROPE_FIRST, "acct", "31000000")


ANSWERS = LimitAnswers((503, "Service Unavailable"), (486, "Busy Here"))


@pytest.mark.parametrize(("commit", "want"), [
    (Commit.OK, ADMIT_IP),
    (Commit.REPLAY, forbidden("wrong-credentials:replay")),
    (Commit.OVER_CPS, Refuse(503, "Service Unavailable", Reason.OVER_CPS)),
    (Commit.OVER_CHANNELS, Refuse(486, "Busy Here", Reason.OVER_CHANNELS)),
], ids=str)
def test_the_commit_decides_replays_and_limits_as_the_operator_answers(
        commit: Commit, want: Decision) -> None:
    assert after_commit(ADMIT_IP, commit, ANSWERS) == want


def test_a_replay_counts_towards_a_ban_and_a_limit_does_not() -> None:
    replay = after_commit(ADMIT_IP, Commit.REPLAY, ANSWERS)
    over = after_commit(ADMIT_IP, Commit.OVER_CHANNELS, ANSWERS)
    assert isinstance(replay, Refuse) and replay.reason.counts_towards_ban
    assert isinstance(over, Refuse) and not over.reason.counts_towards_ban
