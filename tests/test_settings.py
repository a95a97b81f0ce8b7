"""Settings validation: the example loads, and every bad value names its field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from trunkedge.core.errors import ConfigError
from trunkedge.settings import load_settings, parse_settings

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "settings.yaml"


def raw() -> dict[str, object]:
    return dict(yaml.safe_load(EXAMPLE.read_text()))


def test_the_example_settings_load() -> None:
    s = load_settings(EXAMPLE)
    assert s.listen == ("udp:127.0.0.1:5060", "tcp:127.0.0.1:5060")
    assert s.realm == "sip.example.net"
    assert set(s.pops) == {"eu1", "eu2", "us1", "us2", "apac1", "apac2"}
    assert s.redis.timeout_ms == 100 and s.default_pop == "eu1"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        pytest.param({"listen": ["udp:127.0.0.1"]}, "listen", id="listen-without-port"),
        pytest.param({"listen": []}, "listen", id="listen-empty"),
        pytest.param({"base_domain": "not a domain"}, "base_domain", id="base_domain-invalid"),
        pytest.param({"pops": {"mars1": ["sip:127.0.0.1:5091"]}}, "pops.mars1",
                     id="pop-unknown"),
        pytest.param({"pops": {"eu1": []}}, "pops.eu1", id="pop-without-gateways"),
        pytest.param({"pops": {"eu1": ["http://x"]}}, "pops.eu1", id="gateway-not-sip"),
        pytest.param({"default_pop": "us1", "pops": {"eu1": ["sip:127.0.0.1"]}}, "default_pop",
                     id="default_pop-without-gateways"),
        pytest.param({"redis": {"url": "mysql://x"}}, "redis.url", id="redis-url-not-redis"),
        pytest.param({"redis": {"timeout_ms": 0}}, "redis.timeout_ms", id="redis-timeout-zero"),
        pytest.param({"auth": {"secret": 'a"b'}}, "auth.secret", id="secret-with-quote"),
        pytest.param({"kamailio": {"children": "four"}}, "kamailio.children",
                     id="children-not-a-number"),
        pytest.param({"kamailio": {"memory_manager": "jemalloc"}}, "kamailio.memory_manager",
                     id="memory_manager-unknown"),
        pytest.param({"colour": "blue"}, "colour", id="unknown-setting"),
    ],
)
def test_bad_settings_name_the_field(change: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_settings({**raw(), **change})
    assert e.value.field == field


SENTINELS = {"sentinels": ["127.0.0.1:26379", "10.0.0.2:26379", "redis-c.internal:26380"],
             "master_name": "te-master"}


def test_sentinel_settings_stand_in_for_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUNKEDGE_REDIS", "redis://127.0.0.9:6379/0")  # not for Sentinel
    r = parse_settings({**raw(), "redis": {**SENTINELS, "password": "pw", "db": 2}}).redis
    assert r.sentinel_addresses == [("127.0.0.1", 26379), ("10.0.0.2", 26379),
                                    ("redis-c.internal", 26380)]
    assert (r.master_name, r.password, r.db) == ("te-master", "pw", 2)
    assert parse_settings({**raw(), "redis": {"sentinels": "127.0.0.1:26379",
                                              "master_name": "m"}}).redis.sentinels == (
        "127.0.0.1:26379",)


@pytest.mark.parametrize(
    ("redis", "field"),
    [
        pytest.param({**SENTINELS, "url": "redis://127.0.0.1:6379/0"}, "redis.url",
                     id="url-and-sentinels"),
        pytest.param({"sentinels": SENTINELS["sentinels"]}, "redis.master_name",
                     id="sentinels-without-master_name"),
        pytest.param({"master_name": "te-master"}, "redis.master_name",
                     id="master_name-without-sentinels"),
        pytest.param({"url": "redis://127.0.0.1:6379/0", "password": "pw"}, "redis.password",
                     id="password-without-sentinels"),
        pytest.param({**SENTINELS, "sentinels": []}, "redis.sentinels", id="no-sentinel"),
        pytest.param({**SENTINELS, "sentinels": [f"10.0.0.{i}:26379" for i in range(6)]},
                     "redis.sentinels", id="six-sentinels"),
        pytest.param({**SENTINELS, "sentinels": ["10.0.0.1:26379", "10.0.0.1:26379"]},
                     "redis.sentinels", id="sentinel-twice"),
        pytest.param({**SENTINELS, "sentinels": ["10.0.0.1"]}, "redis.sentinels",
                     id="sentinel-without-port"),
        pytest.param({**SENTINELS, "sentinels": ["[::1]:26379"]}, "redis.sentinels",
                     id="sentinel-ipv6"),
        pytest.param({**SENTINELS, "sentinels": ["10.0.0.1:70000"]}, "redis.sentinels",
                     id="sentinel-port-too-big"),
        pytest.param({**SENTINELS, "master_name": "te master"}, "redis.master_name",
                     id="master_name-with-space"),
        pytest.param({**SENTINELS, "password": "a;b"}, "redis.password",
                     id="password-ending-the-spec"),
        pytest.param({**SENTINELS, "password": "a,b"}, "redis.password",
                     id="password-with-comma"),
        pytest.param({**SENTINELS, "db": -1}, "redis.db", id="db-negative"),
    ],
)
def test_bad_sentinel_settings_name_the_field(redis: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_settings({**raw(), "redis": redis})
    assert e.value.field == field


def test_the_sentinel_example_settings_load() -> None:
    r = load_settings(ROOT / "examples" / "settings-sentinel.yaml").redis
    assert len(r.sentinels) == 3 and r.master_name == "te-master"


TLS = {"certificate": "/etc/trunkedge/tls/edge.crt", "private_key": "/etc/trunkedge/tls/edge.key"}


def test_a_tls_listener_with_its_certificate_loads() -> None:
    s = parse_settings({**raw(), "listen": ["udp:127.0.0.1:5060", "tls:127.0.0.1:5061"],
                        "tls": TLS, "pops": {"eu1": ["sip:10.0.0.1:5061;transport=tls"]}})
    assert s.listen[1] == "tls:127.0.0.1:5061"
    assert s.tls.certificate == TLS["certificate"] and s.tls.ca_list == ""
    assert (s.tls.min_version, s.tls.verify_client) == ("TLSv1.2", False)
    assert (s.tls.handshake_timeout_s, s.tls.idle_timeout_s, s.tls.max_connections) \
        == (10, 3605, 2048)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        pytest.param({"listen": ["tls:127.0.0.1:5061"], "tls": {}}, "tls.certificate",
                     id="tls-listener-without-certificate"),
        pytest.param({"listen": ["tls:127.0.0.1:5061"], "tls": {"certificate": "/a.crt"}},
                     "tls.private_key", id="tls-listener-without-key"),
        pytest.param({"listen": ["tls:127.0.0.1:5061"], "tls": {**TLS, "verify_client": True}},
                     "tls.ca_list", id="verify_client-without-ca_list"),
        pytest.param({"tls": {**TLS, "min_version": "TLSv1.0"}}, "tls.min_version",
                     id="min_version-not-offered"),
        pytest.param({"tls": {**TLS, "certificate": "/my certs/edge.crt"}}, "tls.certificate",
                     id="certificate-path-with-space"),
        pytest.param({"tls": {**TLS, "handshake_timeout_s": 0}}, "tls.handshake_timeout_s",
                     id="handshake_timeout-zero"),
        pytest.param({"tls": {**TLS, "max_connections": 0}}, "tls.max_connections",
                     id="max_connections-zero"),
        pytest.param({"pops": {"eu1": ["sip:10.0.0.1:5061;transport=tls"]}}, "pops.eu1",
                     id="tls-gateway-without-tls-listener"),
        pytest.param({"listen": ["sctp:127.0.0.1:5060"]}, "listen", id="listen-sctp"),
    ],
)
def test_bad_tls_settings_name_the_field(change: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_settings({**raw(), **change})
    assert e.value.field == field
