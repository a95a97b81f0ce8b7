"""Instructions per call, counted by valgrind's callgrind: the same figure on any run.

    .venv/bin/python bench/instructions.py                    # every target, ip and digest
    .venv/bin/python bench/instructions.py --targets edge --scenarios ip,ip-limited

CPU time per call (bench/run.py) moves ±10 % from run to run on a shared machine;
instruction counts do not (the same tree gives the same count within ~0.5 %), so they
tell what a change to the per-call work bought. For each target (those of bench/run.py)
and scenario it starts a Redis, a SIPp gateway and the target with every Kamailio process
under `valgrind --tool=callgrind` (instrumentation switched on only for the measurement),
places a warm-up, zeroes the counters, places `--calls` calls at 10/s and sums what each
process executed. One JSON line each: instructions per call in the UDP workers (the
per-call work) and in all processes (with timers and the edge's watcher, whose cost is
mostly per second, not per call), then the workers' ratios edge/native-full, edge/native,
edge/kemi. User-space instructions only: the kernel's share (sockets, scheduling), which
all targets pay alike, is not counted, so CPU ratios are smaller than these.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import LIMITED, Bench, Native, bench_edge, population, provision, render_native

from harness import (
    VENV_BIN,
    Edge,
    Gateway,
    RedisServer,
    children_of,
    sip_request,
    status_of,
    wait_until,
)

RATE = 10  # calls/s: valgrind makes Kamailio ~50x slower
START_S = 180  # Kamailio and Python start slowly under valgrind
CHILDREN = 2  # UDP workers: the processes right after the main one


def valgrind_kamailio(folder: Path, out: Path) -> Path:
    """A `kamailio` first on PATH that runs the real one under callgrind."""
    folder.mkdir(parents=True, exist_ok=True)
    wrapper = folder / "kamailio"
    wrapper.write_text(
        "#!/bin/sh\n"
        f"exec valgrind --tool=callgrind --trace-children=yes --instr-atstart=no "
        f"--callgrind-out-file={out}/cg.%p {shutil.which('kamailio') or '/usr/sbin/kamailio'}"
        ' "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


def start_edge(edge: Edge) -> Edge:
    edge.write_settings()
    edge.proc = subprocess.Popen(
        [str(VENV_BIN / "trunkedge"), "run", "--config", str(edge.settings_path),
         "--rundir", str(edge.rundir)],
        stdout=edge.log_path.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)
    wait_until(edge.ready, START_S, "the edge under valgrind", interval=0.5)
    return edge


def start_native(native: Native, wrapper: Path) -> Native:
    run = native.workdir / "run"
    cfg, subst = render_native(run, native.target, native.port, native.redis_port,
                               native.gateway, CHILDREN)
    native.proc = subprocess.Popen(
        [str(wrapper), "-f", str(cfg), "-DD", "-E", "-m", "1024", "-M", "16", "-x", "tlsf",
         "-Y", str(run), "-P", str(run / "kamailio.pid")],
        stdout=(native.workdir / "kamailio.log").open("ab"), stderr=subprocess.STDOUT,
        env={**os.environ, **subst})
    wait_until(lambda: status_of(sip_request((native.host, native.port), "OPTIONS",
                                             f"sip:{native.address}", timeout=0.5)) == 200,
               START_S, f"{native.target} under valgrind", interval=0.5)
    return native


def control(main_pid: int, *command: str) -> None:
    """callgrind_control for this target's processes only (without a PID it would act on
    every valgrind process of the user, another measurement's too)."""
    for pid in [main_pid, *children_of(main_pid)]:
        subprocess.run(["callgrind_control", *command, str(pid)], capture_output=True,
                       check=False)


def counted(out: Path) -> dict[int, int]:
    """Instructions per process of the dump callgrind_control -d made (cg.<pid>.1)."""
    found = {}
    for path in out.glob("cg.*.1"):
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("summary:"):
                found[int(path.name.split(".")[1])] = int(line.split()[1])
    return found


