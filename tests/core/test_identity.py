"""Caller identity: every combination of PAI/PPI/From/Privacy/policy, and the parsers."""

from __future__ import annotations

import itertools

import pytest

from trunkedge.core.identity import (
    CallerIds,
    IdentityEdits,
    IdentityFacts,
    IdentityRefused,
    is_anonymous,
    normalize_number,
    privacy_values,
    settle,
    uri_number,
)

BASE = "sip.example.net"
OWN, OTHER, DEFAULT = "+31201234567", "+19995550123", "+31200000000"
IDS_REJECT = CallerIds(allow=("+3120123*",), default=DEFAULT, policy="reject")
IDS_REPLACE = CallerIds(allow=("+3120123*",), default=DEFAULT, policy="replace")
ANON = "sip:anonymous@anonymous.invalid"


def pai(number: str) -> str:
    return f"P-Asserted-Identity: <sip:{number}@{BASE};user=phone>"


CASES = [
    # id, from, PPI, Privacy, caller IDs, expected (asserted, Privacy header) or refusal
    ("own From", f"sip:{OWN}@acme.{BASE}", None, None, IDS_REJECT, (OWN, None)),
    ("own From, tel", f"tel:{OWN}", None, None, IDS_REJECT, (OWN, None)),
    ("From with separators", "sip:+31-20-123-4567@x", None, None, IDS_REJECT, (OWN, None)),
    ("From with 00", "sip:0031201234567@x", None, None, IDS_REJECT, (OWN, None)),
    ("foreign From, reject", f"sip:{OTHER}@x", None, None, IDS_REJECT, "caller-id-not-allowed"),
    ("foreign From, replace", f"sip:{OTHER}@x", None, None, IDS_REPLACE, (DEFAULT, None)),
    ("non-number From, reject", "sip:pbx@x", None, None, IDS_REJECT, "caller-id-not-allowed"),
    ("non-number From, replace", "sip:pbx@x", None, None, IDS_REPLACE, (DEFAULT, None)),
    ("PPI allowed wins over From", "sip:pbx@x", f"<sip:{OWN}@x>", None, IDS_REJECT, (OWN, None)),
    ("PPI tel allowed", "sip:pbx@x", f"<tel:{OWN};phone-context=x>", None, IDS_REJECT,
     (OWN, None)),
    ("PPI not allowed, reject", f"sip:{OWN}@x", f"<sip:{OTHER}@x>", None, IDS_REJECT,
     "caller-id-not-allowed"),
    ("PPI not allowed, replace", f"sip:{OWN}@x", f"<sip:{OTHER}@x>", None, IDS_REPLACE,
     (DEFAULT, None)),
    ("PPI garbage, replace", f"sip:{OWN}@x", "<mailto:me@x>", None, IDS_REPLACE,
     (DEFAULT, None)),
    ("Privacy: id", f"sip:{OWN}@x", None, "id", IDS_REJECT, (OWN, "id")),
    ("Privacy: header", f"sip:{OWN}@x", None, "header", IDS_REJECT, (OWN, "header;id")),
    ("Privacy: user;critical", f"sip:{OWN}@x", None, "user; critical", IDS_REJECT,
     (OWN, "user;critical;id")),
    ("Privacy: session only", f"sip:{OWN}@x", None, "session", IDS_REJECT, (OWN, "session")),
    ("Privacy: none", f"sip:{OWN}@x", None, "none", IDS_REJECT, (OWN, "none")),
    ("Privacy: junk dropped", f"sip:{OWN}@x", None, "id;x\r\nEvil: 1", IDS_REJECT, (OWN, "id")),
    ("anonymous + PPI allowed", ANON, f"<sip:{OWN}@x>", None, IDS_REJECT, (OWN, "id")),
    ("anonymous + PPI, Privacy: id", ANON, f"<sip:{OWN}@x>", "id", IDS_REJECT, (OWN, "id")),
    ("anonymous, upper case", "SIP:Anonymous@Anonymous.Invalid", f"<sip:{OWN}@x>", None,
     IDS_REJECT, (OWN, "id")),
    ("anonymous, nothing provable, replace", ANON, None, None, IDS_REPLACE, (DEFAULT, "id")),
    ("anonymous, nothing provable, reject", ANON, None, None, IDS_REJECT,
     "anonymous-without-identity"),
    ("anonymous + Privacy: none is still private", ANON, None, "none", IDS_REPLACE,
     (DEFAULT, "id")),
    ("nothing provisioned", f"sip:{OWN}@x", None, None, CallerIds(), "caller-id-not-allowed"),
    ("replace without default rejects", "sip:pbx@x", None, None,
     CallerIds(allow=(OWN,), policy="replace"), "caller-id-not-allowed"),
]


