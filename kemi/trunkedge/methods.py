"""What the edge does with each SIP method outside a dialog.

The edge is a termination trunk: it carries calls (INVITE) to the POPs and nothing else.
"""

from __future__ import annotations

import enum

ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, PRACK, INFO"
"""Methods the edge carries (in-dialog ones included), for Allow headers."""


class OutOfDialog(enum.Enum):
    ADMIT = "admit"  # INVITE: admission, then relay to a POP
    KEEPALIVE = "keepalive"  # OPTIONS: answered 200 by the edge itself
    CANCEL = "cancel"  # relayed if it matches a transaction, else 481
    ACK = "ack"  # relayed if it matches a transaction, else dropped
    NO_DIALOG = "no-dialog"  # BYE, UPDATE, PRACK, INFO without To-tag: 481
    NOT_ALLOWED = "not-allowed"  # REGISTER, SUBSCRIBE, MESSAGE, ...: 405 with Allow


_KINDS = {
    "INVITE": OutOfDialog.ADMIT,
    "OPTIONS": OutOfDialog.KEEPALIVE,
    "CANCEL": OutOfDialog.CANCEL,
    "ACK": OutOfDialog.ACK,
    "BYE": OutOfDialog.NO_DIALOG,
    "UPDATE": OutOfDialog.NO_DIALOG,
    "PRACK": OutOfDialog.NO_DIALOG,
    "INFO": OutOfDialog.NO_DIALOG,
}


def classify(method: str) -> OutOfDialog:
    """Classify an out-of-dialog request by method (case-sensitive, as RFC 3261 says)."""
    return _KINDS.get(method, OutOfDialog.NOT_ALLOWED)
