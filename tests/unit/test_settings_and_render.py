"""Settings validation and the Kamailio wrapper config rendered from them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from trunkedge.errors import ConfigError
from trunkedge.runner import MAIN_CFG, PY_ENTRY, kamailio_argv, render
from trunkedge.settings import load_settings, parse_settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "settings.yaml"


def raw() -> dict[str, object]:
    return dict(yaml.safe_load(EXAMPLE.read_text()))


def test_example_settings_load() -> None:
    s = load_settings(EXAMPLE)
    assert s.listen == ("udp:127.0.0.1:5060", "tcp:127.0.0.1:5060")
    assert s.realm == "sip.example.net"
    assert set(s.pops) == {"eu1", "eu2", "us1", "us2", "apac1", "apac2"}
    assert s.redis.timeout_ms == 100 and s.default_pop == "eu1"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"listen": ["udp:127.0.0.1"]}, "listen"),
        ({"listen": []}, "listen"),
        ({"base_domain": "not a domain"}, "base_domain"),
        ({"pops": {"mars1": ["sip:127.0.0.1:5091"]}}, "pops.mars1"),
        ({"pops": {"eu1": []}}, "pops.eu1"),
        ({"pops": {"eu1": ["http://x"]}}, "pops.eu1"),
        ({"default_pop": "us1", "pops": {"eu1": ["sip:127.0.0.1"]}}, "default_pop"),
        ({"redis": {"url": "mysql://x"}}, "redis.url"),
        ({"redis": {"timeout_ms": 0}}, "redis.timeout_ms"),
        ({"auth": {"secret": 'a"b'}}, "auth.secret"),
        ({"kamailio": {"children": "four"}}, "kamailio.children"),
        ({"kamailio": {"memory_manager": "jemalloc"}}, "kamailio.memory_manager"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_bad_settings_name_the_field(change: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_settings({**raw(), **change})
    assert e.value.field == field


def test_render_wrapper(tmp_path: Path) -> None:
    s = load_settings(EXAMPLE)
    cfg = render(s, tmp_path, "s3cret")
    text = cfg.read_text()
    assert "listen=udp:127.0.0.1:5060\nlisten=tcp:127.0.0.1:5060" in text
    assert f'#!substdef "!TE_RUNDIR!{tmp_path}!g"' in text
    assert f'#!substdef "!TE_PY_ENTRY!{PY_ENTRY}!g"' in text
    assert '#!substdef "!TE_SECRET!s3cret!g"' in text
    assert text.rstrip().endswith(f'include_file "{MAIN_CFG}"')
    argv = kamailio_argv(s, cfg, tmp_path)
    assert argv[1:5] == ["-f", str(cfg), "-DD", "-E"]
    assert argv[5:7] == ["-m", "1024"]
    assert argv[argv.index("-x") + 1] == "tlsf"  # constant-time allocator by default


def test_main_cfg_has_the_modules_and_the_onsend_trap_fixed() -> None:
    text = MAIN_CFG.read_text()
    for module in ("tm", "tmx", "sl", "rr", "pv", "sanity", "maxfwd", "textops", "siputils",
                   "xlog", "ctl", "jsonrpcs", "pike", "dispatcher", "htable", "topoh",
                   "app_python3"):
        assert f'loadmodule "{module}.so"' in text
    assert 'cfgengine "python"' in text
    assert 'kemi.onsend_route_callback="none"' in text
