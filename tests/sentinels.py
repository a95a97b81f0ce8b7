"""Real Redis Sentinel for the tests: a master, a replica and sentinels, all Debian's
redis-server and redis-sentinel on free loopback ports, each stopped by its own PID.

Timings are short so that a failover takes a few seconds: a master unanswered for
DOWN_AFTER_MS is down, and the sentinels (quorum 2) promote the replica.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from harness import RedisServer, free_port, stop_process, wait_until

MASTER_NAME = "te-master"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 3000


class Sentinel:
    """One redis-sentinel watching MASTER_NAME; its config file is its own (it rewrites it)."""

    def __init__(self, workdir: Path, master_port: int) -> None:
        self.dir, self.port = workdir, free_port()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conf = self.dir / "sentinel.conf"
        self.conf.write_text("\n".join([
            f"port {self.port}", "bind 127.0.0.1", f"dir {self.dir}",
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2",
            f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}",
            f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}",
            f"sentinel parallel-syncs {MASTER_NAME} 1", ""]))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        binary = shutil.which("redis-sentinel")
        if binary is None:
            pytest.fail("redis-sentinel is not installed: run scripts/setup.sh --test")
        self.proc = subprocess.Popen([binary, str(self.conf)],
                                     stdout=(self.dir / "sentinel.log").open("ab"),
                                     stderr=subprocess.STDOUT)
        wait_until(lambda: self.master() is not None, 10, f"sentinel {self.port}")

    def client(self) -> redis.Redis:
        return redis.Redis("127.0.0.1", self.port, socket_timeout=1)

    def master(self) -> tuple[str, int] | None:
        """The master this sentinel names now (None: it does not answer)."""
        try:
            found = self.client().sentinel_get_master_addr_by_name(MASTER_NAME)
        except redis.RedisError:
            return None
        if not found:
            return None
        host = found[0].decode() if isinstance(found[0], bytes) else str(found[0])
        return host, int(found[1])

    def knows(self, sentinels: int, replicas: int) -> bool:
        """It has found `sentinels` other sentinels and `replicas` healthy replicas."""
        try:
            c = self.client()
            others = c.sentinel_sentinels(MASTER_NAME)
            healthy = [r for r in c.sentinel_slaves(MASTER_NAME)
                       if not {"s_down", "o_down", "disconnected"} & set(r["flags"].split(","))
                       and r.get("master-link-status") == "ok"]
        except redis.RedisError:
            return False
        return len(others) >= sentinels and len(healthy) >= replicas

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop it (SIGKILL: it dies at once)."""
        if self.proc is not None:
            stop_process(self.proc, sig=sig)
            self.proc = None


@contextlib.contextmanager
def sentinel_cluster(workdir: Path) -> Iterator[SentinelCluster]:
    """A SentinelCluster started in `workdir`, stopped on leaving."""
    cluster = SentinelCluster(workdir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


class SentinelCluster:
    """A master, a replica of it and `count` sentinels (quorum 2)."""

    def __init__(self, workdir: Path, count: int = 3) -> None:
        self.master = RedisServer(workdir / "redis-a")
        self.replica = RedisServer(workdir / "redis-b",
                                   args=("--replicaof", "127.0.0.1", str(self.master.port)))
        self.sentinels = [Sentinel(workdir / f"sentinel-{i}", self.master.port)
                          for i in range(count)]

    @property
    def addresses(self) -> list[str]:
        return [s.address for s in self.sentinels]

    def start(self) -> None:
        self.master.start()
        self.replica.start()
        wait_until(lambda: self.link_up(self.replica), 10, "the replica to sync")
        for s in self.sentinels:
            s.start()
        self.wait_settled()

    def wait_settled(self, timeout: float = 30) -> None:
        """Until every live sentinel knows the others and a healthy replica (a failover
        needs both)."""
        live = [s for s in self.sentinels if s.proc is not None]
        wait_until(lambda: all(s.knows(len(live) - 1, 1) for s in live), timeout,
                   "the sentinels to know each other and the replica", interval=0.2)

    @staticmethod
    def link_up(server: RedisServer) -> bool:
        try:
            info = server.client().info("replication")
        except redis.RedisError:
            return False
        return info.get("role") == "slave" and info.get("master_link_status") == "up"

    def named_master(self) -> tuple[str, int] | None:
        """The master the first live sentinel names."""
        for s in self.sentinels:
            if s.proc is not None and (found := s.master()) is not None:
                return found
        return None

    def node_at(self, port: int) -> RedisServer:
        return self.master if self.master.port == port else self.replica

    def kill_master(self) -> RedisServer:
        """SIGKILL the node the sentinels name as master; returns it (stopped)."""
        named = self.named_master()
        assert named is not None, "no sentinel names a master"
        node = self.node_at(named[1])
        assert node.proc is not None
        stop_process(node.proc, sig=signal.SIGKILL)
        node.proc = None
        return node

    def wait_promotion(self, old_port: int, timeout: float = 15) -> float:
        """Poll the sentinels until they name another master; the wall-clock time (s) at
        which they were first seen naming it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            named = self.named_master()
            if named is not None and named[1] != old_port:
                return time.time()
            time.sleep(0.01)
        raise TimeoutError(f"no promotion within {timeout}s")

    def sentinel_connections_held(self) -> int:
        """Connections to the live sentinels whose last command was `get-master-addr-by-name`:
        those ndb_redis 5.6.3 opened to ask and never closed (redis-py asks `masters`)."""
        return sum(c.get("cmd") == "sentinel|get-master-addr-by-name"
                   for s in self.sentinels if s.proc is not None
                   for c in s.client().client_list())

    def stop(self) -> None:
        for s in self.sentinels:
            s.stop()
        for node in (self.replica, self.master):
            node.stop(save=False)