@pytest.mark.parametrize(("from_uri", "ppi", "privacy", "ids", "want"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_caller_identity_is_asserted_replaced_or_refused_as_provisioned(
        from_uri: str, ppi: str | None, privacy: str | None, ids: CallerIds,
        want: tuple[str, str | None] | str) -> None:
    got = settle(IdentityFacts(from_uri, ppi, privacy), ids, BASE)
    if isinstance(want, str):
        assert got == IdentityRefused(want)
        return
    asserted, privacy_header = want
    assert isinstance(got, IdentityEdits)
    assert got.asserted == asserted
    assert got.add[0] == pai(asserted)
    assert [h for h in got.add if h.startswith("Privacy:")] == (
        [f"Privacy: {privacy_header}"] if privacy_header else [])
    assert got.private == (privacy_header is not None and "id" in privacy_header)


FROMS = [f"sip:{OWN}@x", f"sip:{OTHER}@x", "sip:pbx@x", ANON]
PPIS = [None, f"<sip:{OWN}@x>", f"<sip:{OTHER}@x>", "garbage"]
PRIVACIES = [None, "id", "header", "user", "none", "session", "bogus"]
POLICY_SETS = [IDS_REJECT, IDS_REPLACE, CallerIds(allow=(OWN,), policy="reject")]


@pytest.mark.parametrize(("from_uri", "ppi", "privacy", "ids"),
                         list(itertools.product(FROMS, PPIS, PRIVACIES, POLICY_SETS)))
def test_every_combination_keeps_the_invariants(
    from_uri: str, ppi: str | None, privacy: str | None, ids: CallerIds
) -> None:
    got = settle(IdentityFacts(from_uri, ppi, privacy), ids, BASE)
    wants_privacy = is_anonymous(from_uri) or privacy in ("id", "header", "user")
    if isinstance(got, IdentityRefused):
        # refused only when nothing allowed was presented and there is no default to use
        assert ids.policy == "reject" or not ids.default
        return
    # whatever the customer sent, its identity headers never pass as they came
    assert {"P-Asserted-Identity", "P-Preferred-Identity", "Remote-Party-ID"} <= set(got.remove)
    # exactly one PAI, always a number this account may present, or its default
    pais = [h for h in got.add if h.startswith("P-Asserted-Identity:")]
    assert pais == [pai(got.asserted)]
    assert ids.allows(got.asserted) or got.asserted == ids.default
    # privacy requested: Privacy carries id; nothing the customer wrote is copied
    privacy_lines = [h for h in got.add if h.startswith("Privacy:")]
    assert got.private == wants_privacy
    if wants_privacy:
        assert privacy_lines and "id" in privacy_lines[0].split(": ")[1].split(";")
    assert all("\r" not in h and "\n" not in h and "bogus" not in h for h in got.add)


@pytest.mark.parametrize(("text", "want"), [
    ("+31201234567", "+31201234567"), ("31201234567", "+31201234567"),
    ("0031 20 123 4567", "+31201234567"), ("(020) 123-4567", "+0201234567"),
    ("+1234567", None), ("abc", None), ("", None), ("+3120123456789012", None),
])
def test_presented_numbers_normalise_to_e164_or_nothing(text: str, want: str | None) -> None:
    assert normalize_number(text) == want


@pytest.mark.parametrize(("value", "want"), [
    ('"Alice" <sip:+31201234567@x;user=phone>', "+31201234567"),
    ("<tel:+31-20-123-4567>", "+31201234567"),
    ("sips:+31201234567@x", "+31201234567"),
    ("<sip:pbx@x>", None), ("<sip:x>", None), ("<http://x>", None),
])
def test_the_number_of_a_sip_or_tel_uri_is_its_e164_user(value: str, want: str | None) -> None:
    assert uri_number(value) == want


def test_privacy_keeps_only_rfc_3323_values_and_none_excludes_the_rest() -> None:
    assert privacy_values("id; header") == ("id", "header")
    assert privacy_values("none;id") == ("none",)
    assert privacy_values("ID,critical,x") == ("id", "critical")
    assert privacy_values(None) == ()


def test_caller_ids_allow_exact_numbers_and_prefix_ranges() -> None:
    ids = CallerIds(allow=("+3120*", "+4420000000"))
    assert ids.allows("+31201234567") and ids.allows("+4420000000")
    assert not ids.allows("+4420000001") and not ids.allows("+3121000000")


ACCOUNT = "31000000"
ACCOUNT_CASES = [
    # id, from, PPI, caller IDs, expected (asserted, private) or refusal
    ("softphone: From user is the username", f"sip:{ACCOUNT}@acme.{BASE}", None, IDS_REJECT,
     (DEFAULT, False)),
    ("softphone, username any case", f"<sip:{ACCOUNT}@acme.{BASE};transport=tcp>", None,
     IDS_REJECT, (DEFAULT, False)),
    ("softphone, account without a default", f"sip:{ACCOUNT}@x", None,
     CallerIds(allow=(OWN,), policy="reject"), "no-default-caller-id"),
    ("account presenting its own number", f"sip:{OWN}@x", None, IDS_REJECT, (OWN, False)),
    ("account presenting a foreign number is still refused", f"sip:{OTHER}@x", None,
     IDS_REJECT, "caller-id-not-allowed"),
    ("account's PPI still counts", f"sip:{ACCOUNT}@x", f"<sip:{OTHER}@x>", IDS_REJECT,
     "caller-id-not-allowed"),
    ("anonymous account gets its default, private", ANON, None, IDS_REJECT, (DEFAULT, True)),
    ("anonymous account without a default", ANON, None, CallerIds(allow=(OWN,)),
     "no-default-caller-id"),
]


@pytest.mark.parametrize(("from_uri", "ppi", "ids", "want"), [c[1:] for c in ACCOUNT_CASES],
                         ids=[c[0] for c in ACCOUNT_CASES])
def test_an_account_that_presents_no_number_gets_its_default_caller_id(
        from_uri: str, ppi: str | None, ids: CallerIds, want: tuple[str, bool] | str) -> None:
    got = settle(IdentityFacts(from_uri, ppi, None, account=ACCOUNT), ids, BASE)
    if isinstance(want, str):
        assert got == IdentityRefused(want)
        return
    assert isinstance(got, IdentityEdits)
    assert (got.asserted, got.private) == want


@pytest.mark.parametrize(("from_uri", "anonymous"), [
    ("sip:anonymous@anonymous.invalid", True),
    ('"Anonymous" <sip:Anonymous@anoymous.invalid>', True),  # sic, as PBXs write it
    ("<sip:anonymous@pbx.example.com>", True),
    ("sip:anonymous@192.0.2.10:5060;transport=udp", True),
    ("sips:ANONYMOUS@x", True),
    ("sip:caller@anonymous.invalid", True),
    ("<sip:restricted@pbx.example.com>", True),
    ("sip:Unavailable@x", True),
    ("sip:private@x", True),
    ("sip:withheld@x", True),
    ("sip:unknown@x", True),
    ("sip:+31201234567@x", False),
    ("sip:anonymousx@x", False),
    ("tel:anonymous", False),
    ("sip:x.invalid", False),
    ("", False),
])
def test_a_withheld_number_in_any_common_form_asks_for_privacy(from_uri: str,
                                                               anonymous: bool) -> None:
    assert is_anonymous(from_uri) is anonymous
