"""What the edge does with each method outside a dialog."""

from __future__ import annotations

import pytest

from trunkedge.core.methods import OutOfDialog, classify


@pytest.mark.parametrize(
    ("method", "kind"),
    [("INVITE", OutOfDialog.ADMIT), ("OPTIONS", OutOfDialog.KEEPALIVE),
     ("CANCEL", OutOfDialog.CANCEL), ("ACK", OutOfDialog.ACK), ("BYE", OutOfDialog.NO_DIALOG),
     ("REGISTER", OutOfDialog.NOT_ALLOWED), ("SUBSCRIBE", OutOfDialog.NOT_ALLOWED),
     ("MESSAGE", OutOfDialog.NOT_ALLOWED), ("invite", OutOfDialog.NOT_ALLOWED)],
    ids=["INVITE-admitted", "OPTIONS-keepalive", "CANCEL", "ACK", "BYE-needs-a-dialog",
         "REGISTER-not-allowed", "SUBSCRIBE-not-allowed", "MESSAGE-not-allowed",
         "lower-case-is-another-method"],
)
def test_each_out_of_dialog_method_gets_its_handling(method: str, kind: OutOfDialog) -> None:
    assert classify(method) is kind
