"""Where an edge call's time goes: µs per step of each kind of message, in the workers.

    .venv/bin/python bench/per_step.py                       # ip and digest, 600 calls/s
    .venv/bin/python bench/per_step.py --scenarios digest --rate 300 --json

For each scenario it starts its own Redis, gateway and edge (as bench/run.py does, metrics
and records on) with TRUNKEDGE_PROFILE_DIR set, so that bench/steps.py times the adapter's
steps in every worker, runs a warm-up and then `--duration` seconds of calls, and prints
one table per scenario: for each kind of message (INVITE admitted, INVITE challenged,
ACK, BYE, replies, dialog events) how many there were and the mean CPU µs of each
step per message (thread_time_ns), plus Kamailio's whole CPU per call (/proc) beside the
Python share. Steps are inclusive (a step's time holds what runs under it); each timer
is a clock_gettime system call (~1 µs), so the profiled edge is slower than the real one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import Bench, bench_edge, population, provision

from harness import Edge, Gateway, RedisServer

PROFILE_ENV = "TRUNKEDGE_PROFILE_DIR"


def collect(directory: Path) -> dict[str, dict[str, Any]]:
    """Every process's sums, added up."""
    total: dict[str, dict[str, Any]] = {}
    for path in directory.glob("*.json"):
        for kind, entry in json.loads(path.read_text()).items():
            into = total.setdefault(kind, {"n": 0, "steps": defaultdict(int)})
            into["n"] += entry["n"]
            for step, ns in entry["steps"].items():
                into["steps"][step] += ns
    return total


def profile(scenario: str, rate: int, duration: int, work: Path,
            children: int) -> dict[str, Any]:
    directory = work / "profile"
    directory.mkdir(parents=True)
    redis = RedisServer(work / "redis")
    gateway = Gateway("eu1", work / "gw", scenario="gateway_answers_anything")
    edge: Edge | None = None
    os.environ[PROFILE_ENV] = str(directory)
    try:
        redis.start()
        gateway.start()
        edge = bench_edge(work / "edge", redis.url, gateway.uri, children, "tlsf")
        edge.write_settings()
        provision(edge, population(1, 1))
        edge.start()
        bench = Bench(work, redis, edge, "edge")
        bench.run(scenario, 200, 2)
        time.sleep(1.2)  # every worker has dumped its warm-up
        before = collect(directory)
        line = bench.run(scenario, rate, duration)
        time.sleep(1.5)  # ... and its last sums (each dumps at most once a second)
        bench.run("ip", 5, 1)  # a message per worker after the sleep: the final dumps
        after = collect(directory)
    finally:
        os.environ.pop(PROFILE_ENV, None)
        if edge is not None:
            edge.stop()
        gateway.stop()
        redis.stop(save=False)
    return {"line": line, "kinds": difference(after, before)}


def difference(after: dict[str, dict[str, Any]],
               before: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {}
    for kind, entry in after.items():
        old = before.get(kind, {"n": 0, "steps": {}})
        n = entry["n"] - old["n"]
        if n > 0:
            out[kind] = {"n": n, "us": {step: round((ns - old["steps"].get(step, 0)) / n / 1000,
                                                    1)
                                        for step, ns in entry["steps"].items()}}
    return out


def table(scenario: str, result: dict[str, Any]) -> str:
    line, kinds = result["line"], result["kinds"]
    calls = max(line["calls"], 1)
    python_us = sum(k["n"] * max(k["us"].get("(whole request)", 0),
                                 k["us"].get("(whole callback)", 0))
                    for k in kinds.values()) / calls
    rows = [f"### {scenario}: {line['calls']} calls at {line['rate_offered']}/s, "
            f"{line['failed']} failed; Kamailio CPU {1000 * line['kamailio_cpu_ms_per_call']:.0f}"
            f" µs/call, of which Python {python_us:.0f} µs/call", ""]
    for kind, entry in sorted(kinds.items(), key=lambda kv: -kv[1]["n"]):
        if entry["n"] < calls / 10:
            continue  # the tail after the measurement (final dumps)
        rows += [f"| {kind} (n={entry['n']}) | µs |", "|---|---|"]
        for step, us in sorted(entry["us"].items(), key=lambda kv: -kv[1]):
            rows.append(f"| {step} | {us} |")
        rows.append("")
    return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenarios", default="ip,digest")
    ap.add_argument("--rate", type=int, default=600)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--children", type=int, default=4)
    ap.add_argument("--json", action="store_true", help="JSON lines instead of tables")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="trunkedge-profile-"))
    for scenario in args.scenarios.split(","):
        result = profile(scenario, args.rate, args.duration, work / scenario, args.children)
        print(json.dumps({"scenario": scenario, **result}) if args.json
              else table(scenario, result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
