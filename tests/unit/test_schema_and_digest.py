"""Key layout, decoding of the lookup script's reply, HA1s and route tokens."""

from __future__ import annotations

import hashlib
import ipaddress

from trunkedge.dialog_token import DialogSeal, route_token
from trunkedge.digest import ha1, ha1_all, is_ha1
from trunkedge.identity import CallerIds
from trunkedge.names import NetworkSet
from trunkedge.schema import Keys, account_fields, decode_account, decode_domain


def test_keys_share_one_prefix() -> None:
    k = Keys("p:")
    assert k.domain("acme") == "p:domain:acme"
    assert k.domain_acls("acme") == "p:domain:acme:acls"
    assert k.acl_nets("office") == "p:acl:office:nets"
    assert k.account("31000000") == "p:account:31000000"
    assert k.version == "p:version"


def test_ha1_is_rfc_digest() -> None:
    want = hashlib.md5(b"31000000:sip.example.net:pw").hexdigest()
    assert ha1("MD5", "31000000", "sip.example.net", "pw") == want
    both = ha1_all("31000000", "sip.example.net", "pw")
    assert set(both) == {"MD5", "SHA-256"}
    assert is_ha1("SHA-256", both["SHA-256"]) and not is_ha1("MD5", both["SHA-256"])


def test_decode_domain_and_account() -> None:
    raw = {"pop": "us1", "algs": "SHA-256,MD5",
           "acls": [["office", ["192.0.2.0/24", "::1/128"], 2, "+3120*,+31201234567",
                     "+31200000000", "replace"],
                    ["empty", {}, 0, "", "", ""]]}
    got = decode_domain("acme", raw)
    assert got is not None and got.pop == "us1" and got.algorithms == ("SHA-256", "MD5")
    assert [a.name for a in got.acls] == ["office", "empty"]
    assert got.acls[0].has_accounts and not got.acls[1].has_accounts
    assert got.acls[0].lists(ipaddress.ip_address("192.0.2.77"))
    assert got.acls[0].lists(ipaddress.ip_address("::1"))
    assert not got.acls[1].networks
    assert got.acls[0].caller_ids == CallerIds(("+3120*", "+31201234567"), "+31200000000",
                                               "replace")
    assert not got.acls[1].caller_ids.configured
    assert decode_domain("nosuch", False) is None
    fields = account_fields("office", "sip.example.net", {"MD5": "a" * 32})
    account = decode_account("31000000", [x for kv in fields.items() for x in kv])
    assert account is not None and account.ha1 == {"MD5": "a" * 32} and account.acl == "office"
    assert decode_account("nobody", []) is None


def test_network_set_matches_like_ipaddress() -> None:
    cidrs = ["10.0.0.0/8", "10.1.0.0/16", "192.0.2.0/24", "192.0.3.0/24", "2001:db8::/32",
             "198.51.100.7/32"]
    nets = NetworkSet(cidrs)
    assert len(nets) == 6 and nets
    probes = ["10.255.1.1", "11.0.0.0", "192.0.2.255", "192.0.3.0", "192.0.4.0",
              "198.51.100.7", "198.51.100.8", "2001:db8::1", "2001:db9::", "::1", "0.0.0.0"]
    for p in probes:
        ip = ipaddress.ip_address(p)
        assert (ip in nets) == any(ip in ipaddress.ip_network(c) for c in cidrs), p
    assert ipaddress.ip_address("10.0.0.1") not in NetworkSet([])


def test_dialog_seal() -> None:
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
