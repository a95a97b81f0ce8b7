"""Transports and the sips: scheme (RFC 3261 §26.2.2, RFC 5630): what is refused 416,
and what Request-URI a POP leg gets."""

from __future__ import annotations

import pytest

from trunkedge.core.transports import (
    UNSUPPORTED_SCHEME,
    listener_transport,
    pop_leg_uri,
    refuses_sips,
    scheme,
    uri_transport,
)

SIPS = "sips:+31201234567@acme.sip.example.net"


@pytest.mark.parametrize(("proto", "refused"), [
    ("tls", False), ("wss", False), ("udp", True), ("tcp", True), ("ws", True), ("sctp", True),
])
def test_a_sips_request_uri_is_taken_only_over_tls(proto: str, refused: bool) -> None:
    assert refuses_sips(SIPS, proto) is refused
    assert refuses_sips(SIPS.upper(), proto) is refused  # schemes compare case-insensitively


@pytest.mark.parametrize("proto", ["udp", "tcp", "tls"])
def test_a_sip_request_uri_is_taken_over_any_transport(proto: str) -> None:
    assert not refuses_sips("sip:+31201234567@acme.sip.example.net", proto)
    assert not refuses_sips("tel:+31201234567", proto)


def test_the_refusal_is_416_unsupported_uri_scheme() -> None:
    assert UNSUPPORTED_SCHEME == (416, "Unsupported URI Scheme")


@pytest.mark.parametrize(("uri", "transport"), [
    ("sip:127.0.0.1:5070", "udp"),
    ("sip:10.0.0.1;transport=tls", "tls"),
    ("sip:10.0.0.1:5061;lr;Transport=TLS", "tls"),
    ("sip:[2001:db8::1]:5060;transport=tcp", "tcp"),
    ("sips:gw.example.net", "tls"),
])
def test_a_gateway_uri_names_its_transport(uri: str, transport: str) -> None:
    assert uri_transport(uri) == transport


def test_a_sips_request_uri_goes_as_sip_on_a_leg_that_is_not_tls() -> None:
    assert pop_leg_uri(SIPS, "sip:127.0.0.1:5070") == "sip:+31201234567@acme.sip.example.net"
    assert pop_leg_uri(SIPS, "sip:10.0.0.1:5061;transport=tls") is None
    assert pop_leg_uri("sip:+31201234567@acme.sip.example.net", "sip:127.0.0.1") is None


def test_listeners_and_schemes() -> None:
    assert listener_transport("tls:127.0.0.1:5061") == "tls"
    assert listener_transport("UDP:[::1]:5060") == "udp"
    assert scheme("SIPS:x@y") == "sips" and scheme("tel:+1") == "tel"
