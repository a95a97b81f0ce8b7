"""The order in which a call tries the POPs, and the dispatcher data rendered for it."""

from __future__ import annotations

import itertools

import pytest

from trunkedge.core.pops import (
    POP_NAMES,
    REGION_OF,
    Gateway,
    PopPlan,
    attempt_order,
    dispatcher_list,
    dispatcher_rules,
    gateway_unreachable,
    should_fail_over,
)

ALL = dict.fromkeys(POP_NAMES)
REGION_ORDER = ("eu", "us", "apac")


@pytest.mark.parametrize(
    ("pinned", "domain_pop", "want"),
    [
        (None, None, ("eu1", "eu2", "us1", "us2", "apac1", "apac2")),
        (None, "eu2", ("eu2", "eu1", "us1", "us2", "apac1", "apac2")),
        (None, "us2", ("us2", "us1", "eu1", "eu2", "apac1", "apac2")),
        (None, "apac1", ("apac1", "apac2", "eu1", "eu2", "us1", "us2")),
        ("eu1", None, ("eu1", "eu2")),
        ("eu2", None, ("eu2", "eu1")),
        ("us1", None, ("us1", "us2")),
        ("us2", "eu1", ("us2", "us1")),  # the pinned form wins over the domain's POP
        ("apac1", None, ("apac1", "apac2")),
        ("apac2", None, ("apac2", "apac1")),
    ],
    ids=["default", "domain-eu2", "domain-us2", "domain-apac1", "pinned-eu1", "pinned-eu2",
         "pinned-us1", "pinned-us2-over-domain-eu1", "pinned-apac1", "pinned-apac2"],
)
def test_a_call_tries_its_pop_then_its_region_then_the_other_regions(
        pinned: str | None, domain_pop: str | None, want: tuple[str, ...]) -> None:
    assert attempt_order(pinned, domain_pop, "eu1", REGION_ORDER, ALL) == want


def test_region_order_is_a_setting() -> None:
    order = attempt_order(None, None, "eu1", ("eu", "apac", "us"), ALL)
    assert order == ("eu1", "eu2", "apac1", "apac2", "us1", "us2")


@pytest.mark.parametrize(
    ("pinned", "configured"),
    [pytest.param(pinned, configured, id=f"{pinned or 'default'}-with-"
                  f"{'all' if configured is ALL else '+'.join(configured) or 'none'}")
     for pinned, configured in itertools.product(
         [None, *POP_NAMES],
         [ALL, {"eu1": 0, "us1": 0}, {"us2": 0}, {"apac1": 0, "apac2": 0}, {}])],
)
def test_every_form_and_configuration_stays_in_bounds(
        pinned: str | None, configured: dict[str, int]) -> None:
    order = attempt_order(pinned, None, "eu1", REGION_ORDER, configured)
    assert len(set(order)) == len(order)
    assert set(order) <= set(configured)
    if pinned is None:
        assert set(order) == set(configured)  # the default form may use every region
        if order and ("eu1" in configured or "eu2" in configured):
            assert REGION_OF[order[0]] == "eu"
    else:
        # the pinned form never leaves its region; its own POP comes first
        assert {REGION_OF[p] for p in order} <= {REGION_OF[pinned]}
        if pinned in configured:
            assert order[0] == pinned


def test_the_plan_skips_pops_without_gateways() -> None:
    plan = PopPlan("eu1", REGION_ORDER, frozenset({"eu2", "us1"}))
    assert plan.order(None, None) == ("eu2", "us1")
    assert plan.order("eu1", None) == ("eu2",)
    assert plan.order("apac1", None) == ()


def test_each_pop_is_a_dispatcher_set_with_priorities_and_weights() -> None:
    gws = {"eu1": (Gateway("sip:192.0.2.1:5060", priority=10), Gateway("sip:192.0.2.2")),
           "us1": (Gateway("sip:198.51.100.1", weight=50), Gateway("sip:198.51.100.2", weight=50))}
    assert dispatcher_rules(("eu1", "us1"), gws) == "1=8;3=9"
    text = dispatcher_list(gws)
    assert "1 sip:192.0.2.1:5060 8 10 pop=eu1\n" in text
    assert "3 sip:198.51.100.1 8 0 pop=us1;weight=50\n" in text


@pytest.mark.parametrize("code", [408, 477, 500, 502, 503, 504])
def test_silence_and_server_failures_fail_over(code: int) -> None:
    assert should_fail_over(code)


@pytest.mark.parametrize("code", [400, 403, 404, 480, 484, 486, 487, 488, 501, 600, 603])
def test_definitive_answers_go_back_without_failover(code: int) -> None:
    assert not should_fail_over(code)


def test_only_silent_or_unreachable_gateways_are_marked_down() -> None:
    assert gateway_unreachable(408, replied=False)
    assert gateway_unreachable(477, replied=False)
    assert not gateway_unreachable(408, replied=True)  # it answered 100, then no final
    assert not gateway_unreachable(503, replied=True)
