"""What a customer's request loses at the border of the trusted realm."""

from __future__ import annotations

from trunkedge.core.border import removed_in_dialog, removed_initially

INTERNAL = ("P-Charging-Vector", "P-Charge-Info")


def test_credentials_identity_and_internal_headers_never_pass_inside_a_dialog() -> None:
    removed = removed_in_dialog(INTERNAL)
    assert {"Proxy-Authorization", "Authorization", "P-Asserted-Identity",
            "P-Preferred-Identity", "Remote-Party-ID", *INTERNAL} == set(removed)
    assert "Route" not in removed  # inside a dialog the edge's Record-Route set is followed


def test_an_initial_request_also_loses_the_customers_route_set() -> None:
    assert removed_initially(INTERNAL) == ("Route", *removed_in_dialog(INTERNAL))


def test_a_header_named_twice_is_removed_once() -> None:
    assert removed_in_dialog(("Authorization",)).count("Authorization") == 1
