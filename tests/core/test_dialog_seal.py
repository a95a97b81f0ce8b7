"""The signed dialog token in the Record-Route set (`te=`): in-dialog requests follow only
a route set this cluster signed for this Call-ID."""

from __future__ import annotations

from trunkedge.core.dialog_seal import DialogSeal, route_token


def test_a_token_opens_only_its_own_dialog_on_its_cluster_and_carries_privacy() -> None:
    seal = DialogSeal("k")
    params = seal.route_params("call-1", private=True)
    route = f"<sip:192.0.2.1:5060;lr;ftag=abc{params}>, <sip:gw@198.51.100.1;lr>"
    assert route_token(route) == params.split("=", 1)[1]
    assert seal.check(route, "call-1") is True
    assert seal.check(route.replace(params, seal.route_params("call-1", False)),
                      "call-1") is False
    assert seal.check(route, "call-2") is None  # another dialog's token
    assert DialogSeal("k2").check(route, "call-1") is None  # another cluster's secret
    forged = route.replace(";te=p", ";te=n")  # flip the privacy flag
    assert seal.check(forged, "call-1") is None
    assert seal.check("<sip:192.0.2.1;lr>", "call-1") is None
    assert seal.check(None, "call-1") is None
