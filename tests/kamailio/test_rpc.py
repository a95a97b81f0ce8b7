"""`trunkedge status`: dispatcher's list and the edge's counters read into one report."""

from __future__ import annotations

from trunkedge.core import counters
from trunkedge.core.reasons import Drop, Reason
from trunkedge.kamailio.rpc import counters_of, status

GW1, GW2 = "sip:127.0.0.1:5091", "sip:127.0.0.1:5092"
DS_LIST = {"NRSETS": 2, "RECORDS": [
    {"SET": {"ID": 1, "TARGETS": [{"DEST": {"URI": GW1, "FLAGS": "AP", "PRIORITY": 0}}]}},
    {"SET": {"ID": 2, "TARGETS": [{"DEST": {"URI": GW2, "FLAGS": "IP", "PRIORITY": 0}}]}},
    {"SET": {"ID": 99, "TARGETS": [{"DEST": {"URI": "sip:x", "FLAGS": "AP"}}]}},
]}


def test_counters_are_read_from_the_htable_dump() -> None:
    dump = [{"entry": 0, "slot": [{"name": "sent:eu1", "value": 3}]},
            {"entry": 1, "slot": [{"name": "banned", "value": 1}]}]
    assert counters_of(dump) == {"sent:eu1": 3, "banned": 1}


def test_status_shows_each_gateway_with_its_state_and_counters() -> None:
    metrics = {counters.sent("eu1"): 4, counters.sent("eu1", GW1): 4,
               counters.failover("eu2"): 1, counters.failover("eu2", GW2): 1}
    report = status(DS_LIST, metrics)
    assert list(report["pops"]) == ["eu1", "eu2"]  # set 99 is no POP of ours
    assert report["pops"]["eu1"] == {"sent": 4, "failovers": 0, "gateways": [
        {"uri": GW1, "state": "active", "probing": True, "sent": 4, "failovers": 0}]}
    assert report["pops"]["eu2"]["gateways"][0]["state"] == "inactive"
    assert report["pops"]["eu2"]["failovers"] == 1


def test_status_groups_admissions_refusals_and_drops_by_their_names() -> None:
    metrics = {counters.admitted("office"): 2, counters.refused(Reason.NOT_E164): 1,
               counters.dropped(Drop.FLOOD): 7, counters.BANNED: 1}
    report = status({}, metrics)
    assert report["admitted"] == {"office": 2}
    assert report["refused"] == {"not-e164": 1}
    assert report["dropped"] == {"flood": 7}
    assert report["banned"] == 1


def test_listeners_are_read_from_core_sockets_list_as_the_settings_spell_them() -> None:
    from trunkedge.kamailio.rpc import listeners

    sockets = [{"socket": {"proto": "udp", "address": "127.0.0.1", "port": "5060"}},
               {"socket": {"proto": "udp", "address": "::1", "port": "5060"}},
               {"socket": {"proto": "tls", "address": "127.0.0.1", "port": "5061",
                           "mcast": "no"}}]
    assert listeners(sockets) == ["udp:127.0.0.1:5060", "udp:[::1]:5060", "tls:127.0.0.1:5061"]
