"""A Record-Route token proving that the edge admitted a dialog.

In-dialog requests are relayed only when their Route carries the token of their Call-ID,
so nobody can use a forged Route set to send an unauthenticated request to a POP. The
token also seals whether the caller asked for privacy, which the whole dialog honours.
"""

from __future__ import annotations

import hashlib
import hmac

PARAM = "te"


def dialog_token(secret: str, call_id: str, private: bool = False) -> str:
    message = f"{call_id}|{'p' if private else '-'}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()[:20]


def route_param(secret: str, call_id: str, private: bool = False) -> str:
    """The Record-Route URI parameter, `te=<token>`."""
    return f"{PARAM}={dialog_token(secret, call_id, private)}"
