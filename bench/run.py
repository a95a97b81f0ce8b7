"""The benchmark: the edge against native Kamailio references, same load, same run.

    .venv/bin/python bench/run.py                 # IP-ACL and digest, every target
    .venv/bin/python bench/run.py --rates 200 --duration 15 --targets edge
    .venv/bin/python bench/run.py --domains 100000 --cidrs 10000   # scale run
    .venv/bin/python bench/run.py --import-only --domains 100000   # provisioning speed

Targets: `native` (bench/native/kamailio.cfg: the least a config does for these calls),
`native-full` (bench/native-full/kamailio.cfg: what an experienced operator would write in
plain kamailio.cfg for the same product rules: scanners, flood guard, domain and IP ACLs
from the same Redis keys behind htable caches, digest against the account's ACL, caller
identity and privacy, dispatcher failover, dialogs, topology hiding, acc CDRs), `kemi` (the
minimal routes line for line in KEMI Python, bench/native/kemi_minimal.py: what embedded
Python costs per message before any policy) and `edge` (`trunkedge run`). For
each it starts a redis-server, a SIPp gateway and the target on free loopback ports,
provisions the same population through the CLI, then drives SIPp UACs through (a) an
IP-ACL call and (b) a digest call, stepping the rate until more than 0.1 % of calls fail.
One JSON line per run: scenario, rate offered and achieved, calls, failed,
retransmissions, p50/p99 response time (ms), Kamailio CPU ms per call (/proc), Redis
commands per call (INFO commandstats). Then the ratios edge/native, edge/native-full
(the targets), kemi/native, edge/kemi and native-full/native. Every run is bounded in
calls and time and stops by itself.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from harness import (
    BASE,
    ROOT,
    Edge,
    Gateway,
    RedisServer,
    cpu_seconds_of,
    free_port,
    sip_request,
    status_of,
    stop_process,
    wait_until,
)

USER, PASSWORD = "31000000", "bench-pass"
CALLER_IDS = {"allow": ["+31*"], "default": "+31200000000", "policy": "replace"}
PREFIX = "te-test:"  # harness.Edge's prefix; the native config reads the same keys
SOURCES = {"ip": "127.0.0.1", "digest": "127.0.0.2"}
LIMITED = "-limited"  # a scenario on the domain with limits (the edge only): ip-limited, ...
LIMITS = {"cps": 1_000_000, "channels": 1_000_000}  # set, never reached
FAILED_LIMIT = 0.001
# Verbs each target's workers send themselves, one round trip each (commands inside the
# edge's scripts are not round trips; the watcher's heartbeat GET is not per call). None:
# every command (native-full's workers send each one themselves: hget, hmget, smembers,
# scard, set, publish, and its timer's version GET; a pipeline counts one per command).
ROUND_TRIP_VERBS: dict[str, tuple[str, ...] | None] = {
    "edge": ("evalsha", "eval", "script|load"), "native": ("hget",), "kemi": ("hget",),
    "native-full": None}
ROUND_TRIP_VERBS["edge-bare"] = ROUND_TRIP_VERBS["edge"]  # bench/compare.py's bare edge
NATIVE_CONFIGS = {"native": ("native", "kamailio.cfg"), "kemi": ("native", "kemi.cfg"),
                  "native-full": ("native-full", "kamailio.cfg")}
"""Each native target's folder under bench/ and the config its wrapper includes."""
SECRET = "test-secret"  # harness.Edge's auth.secret (native-full's topology hiding key)


