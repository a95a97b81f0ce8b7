"""The edge against itself, interleaved: what metrics and records cost (issue target:
at most 1.1x the CPU per call) and what customer limits cost (1.1x, one round trip).

    .venv/bin/python bench/compare.py                          # 5 rounds at 1200 calls/s
    .venv/bin/python bench/compare.py --rounds 7 --rate 900 --scenarios ip

CPU per call on a shared machine moves ±10-20 % from one run to the next, more than the
differences measured here; bench/run.py measures one target after the other. This tool
starts both edges at once, each with its own Redis and SIPp gateway, as bench/run.py
does: `edge` (metrics and records on, as an operator runs it) and `edge-bare` (both off).
Then, round after round, it places the same calls on each in turn (ip, ip-limited,
digest, digest-limited on `edge`; ip and digest on `edge-bare`), so that whatever else
the machine does falls on every measurement alike. One JSON line per run, then the
medians and the ratios of the medians: edge/edge-bare (metrics and records) and
limited/unlimited (on `edge`), with the round trips per call.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import LIMITED, Bench, bench_edge, population, provision

from harness import Gateway, RedisServer

ON, BARE = "edge", "edge-bare"


def start(work: Path, name: str, children: int, on: bool,
          stops: list[Callable[[], object]]) -> Bench:
    """An edge with its Redis and gateway, provisioned as bench/run.py provisions it."""
    redis = RedisServer(work / name / "redis")
    gateway = Gateway("eu1", work / name / "gw", scenario="gateway_answers_anything")
    redis.start()
    stops.append(lambda: redis.stop(save=False))
    gateway.start()
    stops.append(gateway.stop)
    edge = bench_edge(work / name / "edge", redis.url, gateway.uri, children, "tlsf",
                      metrics=on, records=on)
    edge.write_settings()
    provision(edge, population(1, 1))
    edge.start()
    stops.append(edge.stop)
    return Bench(work / name, redis, edge, name)


def median_line(runs: list[dict[str, Any]]) -> dict[str, Any]:
    cpu = [r["kamailio_cpu_ms_per_call"] for r in runs]
    return {"target": runs[0]["target"], "scenario": runs[0]["scenario"], "runs": len(runs),
            "cpu_ms_per_call_median": round(statistics.median(cpu), 3),
            "cpu_ms_per_call": cpu, "failed": sum(r["failed"] for r in runs),
            "redis_round_trips_per_call": statistics.median(
                r["redis_round_trips_per_call"] for r in runs)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenarios", default="ip,digest")
    ap.add_argument("--rate", type=int, default=1200)
    ap.add_argument("--duration", type=int, default=6, help="seconds per run")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--children", type=int, default=4)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="trunkedge-compare-"))
    plan = [(target, kind) for kind in args.scenarios.split(",")
            for target, kind in ((ON, kind), (BARE, kind), (ON, kind + LIMITED))]
    stops: list[Callable[[], object]] = []
    try:
        benches = {name: start(work, name, args.children, on, stops)
                   for name, on in ((ON, True), (BARE, False))}
        for target, scenario in plan:  # warm-up, not reported
            benches[target].run(scenario, 200, 2)
        results: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for _ in range(args.rounds):
            for target, scenario in plan:
                line = benches[target].run(scenario, args.rate, args.duration)
                print(json.dumps(line), flush=True)
                results.setdefault((target, scenario), []).append(line)
    finally:
        for stop in reversed(stops):
            stop()
    medians = {key: median_line(runs) for key, runs in results.items()}
    for line in medians.values():
        print(json.dumps(line), flush=True)
    for kind in args.scenarios.split(","):
        for name, over, under in (("edge/edge-bare", (ON, kind), (BARE, kind)),
                                  ("limited/unlimited", (ON, kind + LIMITED), (ON, kind))):
            a, b = medians[over], medians[under]
            print(json.dumps({
                "scenario": over[1], "ratio": name, "rate": args.rate,
                "cpu_per_call": round(a["cpu_ms_per_call_median"]
                                      / b["cpu_ms_per_call_median"], 3),
                "round_trips_per_call": [a["redis_round_trips_per_call"],
                                         b["redis_round_trips_per_call"]]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
