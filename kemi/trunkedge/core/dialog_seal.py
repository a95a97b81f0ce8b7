"""A Record-Route token proving that the edge admitted a dialog. Pure.

In-dialog requests are relayed only when their Route carries the token of their Call-ID,
so nobody can use a forged Route set to send an unauthenticated request to a POP. The
token also seals whether the caller asked for privacy, which the whole dialog honours.
It is a keyed BLAKE2s MAC (a PRF, as HMAC is, and cheaper per call) of Call-ID and flag.
"""

from __future__ import annotations

import hashlib
import hmac

PARAM = "te"
_PRIVATE, _PUBLIC = "p", "n"


class DialogSeal:
    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(f"trunkedge-dialog:{secret}".encode()).digest()

    def token(self, call_id: str, private: bool) -> str:
        flag = _PRIVATE if private else _PUBLIC
        mac = hashlib.blake2s(f"{flag}|{call_id}".encode(), key=self._key, digest_size=10)
        return flag + mac.hexdigest()

    def route_params(self, call_id: str, private: bool) -> str:
        """The parameters the edge adds to its Record-Route: `;te=<flag><mac>`."""
        return f";{PARAM}={self.token(call_id, private)}"

    def check(self, route: str | None, call_id: str) -> bool | None:
        """From the first Route header: None if the token is missing or forged, else
        whether the dialog is private."""
        token = route_token(route)
        if not token or token[0] not in (_PRIVATE, _PUBLIC):
            return None
        private = token[0] == _PRIVATE
        return private if hmac.compare_digest(token, self.token(call_id, private)) else None


def route_token(route: str | None) -> str | None:
    """The token in the first Route header's URI (the edge's own Record-Route)."""
    if not route:
        return None
    uri = route.split(",", 1)[0]
    uri = uri[uri.find("<") + 1: uri.find(">")] if "<" in uri else uri
    for param in uri.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == PARAM:
            return value.strip()
    return None