def render_native(run: Path, target: str, port: int, redis_port: int, gateway: str,
                  children: int) -> tuple[Path, dict[str, str]]:
    """Write a native target's wrapper config into `run` (with native-full, also its
    dispatcher list: the gateway, set 1): the wrapper's path and its substitutions (also
    the environment of the KEMI baseline's script)."""
    folder, name = NATIVE_CONFIGS[target]
    native = ROOT / "bench" / folder
    run.mkdir(parents=True, exist_ok=True)
    subst = {"BN_RUNDIR": str(run), "BN_PREFIX": PREFIX, "BN_GATEWAY": gateway,
             "BN_IP_SOURCE": SOURCES["ip"], "BN_REDIS_PORT": str(redis_port),
             "BN_REALM": BASE, "BN_SECRET": SECRET,
             "BN_KEMI_SCRIPT": str(ROOT / "bench" / "native" / "kemi_minimal.py")}
    if target == "native-full":
        (run / "dispatcher.list").write_text(
            "# setid uri flags(8: probing) priority attrs\n"
            f"1 {gateway} 8 0 pop=eu1\n")
    lines = ["#!KAMAILIO", *(f'#!substdef "!{k}!{v}!g"' for k, v in subst.items()),
             f"#!define BN_CHILDREN {children}",
             f"listen=udp:127.0.0.1:{port}",
             f'include_file "{native / name}"']
    cfg = run / "kamailio.cfg"
    cfg.write_text("\n".join(lines) + "\n")
    return cfg, subst


class Native:
    """A native reference under the same Kamailio flags as the edge: `target` native
    (bench/native/kamailio.cfg), kemi (bench/native/kemi.cfg, its routes in KEMI Python) or
    native-full (bench/native-full/kamailio.cfg)."""

    def __init__(self, workdir: Path, redis_port: int, gateway: str, children: int,
                 memory_manager: str, target: str = "native") -> None:
        self.workdir, self.port = workdir, free_port()
        self.host, self.address = "127.0.0.1", f"127.0.0.1:{self.port}"
        self.redis_port, self.gateway, self.children = redis_port, gateway, children
        self.memory_manager, self.target = memory_manager, target
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        run = self.workdir / "run"
        cfg, subst = render_native(run, self.target, self.port, self.redis_port,
                                   self.gateway, self.children)
        self.proc = subprocess.Popen(
            [shutil.which("kamailio") or "/usr/sbin/kamailio", "-f", str(cfg), "-DD", "-E",
             "-m", "1024", "-M", "16", "-x", self.memory_manager,
             "-Y", str(run), "-P", str(run / "kamailio.pid")],
            stdout=(self.workdir / "kamailio.log").open("ab"), stderr=subprocess.STDOUT,
            env={**os.environ, **subst})
        try:
            wait_until(lambda: status_of(sip_request(
                (self.host, self.port), "OPTIONS", f"sip:{self.address}", timeout=0.3)) == 200,
                20, f"the {self.target} reference")
        except TimeoutError:
            self.stop()
            raise

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        return cpu_seconds_of(self.proc.pid)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, 15)
            self.proc = None


