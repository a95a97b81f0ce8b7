"""Key layout, decoding of the lookup script's reply, HA1s and route tokens."""

from __future__ import annotations

import hashlib

from trunkedge.dialog_token import dialog_token, route_param
from trunkedge.digest import ha1, ha1_all, is_ha1
from trunkedge.identity import CallerIds
from trunkedge.schema import Keys, account_fields, decode_lookup


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


def test_decode_lookup() -> None:
    fields = account_fields("office", "sip.example.net", {"MD5": "a" * 32})
    flat = [x.encode() for kv in fields.items() for x in kv]
    cids = [b"+3120*,+31201234567", b"+31200000000", b"replace"]
    raw = [1, [[b"office", [b"192.0.2.0/24", b"::1/128"], 2, cids],
               [b"empty", [], 0, [None, None, None]]], flat, b"us1"]
    got = decode_lookup(raw, "acme", "31000000")
    assert got.domain is not None
    assert got.domain.pop == "us1"
    assert [a.name for a in got.domain.acls] == ["office", "empty"]
    assert got.domain.acls[0].caller_ids == CallerIds(("+3120*", "+31201234567"),
                                                      "+31200000000", "replace")
    assert not got.domain.acls[1].caller_ids.configured
    assert got.domain.acls[0].has_accounts and not got.domain.acls[1].has_accounts
    assert got.account is not None and got.account.ha1 == {"MD5": "a" * 32}
    assert got.account.acl == "office"
    assert decode_lookup([0], "nosuch", "").domain is None
    assert decode_lookup([*raw[:2], [], b""], "acme", "nobody").account is None


def test_route_token_is_keyed_and_stable() -> None:
    assert dialog_token("k", "call-1") == dialog_token("k", "call-1")
    assert dialog_token("k", "call-1") != dialog_token("k2", "call-1")
    assert dialog_token("k", "call-1") != dialog_token("k", "call-2")
    assert route_param("k", "c").startswith("te=")
