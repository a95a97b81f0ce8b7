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


def compose_config(file: str) -> dict[str, Any]:
    """`docker compose -f FILE config`: the file validated, interpolated and normalised."""
    cmd = compose_command()
    if cmd is None:
        pytest.skip("no docker compose client (scripts/setup.sh --test installs one)")
    out = subprocess.run([*cmd, "-f", str(ROOT / file), "config"],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    return dict(yaml.safe_load(out.stdout))


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return compose_config("docker-compose.yml")


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


def test_prometheus_scrapes_the_edge_where_the_example_settings_serve_metrics(
        config: dict[str, Any]) -> None:
    services = config["services"]
    assert isinstance(services, dict) and "prometheus" in services, services
    prometheus = services["prometheus"]
    assert str(prometheus["image"]).startswith("prom/prometheus")
    assert prometheus["network_mode"] == "host"  # 127.0.0.1 is the edge's loopback
    assert "edge" in prometheus["depends_on"]
    flags = dict(arg.removeprefix("--").split("=", 1) for arg in prometheus["command"])
    scrape_config = (ROOT / "examples" / "prometheus.yml").resolve()
    assert (scrape_config, flags["config.file"], True) in mounts(prometheus), \
        prometheus.get("volumes")
    settings = yaml.safe_load((ROOT / "examples" / "settings.yaml").read_text())
    metrics_listen = settings["metrics"]["listen"]
    assert metrics_listen == "127.0.0.1:9090"
    # Host networking: Prometheus's own port must not be the one the edge serves on.
    assert flags["web.listen-address"].rpartition(":")[2] != metrics_listen.rpartition(":")[2]
    scrape = yaml.safe_load(scrape_config.read_text())
    jobs = {job["job_name"]: job for job in scrape["scrape_configs"]}
    edge = jobs["trunkedge"]
    assert edge.get("metrics_path", "/metrics") == "/metrics"
    assert edge["honor_timestamps"] is False  # xhttp_prom stamps samples: docs/metrics.md
    assert [metrics_listen] == [t for c in edge["static_configs"] for t in c["targets"]]
    if shutil.which("promtool"):  # Debian's prometheus package (scripts/setup.sh --test)
        check = subprocess.run(["promtool", "check", "config", str(scrape_config)],
                               capture_output=True, text=True, timeout=60)
        assert check.returncode == 0, check.stdout + check.stderr


# -- the Sentinel variant: docker-compose.sentinel.yml ----------------------------------------
def test_the_sentinel_variant_runs_the_edge_on_sentinels_watching_its_master() -> None:
    """A master, a replica of it, three sentinels (quorum 2) monitoring the master under
    the name examples/settings-sentinel.yaml gives, at the addresses it lists; the edge
    runs the same `trunkedge run` on those settings."""
    services = compose_config("docker-compose.sentinel.yml")["services"]
    settings = yaml.safe_load((ROOT / "examples" / "settings-sentinel.yaml").read_text())
    master, replica = services["redis-master"]["command"], services["redis-replica"]["command"]
    port = master[master.index("--port") + 1]
    assert replica[replica.index("--replicaof") + 1:][:2] == ["127.0.0.1", port]
    sentinels = {name: s for name, s in services.items() if name.startswith("sentinel-")}
    assert len(sentinels) == 3
    listed = []
    for s in sentinels.values():
        assert s["network_mode"] == "host" and "redis-master" in s["depends_on"]
        script = s["command"][-1]
        assert f"sentinel monitor {settings['redis']['master_name']} 127.0.0.1 {port} 2" \
            in script and "timeout 60" in script  # closes what ndb_redis leaves open
        listed.append(f"127.0.0.1:{s['environment']['SENTINEL_PORT']}")
    assert sorted(listed) == sorted(settings["redis"]["sentinels"])
    assert "url" not in settings["redis"]
    edge = services["edge"]
    assert edge["command"] == ["run", "--config", SETTINGS_IN_CONTAINER,
                               "--rundir", "/run/trunkedge"]
    assert ((ROOT / "examples" / "settings-sentinel.yaml").resolve(), SETTINGS_IN_CONTAINER,
            True) in mounts(edge)
    assert set(sentinels) <= set(edge["depends_on"])
