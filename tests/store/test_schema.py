"""The Redis key layout and the decoding of the lookup script's reply."""

from __future__ import annotations

import ipaddress

from trunkedge.core.identity import CallerIds
from trunkedge.store.schema import Keys, account_fields, decode_account, decode_domain


def test_keys_share_one_prefix() -> None:
    k = Keys("p:")
    assert k.domain("acme") == "p:domain:acme"
    assert k.domain_acls("acme") == "p:domain:acme:acls"
    assert k.acl_nets("office") == "p:acl:office:nets"
    assert k.account("31000000") == "p:account:31000000"
    assert k.version == "p:version"


def test_the_lookup_reply_decodes_to_the_domain_its_acls_and_the_account() -> None:
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
