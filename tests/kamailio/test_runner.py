"""`trunkedge run` without starting Kamailio. The wrapper config rendered from the settings,
and what Kamailio makes of it: `kamailio -c` parses the rendered config (with the real
kamailio/kamailio.cfg, its `#!ifdef`s and its `loadmodule`s) without starting, and logs each
module it loads. The environment Kamailio gets, and the secret (configured, or agreed on
through Redis)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness import RedisServer, free_port
from trunkedge.cli import main
from trunkedge.core.border import removed_in_dialog, removed_initially
from trunkedge.core.errors import ConfigError
from trunkedge.kamailio import runner, symbols
from trunkedge.kamailio.runner import (
    MAIN_CFG,
    PY_ENTRY,
    configured_secret,
    edge_secret,
    kamailio_argv,
    kamailio_environment,
    render,
    run,
)
from trunkedge.settings import SECRET_ENV, SETTINGS_ENV, Settings, load_settings, parse_settings
from trunkedge.store.schema import Keys
from trunkedge.store.shared_secret import agree_on_secret

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
    includes = [ln for ln in text.splitlines() if ln.startswith("include_file")]
    assert includes[0] == f'include_file "{MAIN_CFG}"'
    # the example serves metrics: their modules come after the main config's
    assert includes[1:] == [f'include_file "{tmp_path / "metrics.cfg"}"',
                            f'include_file "{tmp_path / "border.cfg"}"',
                            f'include_file "{tmp_path / "dialog_events.cfg"}"']
    assert text.rstrip().endswith(includes[-1])
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


# -- the environment Kamailio runs in --------------------------------------------------------

def test_kamailio_environment_names_debians_python_whatever_the_caller_says() -> None:
    caller = {"PATH": "/root/.pyenv/shims:/opt/conda/bin:/usr/bin:/usr/local/bin",
              "PYTHONHOME": "/opt/conda", "PYTHONPATH": "/opt/conda/lib/python3.11",
              "PYTHONSTARTUP": "/root/.pythonrc", "PYTHONUSERBASE": "/root/.local",
              "PYTHONPLATLIBDIR": "lib64", "PYTHONUNBUFFERED": "1",
              "TRUNKEDGE_VENV": "/srv/venv", "HOME": "/root"}
    before = dict(caller)
    env = kamailio_environment(caller, "/usr")
    assert env["PATH"] == "/usr/sbin:/usr/bin:/sbin:/bin:/root/.pyenv/shims:/opt/conda/bin:" \
                          "/usr/local/bin"
    assert env["PYTHONHOME"] == "/usr" and env["PYTHONNOUSERSITE"] == "1"
    for dropped in ("PYTHONPATH", "PYTHONSTARTUP", "PYTHONUSERBASE", "PYTHONPLATLIBDIR"):
        assert dropped not in env
    assert env["PYTHONUNBUFFERED"] == "1" and env["TRUNKEDGE_VENV"] == "/srv/venv"
    assert env["HOME"] == "/root" and caller == before
    assert kamailio_environment({}, "/usr")["PATH"] == "/usr/sbin:/usr/bin:/sbin:/bin"


def test_the_venv_is_built_on_the_python_kamailio_embeds() -> None:
    """sys.base_prefix, which `run` gives Kamailio as PYTHONHOME, holds the standard
    library of the libpython that app_python3 is linked to."""
    module = Path("/usr/lib/x86_64-linux-gnu/kamailio/modules/app_python3.so")
    if not module.exists():
        pytest.fail("kamailio-python3-modules is not installed: run scripts/setup.sh")
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    linked = subprocess.run(["ldd", str(module)], capture_output=True, text=True).stdout
    assert f"libpython{version}.so" in linked, linked
    assert sys.base_prefix == "/usr"
    assert (Path(sys.base_prefix) / "lib" / f"python{version}" / "os.py").exists()


class Exec(Exception):
    """Raised in place of os.execve: what `run` would have started Kamailio with."""


def fake_execve(path: str, argv: list[str], env: dict[str, str]) -> None:
    raise Exec(path, argv, env)


def test_run_starts_kamailio_in_that_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "execve", fake_execve)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin")
    monkeypatch.setenv("PYTHONHOME", str(tmp_path / "bogus"))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "bogus"))
    monkeypatch.delenv(SECRET_ENV, raising=False)
    with pytest.raises(Exec) as ran:
        run(load_settings(EXAMPLE), tmp_path / "run")
    path, argv, env = ran.value.args
    assert argv[0] == path and argv[1:3] == ["-f", str(tmp_path / "run" / "kamailio.cfg")]
    assert env["PATH"] == f"/usr/sbin:/usr/bin:/sbin:/bin:{tmp_path}"
    assert env["PYTHONHOME"] == sys.base_prefix and "PYTHONPATH" not in env
    assert env["TRUNKEDGE_VENV"] == sys.prefix and env[SETTINGS_ENV] == str(EXAMPLE.resolve())
    assert env[SECRET_ENV] == "change-me-shared-by-all-edges"  # the example's auth.secret


# -- the secret ------------------------------------------------------------------------------

def without_secret(redis_url: str, prefix: str) -> Settings:
    doc = dict(yaml.safe_load(EXAMPLE.read_text()))
    doc["auth"] = {**doc["auth"], "secret": ""}
    doc["redis"] = {"url": redis_url, "prefix": prefix, "timeout_ms": 100}
    return parse_settings(doc)


def test_a_configured_secret_wins_the_environment_first() -> None:
    settings = load_settings(EXAMPLE)
    assert configured_secret(settings, {}) == "change-me-shared-by-all-edges"
    assert configured_secret(settings, {SECRET_ENV: "from-env"}) == "from-env"
    assert configured_secret(without_secret("redis://127.0.0.1:1/0", "p:"), {}) == ""
    # configured: Redis is never asked (port 1 would refuse)
    assert edge_secret(settings, {}) == "change-me-shared-by-all-edges"


def test_edges_without_a_secret_agree_on_one_kept_in_redis(redis_server: RedisServer) -> None:
    client, key = redis_server.client(), Keys("te-unit-runner:").secret
    assert key == "te-unit-runner:secret"
    client.delete(key)
    first, created = agree_on_secret(client, key)
    assert created and re.fullmatch(r"[0-9a-f]{32}", first)
    assert agree_on_secret(client, key) == (first, False)
    settings = without_secret(redis_server.url, "te-unit-runner:")
    assert edge_secret(settings, {}) == first == client.get(key).decode()
    client.set(key, 'bad"secret')
    with pytest.raises(ConfigError, match="auth.secret"):
        agree_on_secret(client, key)
    client.delete(key)


def test_trunkedge_run_exits_2_naming_auth_secret(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    doc = dict(yaml.safe_load(EXAMPLE.read_text()))
    doc["auth"] = {**doc["auth"], "secret": ""}
    doc["redis"] = {"url": f"redis://127.0.0.1:{free_port()}/0"}
    config = tmp_path / "settings.yaml"
    config.write_text(yaml.safe_dump(doc))
    monkeypatch.setattr(os, "execve", fake_execve)
    monkeypatch.setattr(runner, "SECRET_WAIT_S", 0.3)
    monkeypatch.delenv(SECRET_ENV, raising=False)
    assert main(["run", "--config", str(config), "--rundir", str(tmp_path / "run")]) == 2
    assert "error: auth.secret: not set, and Redis did not answer" in capsys.readouterr().err
    assert not (tmp_path / "run" / "kamailio.cfg").exists()


def test_metrics_are_declared_to_xhttp_prom_from_the_one_list_of_series(
        tmp_path: Path) -> None:
    from trunkedge.core import metrics
    from trunkedge.kamailio.runner import render_metrics

    text = render_metrics(tmp_path).read_text()
    for series in metrics.ALL:
        declared = metrics.xhttp_prom_declaration(series)
        assert f'"prom_{series.xhttp_prom_kind}", "{declared}"' in text
    assert 'modparam("xhttp_prom", "xhttp_prom_beginning", "")' in text


# -- Redis Sentinel ---------------------------------------------------------------------------
SENTINELS = ("127.0.0.1:26379", "127.0.0.1:26380", "127.0.0.1:26381")


def sentinel_settings(**redis: object) -> Settings:
    doc = dict(yaml.safe_load(EXAMPLE.read_text()))
    doc["redis"] = {"sentinels": list(SENTINELS), "master_name": "te-master", **redis}
    doc["kamailio"] = {**doc["kamailio"], "log_level": 3}
    return parse_settings(doc)


def test_each_sentinel_gets_an_ndb_redis_server_of_its_own() -> None:
    """ndb_redis 5.6.3 reads one `sentinel=` right (runner.ndb_redis_servers): one each."""
    specs = runner.ndb_redis_servers(sentinel_settings(password="pw", db=3).redis,
                                     (SENTINELS[2], SENTINELS[0], SENTINELS[1]))
    assert specs == [
        f"name={name};sentinel_group=te-master;sentinel_master=1;sentinel={s};db=3;pass=pw"
        for name, s in zip(("te", "te1", "te2"), (SENTINELS[2], SENTINELS[0], SENTINELS[1]),
                           strict=True)]
    assert runner.ndb_redis_servers(load_settings(EXAMPLE).redis) == [
        "name=te;addr=127.0.0.1;port=6379;db=0"]


def test_kamailio_gets_the_sentinel_servers_most_preferred_first(tmp_path: Path) -> None:
    """ndb_redis puts each `server` before the earlier ones: kamailio.cfg's TE_REDIS_SERVER
    is the last (te2), redis.cfg, included after it, names te1 then te (the first)."""
    cfg = render(sentinel_settings(), tmp_path, "s3cret")
    text = cfg.read_text()
    assert f'#!substdef "!TE_REDIS_SERVER!name=te2;sentinel_group=te-master;' \
           f'sentinel_master=1;sentinel={SENTINELS[2]};db=0!g"' in text
    extra = (tmp_path / "redis.cfg").read_text()
    assert re.findall(r'"server", "name=(te\d?);.*sentinel=([0-9.:]+);', extra) == [
        ("te1", SENTINELS[1]), ("te", SENTINELS[0])]
    assert f'include_file "{MAIN_CFG}"\ninclude_file "{tmp_path / "redis.cfg"}"' in text
    assert set(MODULES) <= modules_kamailio_loads(cfg)


def test_a_url_password_ndb_redis_cannot_carry_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="redis.url"):
        runner.ndb_redis_server("redis://:a,b@127.0.0.1:6379/0")


def test_with_a_tls_listener_kamailio_loads_tls_first_and_reads_the_rendered_tls_cfg(
        tmp_path: Path) -> None:
    """tls.so must come before every module that may use libcrypto (kamailio/tls.py)."""
    from certs import make_ca, make_certificate

    ca = make_ca(tmp_path / "pki")
    cert = make_certificate(tmp_path / "pki", "edge", ca)
    doc = dict(yaml.safe_load(EXAMPLE.read_text()))
    doc["listen"] = [*doc["listen"], "tls:127.0.0.1:5061"]
    doc["tls"] = {"certificate": str(cert.cert), "private_key": str(cert.key)}
    doc["kamailio"] = {**doc["kamailio"], "log_level": 3}
    cfg = render(parse_settings(doc), tmp_path / "run", "s3cret")
    assert "TE_TLS" in defines_of(cfg.read_text())
    assert "listen=tls:127.0.0.1:5061" in cfg.read_text()
    loaded = modules_kamailio_loads(cfg)
    assert {"tls", "tcpops", "nathelper"} <= loaded, sorted(loaded)
    text = MAIN_CFG.read_text()
    first = text.index('loadmodule "')
    assert text.index('loadmodule "tls.so"') == first
    assert "tls" not in modules_kamailio_loads(render(settings(), tmp_path / "plain", "s3cret"))


def test_border_cfg_removes_each_header_of_each_kind_of_message_natively(
        tmp_path: Path) -> None:
    """The adapter runs these blocks by name (KSR.route): every header core.border says a
    kind of message loses has its remove_hf, and nothing else is in the block."""
    s = load_settings(EXAMPLE)
    render(s, tmp_path, "s3cret")
    text = (tmp_path / "border.cfg").read_text()
    blocks = dict(re.findall(r"route\[(\w+)\] \{\n(.*?)\n\}", text, re.S))
    internal = s.routing.strip_reply_headers
    expected = {
        symbols.ROUTE_BORDER_INITIAL: removed_initially(internal),
        symbols.ROUTE_BORDER_DIALOG: removed_in_dialog(internal),
        symbols.ROUTE_STRIP_REPLY: tuple(internal),
        symbols.ROUTE_STRIP_PRIVATE_REPLY: ("P-Asserted-Identity", *internal),
    }
    assert {name: tuple(re.findall(r'remove_hf\("([^"]+)"\);', body))
            for name, body in blocks.items()} == expected
    assert "Route" in expected[symbols.ROUTE_BORDER_INITIAL] and internal


def test_border_cfg_with_no_internal_headers_is_still_a_valid_config(tmp_path: Path) -> None:
    """strip_reply_headers: [] leaves the reply blocks without a header to remove."""
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["routing"] = {**doc.get("routing", {}), "strip_reply_headers": []}
    cfg = render(parse_settings(doc), tmp_path, "s3cret")
    text = (tmp_path / "border.cfg").read_text()
    assert f"route[{symbols.ROUTE_STRIP_REPLY}] {{\n    return;\n}}" in text
    modules_kamailio_loads(cfg)  # kamailio -c accepts it


def test_the_dialog_events_hand_the_adapter_every_fact_in_one_string(tmp_path: Path) -> None:
    """event_route[dialog:end|failed] format what records.DialogEnd parses, in its order;
    the answer time is kept natively."""
    render(load_settings(EXAMPLE), tmp_path, "s3cret")
    text = (tmp_path / "dialog_events.cfg").read_text()
    calls = dict(re.findall(r'event_route\[([\w:]+)\] \{\n    python_exec\("'
                            + symbols.CB_DIALOG_EVENT + r'", "(.*)"\);\n\}', text))
    assert set(calls) == set(symbols.DIALOG_ENDED)
    for event, facts in calls.items():
        name, *values = facts.split("\\n")
        assert name == event
        assert values == list(symbols.DIALOG_END_FACTS.values())
    assert list(symbols.DIALOG_END_FACTS)[-1] == "call"  # lines of its own: last
    assert f"event_route[dialog:start] {{\n    {symbols.ANSWERED_VAR} = $TV(Sn);\n}}" in text


def test_without_records_only_a_call_holding_channels_goes_to_the_adapter_at_its_end(
        tmp_path: Path) -> None:
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["cdr"] = {**doc.get("cdr", {}), "enabled": False}
    cfg = render(parse_settings(doc), tmp_path, "s3cret")
    text = (tmp_path / "dialog_events.cfg").read_text()
    assert text.count(f"if ({symbols.HELD_VAR} != $null) python_exec(") == 2
    modules_kamailio_loads(cfg)  # kamailio -c accepts it
