"""A Record-Route token proving that the edge admitted a dialog.

In-dialog requests are relayed only when their Route carries the token of their Call-ID,
so nobody can use a forged Route set to send an unauthenticated request to a POP.
"""

from __future__ import annotations

import hashlib
import hmac

PARAM = "te"


def dialog_token(secret: str, call_id: str) -> str:
    mac = hmac.new(secret.encode(), call_id.encode(), hashlib.sha256)
    return mac.hexdigest()[:20]


def route_param(secret: str, call_id: str) -> str:
    """The Record-Route URI parameter, `te=<token>`."""
    return f"{PARAM}={dialog_token(secret, call_id)}"
