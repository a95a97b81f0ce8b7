"""Refusal reasons: one name each, and the ban rule a property of the reason."""

from __future__ import annotations

import pytest

from trunkedge.core.reasons import Reason


@pytest.mark.parametrize("reason", [Reason.WRONG_CREDENTIALS, Reason.AUTH_USER_NOT_FROM_USER])
def test_failed_authentications_count_towards_a_ban(reason: Reason) -> None:
    assert reason.counts_towards_ban


@pytest.mark.parametrize("reason", [r for r in Reason if r not in (
    Reason.WRONG_CREDENTIALS, Reason.AUTH_USER_NOT_FROM_USER)], ids=str)
def test_no_other_refusal_counts_towards_a_ban(reason: Reason) -> None:
    assert not reason.counts_towards_ban


def test_reasons_log_as_their_value() -> None:
    assert f"reason={Reason.NOT_E164}" == "reason=not-e164"
    assert len({r.value for r in Reason}) == len(Reason)
