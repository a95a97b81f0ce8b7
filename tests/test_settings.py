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
