"""docker-compose.yml stays valid and in step with the native run."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if docker:
        plugin = subprocess.run([docker, "compose", "version"], capture_output=True)
        if plugin.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_compose_config_is_valid_and_runs_the_same_edge() -> None:
    cmd = compose_command()
    if cmd is None:
        pytest.skip("no docker compose client (scripts/setup.sh --test installs one)")
    out = subprocess.run([*cmd, "-f", str(ROOT / "docker-compose.yml"), "config"],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    config = yaml.safe_load(out.stdout)
    edge = config["services"]["edge"]
    assert edge["command"][:3] == ["run", "--config", "/etc/trunkedge/settings.yaml"]
    mounts = [str(v) for v in edge["volumes"]]
    assert any("examples/settings.yaml" in m for m in mounts), mounts
    assert "redis" in config["services"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "FROM debian:12" in dockerfile and "scripts/setup.sh" in dockerfile
