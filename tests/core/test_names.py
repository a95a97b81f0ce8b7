"""Valid names and numbers, and address parsing and CIDR sets (the ACLs' addresses)."""

from __future__ import annotations

import ipaddress

import pytest

from trunkedge.core import names
from trunkedge.core.errors import ConfigError
from trunkedge.core.names import NetworkSet, address_value


@pytest.mark.parametrize("user", ["12345678", "+12345678", "+123456789012345", "3123456789"])
def test_8_to_15_digits_with_an_optional_plus_are_e164(user: str) -> None:
    assert names.is_e164(user)


FULLWIDTH_DIGITS = "".join(chr(0xFF10 + d) for d in range(9))


@pytest.mark.parametrize("user", [
    pytest.param("", id="empty"), pytest.param("+", id="plus-only"),
    pytest.param("1234567", id="7-digits"), pytest.param("1234567890123456", id="16-digits"),
    pytest.param("++12345678", id="two-plus"), pytest.param("12 345678", id="space"),
    pytest.param("12345678;x", id="parameter"),
    pytest.param(FULLWIDTH_DIGITS, id="fullwidth-digits"),
])
def test_anything_else_is_not_e164(user: str) -> None:
    assert not names.is_e164(user)


def test_domain_names_are_lower_cased_and_validated() -> None:
    assert names.domain_name("AcMe42") == "acme42"
    for bad in ("", "ac-me", "a.b", "a" * 64, 42, "acmé"):
        with pytest.raises(ConfigError) as e:
            names.domain_name(bad)
        assert e.value.field == "domain"


def test_a_provisioned_network_is_a_normalised_cidr_without_host_bits() -> None:
    assert str(names.network("192.0.2.7")) == "192.0.2.7/32"
    assert str(names.network("2001:DB8::/32")) == "2001:db8::/32"
    for bad in ("192.0.2.1/24", "300.1.1.1", "::g", "", None):
        with pytest.raises(ConfigError):
            names.network(bad)


def test_addresses_parse_as_the_ipaddress_module_does() -> None:
    for text in ("10.1.2.3", "0.0.0.0", "255.255.255.255", "::1", "2001:db8::1", "::ffff:1.2.3.4"):
        a = ipaddress.ip_address(text)
        assert address_value(text) == (a.version, int(a))
    assert address_value("256.1.1.1") is None and address_value("garbage") is None


def test_a_network_set_holds_its_addresses_of_both_families_and_no_garbage() -> None:
    exempt = NetworkSet(["10.0.0.0/8", "2001:db8::/32"])
    assert "10.1.2.3" in exempt and "2001:db8::1" in exempt
    assert "192.0.2.1" not in exempt and "garbage" not in exempt
    assert "10.0.0.1" not in NetworkSet([])
    for garbage in ("", "1.2.3", "01.2.3.4", "10.0.0.1 ", "fe80::1%eth0", "::g", "10.0.0.1\0"):
        assert garbage not in exempt


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


@pytest.mark.parametrize(("cidr", "below", "above"), [
    pytest.param("10.0.0.0/8", "9.255.255.255", "11.0.0.0", id="v4-/8"),
    pytest.param("10.1.2.3/8", "9.255.255.255", "11.0.0.0", id="v4-/8-host-bits-set"),
    pytest.param("192.0.2.7/32", "192.0.2.6", "192.0.2.8", id="v4-/32"),
    pytest.param("192.0.2.7", "192.0.2.6", "192.0.2.8", id="v4-bare-address"),
    pytest.param("0.0.0.0/31", None, "0.0.0.2", id="v4-lowest-/31"),
    pytest.param("255.255.255.254/31", "255.255.255.253", None, id="v4-highest-/31"),
    pytest.param("2001:db8::/32", "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", "2001:db9::",
                 id="v6-/32"),
    pytest.param("2001:db8::7/127", "2001:db8::5", "2001:db8::8", id="v6-/127"),
    pytest.param("0.0.0.0/0", None, None, id="v4-everything"),
    pytest.param("::/0", None, None, id="v6-everything"),
])
def test_network_set_spans_exactly_what_ipaddress_spans(
        cidr: str, below: str | None, above: str | None) -> None:
    """First and last address in; the addresses just outside (where the family has them) out."""
    net = ipaddress.ip_network(cidr, strict=False)
    nets = NetworkSet([cidr])
    assert net.network_address in nets and net.broadcast_address in nets
    if below is None:
        assert int(net.network_address) == 0  # nothing below the family's first address
    else:
        assert ipaddress.ip_address(below) == net.network_address - 1
        assert ipaddress.ip_address(below) not in nets
    if above is None:
        assert int(net.broadcast_address) == 2 ** net.max_prefixlen - 1  # nor above its last
    else:
        assert ipaddress.ip_address(above) == net.broadcast_address + 1
        assert ipaddress.ip_address(above) not in nets


@pytest.mark.parametrize(("cidr", "other_family"), [
    pytest.param("0.0.0.0/0", "::", id="v4-everything-holds-no-v6"),
    pytest.param("::/0", "0.0.0.0", id="v6-everything-holds-no-v4"),
])
def test_a_network_set_never_holds_the_other_address_family(cidr: str, other_family: str) -> None:
    assert other_family not in NetworkSet([cidr])
    assert ipaddress.ip_address(other_family) not in NetworkSet([cidr])


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "10.0.0.0/x", "10.0.0.0/", "garbage", "::/129"])
def test_network_sets_refuse_garbage(bad: str) -> None:
    with pytest.raises(ValueError):
        NetworkSet([bad])
