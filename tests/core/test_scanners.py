"""Scanner User-Agents are recognised (and then dropped by the edge)."""

from __future__ import annotations

from trunkedge.core.scanners import is_scanner


def test_scanner_user_agents_are_recognised_in_any_case_and_pbxes_are_not() -> None:
    sigs = ("friendly-scanner", "sipvicious")
    assert is_scanner("friendly-scanner", sigs) and is_scanner("SIPVicious 0.3", sigs)
    assert not is_scanner("Asterisk PBX 20", sigs) and not is_scanner(None, sigs)
