"""deploy/trunkedge.service: the systemd unit an edge server runs `trunkedge run` with.
Parsed here in any case; `systemd-analyze verify` checks it too where systemd is installed
(the tests never start it: they do not rely on systemd)."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from trunkedge.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "trunkedge.service"
EXAMPLE = ROOT / "examples" / "settings.yaml"
INSTALLED = "/opt/trunkedge/.venv/bin/trunkedge"


class UnitFile(configparser.ConfigParser):
    """A systemd unit as INI: keys are case-sensitive, values never interpolated, a key
    given twice (ExecStartPre=...) keeps its last value."""

    def __init__(self) -> None:
        super().__init__(interpolation=None, strict=False, comment_prefixes=("#", ";"),
                         empty_lines_in_values=False)

    def optionxform(self, optionstr: str) -> str:
        return optionstr


def unit() -> configparser.ConfigParser:
    parser = UnitFile()
    parser.read_string(UNIT.read_text())
    return parser


def service() -> configparser.SectionProxy:
    return unit()["Service"]


def exec_start() -> list[str]:
    return shlex.split(service()["ExecStart"])


def dockerfile_instruction(name: str) -> list[str]:
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith(f"{name} "):
            return list(yaml.safe_load(line[len(name) + 1:]))
    raise AssertionError(f"Dockerfile has no {name}")


def test_it_runs_trunkedge_in_the_foreground_like_the_container() -> None:
    s = service()
    assert s["Type"] == "simple"  # `run` execs `kamailio -DD -E`: the same process, no fork
    argv = exec_start()
    assert argv == [INSTALLED, "run", "--config", "/etc/trunkedge/settings.yaml",
                    "--rundir", "/run/trunkedge"]
    assert dockerfile_instruction("ENTRYPOINT") == argv[:1]
    assert dockerfile_instruction("CMD") == argv[1:]
    assert unit()["Install"]["WantedBy"] == "multi-user.target"
    assert "network-online.target" in unit()["Unit"]["After"].split()


def test_it_runs_as_a_dedicated_user_that_can_write_its_folders() -> None:
    s = service()
    assert s["User"] == "trunkedge" and s.get("Group", "trunkedge") == "trunkedge"
    argv = exec_start()
    rundir = argv[argv.index("--rundir") + 1]
    assert rundir == f"/run/{s['RuntimeDirectory']}"  # created for, and owned by, the user
    spool = load_settings(EXAMPLE).cdr.spool_dir
    assert spool in s["ReadWritePaths"].split()
    prepare = s["ExecStartPre"]
    assert prepare.startswith("+")  # as root, before the sandboxed start
    assert shlex.split(prepare[1:]) == ["/usr/bin/install", "-d", "-o", s["User"],
                                        "-g", s.get("Group", s["User"]), "-m", "0750", spool]


def test_the_example_ports_need_no_privilege() -> None:
    settings = load_settings(EXAMPLE)
    ports = [int(socket.rpartition(":")[2]) for socket in settings.listen]
    if settings.metrics.address is not None:
        ports.append(settings.metrics.address[1])
    assert ports
    privileged = [port for port in ports if port < 1024]
    if privileged:  # only with the capability (the unit's comment says how)
        assert "CAP_NET_BIND_SERVICE" in service().get("AmbientCapabilities", ""), privileged


def test_it_restarts_on_failure_and_stops_kamailio_cleanly() -> None:
    s = service()
    assert s["Restart"] == "on-failure" and s["RestartSec"]
    assert s["KillMode"] == "mixed"  # SIGTERM to Kamailio's main process, which stops the rest
    assert s["KillSignal"] == "SIGTERM"
    assert int(s["LimitNOFILE"]) >= 65536  # one descriptor per TCP/TLS connection


def test_it_is_hardened() -> None:
    s = service()
    assert s["NoNewPrivileges"] == "yes"
    assert s["ProtectSystem"] == "strict"  # read-only but for ReadWritePaths and /run/trunkedge
    assert s["ProtectHome"] == "yes"
    assert s["PrivateTmp"] == "yes"
    assert s["CapabilityBoundingSet"] == ""


def test_the_readme_says_how_to_install_it() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "## Running on an edge server" in readme
    assert "deploy/trunkedge.service" in readme and "useradd" in readme
    assert "systemctl enable" in readme


def test_systemd_analyze_verifies_it(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (package systemd): "
                    "the unit was only parsed, not verified")
    # verify checks that ExecStart's binary exists: this checkout's instead of /opt's
    binary = ROOT / ".venv" / "bin" / "trunkedge"
    if not binary.exists():
        binary = Path(shutil.which("trunkedge") or binary)
    assert binary.exists(), "no trunkedge command: run scripts/setup.sh"
    text = UNIT.read_text()
    assert text.count(INSTALLED) == 1
    copy = tmp_path / UNIT.name
    copy.write_text(text.replace(INSTALLED, str(binary)))
    out = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True,
                         timeout=60)
    about_it = [line for line in (out.stdout + out.stderr).splitlines() if UNIT.name in line]
    assert out.returncode == 0 and not about_it, out.stdout + out.stderr
