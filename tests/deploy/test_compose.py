"""docker-compose.yml stays valid and in step with the native run: the configuration the
compose client resolves (`config`) runs the same `trunkedge run` on the same settings."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SETTINGS_IN_CONTAINER = "/etc/trunkedge/settings.yaml"


def compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if docker:
        plugin = subprocess.run([docker, "compose", "version"], capture_output=True)
        if plugin.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    """`docker compose config`: the file validated, interpolated and normalised."""
    cmd = compose_command()
    if cmd is None:
        pytest.skip("no docker compose client (scripts/setup.sh --test installs one)")
    out = subprocess.run([*cmd, "-f", str(ROOT / "docker-compose.yml"), "config"],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    return dict(yaml.safe_load(out.stdout))


def mounts(service: dict[str, Any]) -> list[tuple[Path, str, bool]]:
    """(host path, container path, read-only) of each bind mount, in either the short
    form (`src:dst:ro`, docker-compose 1.x) or the long form (`docker compose` 2.x)."""
    found = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target, *mode = volume.split(":")
            read_only = "ro" in (mode[0].split(",") if mode else [])
        else:
            if volume.get("type") != "bind":
                continue
            source, target = volume["source"], volume["target"]
            read_only = bool(volume.get("read_only"))
        if source.startswith(("/", ".")):  # a path, not a named volume
            found.append(((ROOT / source).resolve(), target, read_only))
    return found


def dockerfile_instruction(name: str) -> list[str]:
    """The exec-form value of a Dockerfile instruction (ENTRYPOINT, CMD)."""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith(f"{name} "):
            return list(yaml.safe_load(line[len(name) + 1:]))
    raise AssertionError(f"Dockerfile has no {name}")


def test_the_edge_service_runs_trunkedge_on_the_mounted_example_settings(
        config: dict[str, Any]) -> None:
    services = config["services"]
    assert isinstance(services, dict) and "edge" in services, services
    edge = services["edge"]
    assert edge["command"] == ["run", "--config", SETTINGS_IN_CONTAINER,
                               "--rundir", "/run/trunkedge"]
    assert dockerfile_instruction("ENTRYPOINT") == ["/opt/trunkedge/.venv/bin/trunkedge"]
    assert dockerfile_instruction("CMD") == edge["command"]  # `docker run` does the same
    assert edge["network_mode"] == "host"  # SIP needs the real addresses in Via/Record-Route
    assert ((ROOT / "examples" / "settings.yaml").resolve(), SETTINGS_IN_CONTAINER, True) \
        in mounts(edge), edge.get("volumes")
    assert Path(edge["build"]["context"]).resolve() == ROOT  # this checkout, its Dockerfile


def test_redis_runs_beside_it_where_the_example_settings_look(
        config: dict[str, Any]) -> None:
    services = config["services"]
    assert isinstance(services, dict) and "redis" in services, services
    redis = services["redis"]
    assert redis["network_mode"] == "host"
    settings = yaml.safe_load((ROOT / "examples" / "settings.yaml").read_text())
    assert settings["redis"]["url"].startswith("redis://127.0.0.1:6379/")
    assert redis["command"][:5] == ["redis-server", "--bind", "127.0.0.1", "--port", "6379"]
    assert "redis" in services["edge"]["depends_on"]


def test_the_image_is_debian_12_set_up_like_the_native_run() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "FROM debian:12" in dockerfile and "scripts/setup.sh" in dockerfile
