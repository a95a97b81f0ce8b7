"""Why the edge refused or dropped a request: one name per reason, for logs, counters and
tests alike. Pure.

A reason carries what follows from it (whether it counts towards a brute-force ban), so
no caller decides that from the reason's spelling.
"""

from __future__ import annotations

import enum


class Reason(enum.StrEnum):
    """A refusal's reason (answered with a SIP status; the value is what logs show)."""

    FOREIGN_HOST = "foreign-host"  # the Request-URI host is not ours
    UNKNOWN_DOMAIN = "unknown-domain"
    BAD_SOURCE_ADDRESS = "bad-source-address"
    ADDRESS_NOT_ALLOWED = "address-not-allowed"  # no attached ACL could admit the source
    AUTH_USER_NOT_FROM_USER = "auth-user-not-from-user"
    WRONG_CREDENTIALS = "wrong-credentials"  # detail: response, uri, nonce, replay, ...
    NOT_E164 = "not-e164"
    NO_POP_CONFIGURED = "no-pop-configured"
    CALLER_ID_NOT_ALLOWED = "caller-id-not-allowed"
    ANONYMOUS_WITHOUT_IDENTITY = "anonymous-without-identity"
    NO_DEFAULT_CALLER_ID = "no-default-caller-id"  # an account presenting none has none
    OVER_CPS = "over-cps"  # the domain's or account's calls per second
    OVER_CHANNELS = "over-channels"  # the domain's or account's calls in progress
    STORE_UNAVAILABLE = "store-unavailable"
    NO_GATEWAY_UP = "no-gateway-up"
    ALL_GATEWAYS_FAILED = "all-gateways-failed"
    METHOD_NOT_ALLOWED = "method-not-allowed"
    MALFORMED = "malformed"  # failed the strict syntax checks (RFC 4475)
    SIPS_WITHOUT_TLS = "sips-without-tls"  # a sips: Request-URI not over TLS (RFC 5630): 416
    FORGED_ROUTE = "forged-route"  # in-dialog request without the edge's dialog seal

    @property
    def counts_towards_ban(self) -> bool:
        """Failed authentications: repeated from one address, they get it banned."""
        return self in _AUTH_FAILURES


_AUTH_FAILURES = frozenset({Reason.WRONG_CREDENTIALS, Reason.AUTH_USER_NOT_FROM_USER})


class Drop(enum.StrEnum):
    """Why a request got no answer at all (attackers learn nothing)."""

    SCANNER = "scanner"
    FLOOD = "flood"
    BANNED = "banned"