@dataclass
class Bench:
    work: Path
    redis: RedisServer
    target: Any
    name: str

    def commands(self) -> tuple[int, int]:
        """(all commands, round trips): commands run inside Lua scripts count in the first
        only; the second counts the verbs each target sends itself."""
        stats = self.redis.client().info("commandstats")
        calls = {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}
        calls.pop("info", None)
        verbs = ROUND_TRIP_VERBS[self.name]
        trips = sum(calls.values()) if verbs is None else sum(calls.get(c, 0) for c in verbs)
        return sum(calls.values()), trips

    def run(self, scenario: str, rate: int, duration: int) -> dict[str, Any]:
        calls = rate * duration
        kind = scenario.removesuffix(LIMITED)
        digest = kind == "digest"
        uacs = max(1, (rate + 999) // 1000)  # one SIPp UAC saturates near 1000 calls/s
        cpu0, (cmd0, rt0), t0 = self.target.cpu_seconds(), self.commands(), time.monotonic()
        procs = []
        for i in range(uacs):
            out = self.work / f"{self.name}-{scenario}-{rate}-{i}"
            out.mkdir(parents=True, exist_ok=True)
            procs.append((out, subprocess.Popen(
                [sys.executable, "-c", RUN_ONE, json.dumps(dict(
                    scenario="call_answered_after_challenge" if digest else "call_answered",
                    edge=self.target.address, workdir=str(out), number="+3123456789",
                    domain=f"{'limited' if scenario.endswith(LIMITED) else 'acme'}.{BASE}",
                    source=SOURCES[kind], from_user=USER,
                    auth=[USER, PASSWORD] if digest else None, calls=calls // uacs,
                    rate=rate / uacs, hold_ms=0, timeout=duration * 3 + 30,
                    extra=["-trace_stat", "-stf", str(out / "stat.csv"), "-fd", "1",
                           "-trace_rtt", "-rtt_freq", "1", "-l", str(rate * 4)]))],
                cwd=ROOT)))
        for _, p in procs:
            p.wait(duration * 3 + 60)
        elapsed = time.monotonic() - t0
        cpu = self.target.cpu_seconds() - cpu0
        cmd1, rt1 = self.commands()
        ok = failed = retrans = 0
        rtts: list[float] = []
        for out, _ in procs:
            stats = final_stats(out)
            ok += int(stats.get("SuccessfulCall(C)", 0))
            failed += int(stats.get("FailedCall(C)", 0))
            retrans += int(stats.get("Retransmissions(C)", 0))
            rtts += response_times(out)
        done = max(ok + failed, 1)
        rtts.sort()
        return {
            "target": self.name, "scenario": scenario, "rate_offered": rate,
            "rate_achieved": round(done / elapsed, 1), "calls": ok + failed, "failed": failed,
            "retransmissions": retrans,
            "p50_ms": round(rtts[len(rtts) // 2], 2) if rtts else None,
            "p99_ms": round(rtts[int(len(rtts) * 0.99)], 2) if rtts else None,
            "kamailio_cpu_ms_per_call": round(1000 * cpu / done, 3),
            "redis_commands_per_call": round((cmd1 - cmd0) / done, 2),
            "redis_round_trips_per_call": round((rt1 - rt0) / done, 2),
        }


RUN_ONE = """
import json, sys
sys.path.insert(0, "tests")
from pathlib import Path
from harness import run_sipp
a = json.loads(sys.argv[1]); a["workdir"] = Path(a["workdir"])
a["auth"] = tuple(a["auth"]) if a["auth"] else None
run_sipp(**a)
"""


def final_stats(out: Path) -> dict[str, str]:
    """The last line of SIPp's -trace_stat file: cumulative counters."""
    path = out / "stat.csv"
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()] if path.exists() else []
    if len(lines) < 2:
        return {}
    head, last = lines[0].split(";"), lines[-1].split(";")
    return {h.strip(): v for h, v in zip(head, last, strict=False)}


def response_times(out: Path) -> list[float]:
    """Per-call response times (ms) from SIPp's -trace_rtt files."""
    times = []
    for f in out.glob("sipp-*/*_rtt.csv"):
        for line in f.read_text().splitlines()[1:]:
            parts = line.split(";")
            if len(parts) >= 2:
                with contextlib.suppress(ValueError):
                    times.append(float(parts[1]))
    return times


def population(domains: int, cidrs: int) -> dict[str, Any]:
    """`acme` (the benchmarked domain) and `domains - 1` others, each with its ACL."""
    nets = ["127.0.0.1/32"] + [f"10.{i // 256 % 256}.{i % 256}.0/24" for i in range(cidrs - 1)]
    acls: dict[str, Any] = {
        "office": {"ips": nets, "caller_ids": CALLER_IDS},
        "roaming": {"accounts": [{"username": USER, "password": PASSWORD}],
                    "caller_ids": CALLER_IDS},
    }
    doms: dict[str, Any] = {"acme": {"acls": ["office", "roaming"]},
                            "limited": {"acls": ["office", "roaming"], "limits": LIMITS}}
    for i in range(1, domains):
        acls[f"c{i}"] = {"ips": [f"172.{16 + i // 65536 % 16}.{i // 256 % 256}.{i % 256}/32"],
                         "caller_ids": CALLER_IDS}
        doms[f"cust{i}"] = {"acls": [f"c{i}"]}
    return {"acls": acls, "domains": doms}


def bench_edge(workdir: Path, redis_url: str, gateway: str, children: int,
               memory_manager: str, topology_hiding: bool = True, metrics: bool = True,
               records: bool = True) -> Edge:
    """The edge as the benchmark runs it: as an operator would (topology hiding, metrics
    and records on), quiet logs, the load's sources exempt from the flood guard."""
    return Edge(workdir, redis_url, {"eu1": gateway}, children=children, shm_mb=1024,
                log_level=1, memory_manager=memory_manager,
                security={"flood_exempt": ["127.0.0.0/8"]},
                routing={"topology_hiding": topology_hiding},
                metrics={"listen": f"127.0.0.1:{free_port()}"} if metrics else {},
                cdr={"enabled": records})


def provision(edge: Edge, config: dict[str, Any]) -> float:
    import yaml

    path = edge.workdir / "population.yaml"
    path.write_text(yaml.dump(config, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper),
                              sort_keys=False))
    started = time.monotonic()
    out = edge.cli("import", str(path))
    assert out.returncode == 0, out.stderr
    return time.monotonic() - started


class Churn:
    """`per_second` provisioning changes a second to customers no call of the benchmark
    uses (domain create, then delete), through the product's own writer."""

    def __init__(self, edge: Edge, per_second: int) -> None:
        import threading

        from trunkedge.provisioning.writer import Provisioner
        from trunkedge.store.schema import Keys

        self.writer = Provisioner(edge_redis(edge), Keys(PREFIX), BASE)
        self.per_second, self.stop = per_second, threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.changes = 0

    def run(self) -> None:
        from trunkedge.core.errors import ConfigError

        i = 0
        while self.per_second and not self.stop.wait(1 / self.per_second):
            name = f"churn{i % 500}"
            try:
                self.writer.domain_create(name)
            except ConfigError:  # there from an earlier round: this change deletes it
                self.writer.domain_delete(name)
            i += 1
            self.changes += 1

    def __enter__(self) -> Churn:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(5)


def edge_redis(edge: Edge) -> Any:
    import redis as redis_py

    return redis_py.Redis.from_url(edge.redis_url)


def run_churn(bench: Bench, edge: Edge, scenarios: list[str], rate: int, duration: int,
              churns: list[int]) -> None:
    """Each scenario at `rate` under each churn: round trips and CPU per call."""
    for scenario in scenarios:
        bench.run(scenario, 200, 2)  # warm-up
        for n in churns:
            with Churn(edge, n) as churn:
                line = bench.run(scenario, rate, duration)
            print(json.dumps({**line, "churn_per_s": n, "changes": churn.changes}),
                  flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", default="native,native-full,kemi,edge")
    ap.add_argument("--scenarios", default="ip,digest,ip-limited,digest-limited",
                    help=f"ip, digest, and the same on a domain with limits (…{LIMITED}: "
                         "the edge only)")
    ap.add_argument("--rates", default="300,600,900,1200,1500,1800,2100,2400",
                    help="rates to step through (calls/s), until >0.1%% fail")
    ap.add_argument("--duration", type=int, default=10, help="seconds per step")
    ap.add_argument("--children", type=int, default=4)
    ap.add_argument("--domains", type=int, default=1)
    ap.add_argument("--cidrs", type=int, default=1)
    ap.add_argument("--import-only", action="store_true")
    ap.add_argument("--memory-manager", default="tlsf", choices=("tlsf", "qm", "fm"),
                    help="Kamailio's -x, the same for both targets")
    ap.add_argument("--no-topology-hiding", action="store_true",
                    help="run the edge without topoh (to see what it costs)")
    ap.add_argument("--churn", default="",
                    help="e.g. 0,10,50: the edge's calls at the first rate while this many "
                         "unrelated customers change per second (cache invalidation)")
    ap.add_argument("--no-metrics", action="store_true",
                    help="run the edge without metrics (on by default, as an operator runs "
                         "it: to see what they cost)")
    ap.add_argument("--no-records", action="store_true",
                    help="run the edge without call detail records (on by default)")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="trunkedge-bench-"))
    rates = [int(r) for r in args.rates.split(",")]
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for target in args.targets.split(","):
        redis = RedisServer(work / target / "redis")
        gateway = Gateway("eu1", work / target / "gw", scenario="gateway_answers_anything")
        runner: Any = None
        try:
            redis.start()
            gateway.start()
            edge = bench_edge(work / target / "edge", redis.url, gateway.uri, args.children,
                              args.memory_manager, not args.no_topology_hiding,
                              not args.no_metrics, not args.no_records)
            edge.write_settings()
            seconds = provision(edge, population(args.domains, args.cidrs))
            print(json.dumps({"target": target, "import_domains": args.domains,
                              "import_cidrs": args.cidrs, "import_seconds": round(seconds, 2)}),
                  flush=True)
            if args.import_only:
                continue
            runner = edge if target == "edge" else Native(
                work / target / "native", redis.port, gateway.uri, args.children,
                args.memory_manager, target=target)
            runner.start()
            bench = Bench(work / target, redis, runner, target)
            if args.churn and target == "edge":
                run_churn(bench, edge, args.scenarios.split(","), rates[0], args.duration,
                          [int(n) for n in args.churn.split(",")])
                continue
            for scenario in args.scenarios.split(","):
                if scenario.endswith(LIMITED) and target != "edge":
                    continue  # the baselines have no customer limits
                bench.run(scenario, 200, 2)  # warm-up, not reported: steady state is measured
                for rate in rates:
                    line = bench.run(scenario, rate, args.duration)
                    print(json.dumps(line), flush=True)
                    results.setdefault((target, scenario), []).append(line)
                    if not _sustained(line):
                        break
        finally:
            if runner is not None:
                runner.stop()
            gateway.stop()
            redis.stop(save=False)
    for scenario in args.scenarios.split(","):
        for over, under in (("edge", "native"), ("edge", "native-full"), ("kemi", "native"),
                            ("edge", "kemi"), ("native-full", "native")):
            a, b = results.get((over, scenario), []), results.get((under, scenario), [])
            if a and b:
                print(json.dumps(ratios(scenario, f"{over}/{under}", a, b)), flush=True)
        if scenario.endswith(LIMITED):
            a = results.get(("edge", scenario), [])
            b = results.get(("edge", scenario.removesuffix(LIMITED)), [])
            if a and b:
                print(json.dumps(ratios(scenario, "limited/unlimited", a, b)), flush=True)
    shutil.rmtree(work, ignore_errors=True) if os.environ.get("BENCH_CLEAN") else None
    return 0


