"""Transports, and what the sips: scheme asks of them (RFC 3261 §26.2.2, RFC 5630). Pure.

A sips: Request-URI asks for TLS on every hop up to the domain's proxy, which the edge is
(RFC 5630 removes RFC 3261's last-hop exception): the edge accepts one only over TLS and
answers any other transport 416 Unsupported URI Scheme (RFC 3261 §8.2.2.1, §21.4.17).
Beyond the edge, inside the trusted realm, a POP leg follows its gateway's URI: TLS where
the URI says `;transport=tls`, else UDP, and a sips: Request-URI is sent as sip: on a leg
that is not TLS.
"""

from __future__ import annotations

SECURE = frozenset({"tls", "wss"})
"""Kamailio's protocol names ($pr) of transports secured by TLS."""
CONNECTED = frozenset({"tcp", "tls", "ws", "wss"})
"""... of connection-oriented transports: the connection is the way back to the peer."""

UNSUPPORTED_SCHEME = (416, "Unsupported URI Scheme")


def scheme(uri: str) -> str:
    """A URI's scheme in lower case ("sip", "sips", "tel", ...)."""
    return uri.partition(":")[0].lower()


def refuses_sips(ruri: str, proto: str) -> bool:
    """A sips: Request-URI that did not arrive over TLS (answered UNSUPPORTED_SCHEME)."""
    return proto not in SECURE and scheme(ruri) == "sips"


def uri_transport(uri: str) -> str:
    """The transport a SIP URI asks for: its `transport=` parameter, else TLS for sips:
    and UDP for sip: (RFC 3263 §4.1 without DNS: the gateways are addresses)."""
    params = uri.split(";")[1:]
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "transport" and value:
            return value.strip().lower()
    return "tls" if scheme(uri) == "sips" else "udp"


def pop_leg_uri(ruri: str, gateway: str) -> str | None:
    """The Request-URI of the leg to `gateway` (its URI): a sips: one becomes sip: unless
    that leg is TLS; None when it goes as it is."""
    if scheme(ruri) != "sips" or uri_transport(gateway) in SECURE:
        return None
    return "sip:" + ruri.partition(":")[2]


def listener_transport(socket: str) -> str:
    """The transport of a `listen` socket such as "tls:127.0.0.1:5061"."""
    return socket.partition(":")[0].lower()