def measure(target: str, scenario: str, calls: int, work: Path, records: bool = True,
            metrics: bool = True, domains: int = 1, cidrs: int = 1) -> dict[str, Any]:
    out = work / "callgrind"
    out.mkdir(parents=True)
    wrapper = valgrind_kamailio(work / "bin", out)
    old_path = os.environ["PATH"]
    os.environ["PATH"] = f"{wrapper.parent}:{old_path}"
    redis = RedisServer(work / "redis")
    gateway = Gateway("eu1", work / "gw", scenario="gateway_answers_anything")
    runner: Any = None
    try:
        redis.start()
        gateway.start()
        edge = bench_edge(work / "edge", redis.url, gateway.uri, CHILDREN, "tlsf",
                          metrics=metrics, records=records)
        edge.write_settings()
        provision(edge, population(domains, cidrs))
        runner = start_edge(edge) if target == "edge" else start_native(
            Native(work / "native", redis.port, gateway.uri, CHILDREN, "tlsf", target), wrapper)
        bench = Bench(work, redis, runner, target)
        bench.run(scenario, RATE, 2)  # warm-up, not instrumented
        control(runner.proc.pid, "-i", "on")
        bench.run(scenario, RATE // 2, 2)  # warm-up, instrumented (caches of every kind)
        time.sleep(1)
        control(runner.proc.pid, "-z")
        line = bench.run(scenario, RATE, max(1, calls // RATE))
        time.sleep(2)  # the last BYEs' dialog events, record writes
        control(runner.proc.pid, "-d")
        time.sleep(2)
    finally:
        os.environ["PATH"] = old_path
        if runner is not None:
            runner.stop()
        gateway.stop()
        redis.stop(save=False)
    per_process = counted(out)
    pids = sorted(per_process)
    done = max(line["calls"], 1)
    return {"target": target, "scenario": scenario, "records": records, "metrics": metrics,
            "work": str(work), "domains": domains,
            "cidrs": cidrs, "calls": line["calls"],
            "failed": line["failed"],
            "worker_instructions_per_call": sum(per_process[p] for p in pids[1:1 + CHILDREN])
            // done,
            "all_instructions_per_call": sum(per_process.values()) // done}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", default="native,native-full,kemi,edge")
    ap.add_argument("--scenarios", default="ip,digest")
    ap.add_argument("--calls", type=int, default=100)
    ap.add_argument("--domains", type=int, default=1, help="as bench/run.py's (scale)")
    ap.add_argument("--cidrs", type=int, default=1)
    ap.add_argument("--no-records", action="store_true",
                    help="the edge without call detail records (to see what they cost)")
    ap.add_argument("--no-metrics", action="store_true",
                    help="the edge without its Prometheus endpoint (to see what it costs)")
    args = ap.parse_args()
    if not shutil.which("valgrind") or not shutil.which("callgrind_control"):
        print("valgrind is not installed (Debian: valgrind)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="trunkedge-instructions-"))
    results: dict[tuple[str, str], int] = {}
    for scenario in args.scenarios.split(","):
        for target in args.targets.split(","):
            if scenario.endswith(LIMITED) and target != "edge":
                continue
            line = measure(target, scenario, args.calls, work / f"{target}-{scenario}",
                           records=not args.no_records, metrics=not args.no_metrics,
                           domains=args.domains,
                           cidrs=args.cidrs)
            print(json.dumps(line), flush=True)
            if not line["failed"]:
                results[(target, scenario)] = line["worker_instructions_per_call"]
        for under in ("native-full", "native", "kemi"):
            over, base = results.get(("edge", scenario)), results.get((under, scenario))
            if over and base:
                print(json.dumps({"scenario": scenario, "ratio": f"edge/{under}",
                                  "worker_instructions": round(over / base, 2)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