def _sustained(run: dict[str, Any]) -> bool:
    return bool(run["failed"] <= FAILED_LIMIT * max(run["calls"], 1)
                and run["rate_achieved"] >= 0.9 * run["rate_offered"])


def sustained(runs: list[dict[str, Any]]) -> float:
    return max((r["rate_achieved"] for r in runs if _sustained(r)), default=0.0)


def ratios(scenario: str, name: str, over: list[dict[str, Any]],
           under: list[dict[str, Any]]) -> dict[str, Any]:
    """CPU per call compared at the highest rate both sustained; sustained rates."""
    ok_over = {r["rate_offered"]: r for r in over if _sustained(r)}
    ok_under = {r["rate_offered"]: r for r in under if _sustained(r)}
    common = max(set(ok_over) & set(ok_under), default=None)
    cpu = None if common is None else round(
        ok_over[common]["kamailio_cpu_ms_per_call"]
        / ok_under[common]["kamailio_cpu_ms_per_call"], 2)
    return {
        "scenario": scenario, "ratio": name, "compared_at_rate": common,
        "cpu_per_call": cpu,
        "sustained_rate": round(sustained(over) / max(sustained(under), 1), 2),
        "sustained": [sustained(over), sustained(under)],
    }

if __name__ == "__main__":
    sys.exit(main())
