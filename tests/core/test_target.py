"""Which customer domain, and which POP, a Request-URI host names."""

from __future__ import annotations

import pytest

from trunkedge.core.target import Target, parse_target

BASE = "sip.example.net"
POPS = frozenset({"eu1", "eu2", "us1", "us2", "apac1", "apac2"})


@pytest.mark.parametrize(
    ("host", "want"),
    [
        pytest.param("acme.sip.example.net", Target("acme", None), id="default-form"),
        pytest.param("ACME.SIP.Example.NET", Target("acme", None), id="any-case"),
        pytest.param("acme.sip.example.net.", Target("acme", None), id="trailing-dot"),
        pytest.param("a1.us2.sip.example.net", Target("a1", "us2"), id="pinned-us2"),
        pytest.param("acme.apac1.sip.example.net", Target("acme", "apac1"), id="pinned-apac1"),
        pytest.param("acme.eu9.sip.example.net", None, id="not-a-pop"),
        pytest.param("acme.x.us1.sip.example.net", None, id="extra-label"),
        pytest.param("sip.example.net", None, id="base-domain-itself"),
        pytest.param(".sip.example.net", None, id="empty-name"),
        pytest.param("ac-me.sip.example.net", None, id="hyphen-in-name"),
        pytest.param("ac_me.sip.example.net", None, id="underscore-in-name"),
        pytest.param("acme.sip.example.org", None, id="other-base-domain"),
        pytest.param("acmesip.example.net", None, id="no-dot-before-base"),
        pytest.param("127.0.0.1", None, id="ip-address"),
        pytest.param("", None, id="empty"),
    ],
)
def test_host_names_a_domain_and_maybe_a_pop_or_is_not_ours(
        host: str, want: Target | None) -> None:
    assert parse_target(host, BASE, POPS) == want
