"""The Kamailio wrapper config rendered from the settings, and what Kamailio makes of it:
`kamailio -c` parses the rendered config (with the real kamailio/kamailio.cfg, its
`#!ifdef`s and its `loadmodule`s) without starting, and logs each module it loads."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from trunkedge.kamailio.runner import MAIN_CFG, PY_ENTRY, kamailio_argv, render
from trunkedge.settings import Settings, load_settings, parse_settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "settings.yaml"

# What the edge cannot run without (topoh only with topology hiding: see below).
MODULES = ("tm", "tmx", "sl", "rr", "pv", "sanity", "maxfwd", "textops", "siputils", "xlog",
           "ctl", "jsonrpcs", "pike", "dispatcher", "htable", "app_python3")


def settings(topology_hiding: bool = True) -> Settings:
    """The example settings; log level 3 (debug), at which Kamailio logs every module load."""
    doc = dict(yaml.safe_load(EXAMPLE.read_text()))
    doc["routing"] = {**doc["routing"], "topology_hiding": topology_hiding}
    doc["kamailio"] = {**doc["kamailio"], "log_level": 3}
    return parse_settings(doc)


def defines_of(wrapper: str) -> set[str]:
    return {line.split()[1] for line in wrapper.splitlines() if line.startswith("#!define ")}


def modules_kamailio_loads(cfg: Path) -> set[str]:
    """Check the config as Kamailio does (`kamailio -c`: preprocessor, parser, module loads
    and modparams, no Redis needed) and return the modules it loaded."""
    binary = shutil.which("kamailio") or "/usr/sbin/kamailio"
    if not Path(binary).exists():
        pytest.fail("kamailio is not installed: run scripts/setup.sh")
    out = subprocess.run([binary, "-c", "-f", str(cfg)], capture_output=True, text=True,
                         timeout=60)
    log = out.stdout + out.stderr
    assert out.returncode == 0 and "config file ok" in log, log[-4000:]
    return set(re.findall(r"loading module (\S+?)\.so", log))


def test_the_wrapper_sets_sockets_paths_and_secret_then_includes_the_main_cfg(
        tmp_path: Path) -> None:
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


def test_kamailio_loads_every_module_the_edge_needs_and_the_onsend_trap_is_fixed(
        tmp_path: Path) -> None:
    text = MAIN_CFG.read_text()
    for module in (*MODULES, "topoh"):
        assert f'loadmodule "{module}.so"' in text
    assert 'cfgengine "python"' in text
    assert 'kemi.onsend_route_callback="none"' in text
    loaded = modules_kamailio_loads(render(settings(), tmp_path, "s3cret"))
    assert set(MODULES) <= loaded, sorted(set(MODULES) - loaded)


@pytest.mark.parametrize("on", [True, False], ids=["topology-hiding-on", "topology-hiding-off"])
def test_topoh_is_loaded_exactly_when_topology_hiding_is_on(tmp_path: Path, on: bool) -> None:
    cfg = render(settings(topology_hiding=on), tmp_path, "s3cret")
    assert ("TE_TOPOH" in defines_of(cfg.read_text())) == on
    loaded = modules_kamailio_loads(cfg)
    assert set(MODULES) <= loaded, sorted(set(MODULES) - loaded)  # the log was read right
    assert ("topoh" in loaded) == on, sorted(loaded)
