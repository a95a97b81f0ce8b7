"""Customer limits: which scopes a call counts against, and the held-channel token."""

from __future__ import annotations

import pytest

from trunkedge.core.limits import (
    NO_LIMITS,
    Held,
    Limits,
    Scope,
    bucket_size,
    channel_scopes,
    scopes_of,
)


@pytest.mark.parametrize(("cps", "size"), [(0, 1), (1, 1), (4, 1), (20, 5), (1000, 250)])
def test_a_cps_limit_allows_a_quarter_second_burst_and_at_least_one_call(cps: int,
                                                                          size: int) -> None:
    assert bucket_size(cps) == size


def test_a_call_counts_against_its_domain_and_its_authenticated_account() -> None:
    dom, acct = Limits(cps=10), Limits(channels=2)
    assert scopes_of("acme", dom, "31000000", acct) == (
        Scope("d:acme", dom), Scope("u:31000000", acct))
    assert scopes_of("acme", dom, None, acct) == (Scope("d:acme", dom),)  # by address
    assert scopes_of("acme", NO_LIMITS, "31000000", NO_LIMITS) == ()  # nothing to count


def test_only_channel_limits_hold_a_channel_until_the_call_ends() -> None:
    scopes = (Scope("d:acme", Limits(cps=10)), Scope("u:1", Limits(channels=0)))
    assert channel_scopes(scopes) == ("u:1",)
    assert not NO_LIMITS.limited and Limits(channels=0).limited


def test_a_held_call_survives_its_round_trip_through_the_dialog() -> None:
    held = Held("edge-1a2b:0011223344556677", ("d:acme", "u:31000000"))
    assert Held.decode(held.encode()) == held
    assert Held.decode("member-without-scopes") is None
    assert Held.decode("") is None and Held.decode("  ") is None  # a dialog that holds none
