"""Request-URI host parsing, names and numbers."""

from __future__ import annotations

import pytest

from trunkedge import names
from trunkedge.errors import ConfigError
from trunkedge.methods import OutOfDialog, classify
from trunkedge.target import Target, parse_target

BASE = "sip.example.net"
POPS = frozenset({"eu1", "eu2", "us1", "us2", "apac1", "apac2"})


@pytest.mark.parametrize(
    ("host", "want"),
    [
        ("acme.sip.example.net", Target("acme", None)),
        ("ACME.SIP.Example.NET", Target("acme", None)),
        ("acme.sip.example.net.", Target("acme", None)),
        ("a1.us2.sip.example.net", Target("a1", "us2")),
        ("acme.apac1.sip.example.net", Target("acme", "apac1")),
        ("acme.eu9.sip.example.net", None),  # not a POP
        ("acme.x.us1.sip.example.net", None),
        ("sip.example.net", None),
        (".sip.example.net", None),
        ("ac-me.sip.example.net", None),
        ("ac_me.sip.example.net", None),
        ("acme.sip.example.org", None),
        ("acmesip.example.net", None),
        ("127.0.0.1", None),
        ("", None),
    ],
)
def test_parse_target(host: str, want: Target | None) -> None:
    assert parse_target(host, BASE, POPS) == want


@pytest.mark.parametrize("user", ["12345678", "+12345678", "+123456789012345", "3123456789"])
def test_e164_accepts(user: str) -> None:
    assert names.is_e164(user)


FULLWIDTH_DIGITS = "".join(chr(0xFF10 + d) for d in range(9))


@pytest.mark.parametrize("user", ["", "+", "1234567", "1234567890123456", "++12345678",
                                  "12 345678", "12345678;x", FULLWIDTH_DIGITS])
def test_e164_refuses(user: str) -> None:
    assert not names.is_e164(user)


def test_domain_names_are_lower_cased_and_validated() -> None:
    assert names.domain_name("AcMe42") == "acme42"
    for bad in ("", "ac-me", "a.b", "a" * 64, 42, "acmé"):
        with pytest.raises(ConfigError) as e:
            names.domain_name(bad)
        assert e.value.field == "domain"


def test_networks() -> None:
    assert str(names.network("192.0.2.7")) == "192.0.2.7/32"
    assert str(names.network("2001:DB8::/32")) == "2001:db8::/32"
    for bad in ("192.0.2.1/24", "300.1.1.1", "::g", "", None):
        with pytest.raises(ConfigError):
            names.network(bad)


@pytest.mark.parametrize(
    ("method", "kind"),
    [("INVITE", OutOfDialog.ADMIT), ("OPTIONS", OutOfDialog.KEEPALIVE),
     ("CANCEL", OutOfDialog.CANCEL), ("ACK", OutOfDialog.ACK), ("BYE", OutOfDialog.NO_DIALOG),
     ("REGISTER", OutOfDialog.NOT_ALLOWED), ("SUBSCRIBE", OutOfDialog.NOT_ALLOWED),
     ("MESSAGE", OutOfDialog.NOT_ALLOWED), ("invite", OutOfDialog.NOT_ALLOWED)],
)
def test_methods(method: str, kind: OutOfDialog) -> None:
    assert classify(method) is kind
