"""What the edge does with each SIP method outside a dialog.

The edge is a termination trunk: it carries calls (INVITE) to the POPs and nothing else.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from trunkedge.core.reasons import Reason

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


@dataclass(frozen=True)
class Answer:
    """What the edge itself answers to a request it does not relay."""

    code: int
    phrase: str
    allow: bool = False  # with an Allow header listing ALLOW
    reason: Reason | None = None  # a refusal (logged and counted), or None


LOCAL_ANSWERS = {
    OutOfDialog.KEEPALIVE: Answer(200, "OK", allow=True),
    OutOfDialog.NO_DIALOG: Answer(481, "Call/Transaction Does Not Exist"),
    OutOfDialog.NOT_ALLOWED: Answer(405, "Method Not Allowed", allow=True,
                                    reason=Reason.METHOD_NOT_ALLOWED),
}
"""The edge's own answers: OPTIONS keepalives (RFC 3261 §11), requests that need a dialog
(§12.2.2: 481), and methods a trunk does not carry (§8.2.1: 405 with Allow)."""
