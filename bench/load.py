"""A bounded SIPp load run through the edge; prints one JSON line.

    .venv/bin/python bench/load.py --scenario digest --rate 200 --calls 3000

It starts its own redis-server, the edge (`trunkedge run`) and a SIPp gateway on free
loopback ports, provisions one customer, drives one SIPp UAC at the given rate and reports
calls, failures and the Kamailio CPU per call (utime + stime of all its processes, /proc).
Everything stops by itself: SIPp exits after --calls, or after --timeout seconds.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from harness import BASE, Edge, Gateway, RedisServer, run_sipp

USER, PASSWORD = "31000000", "bench-pass"
CALLER_IDS = {"allow": ["+31*"], "default": "+31200000000", "policy": "replace"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", choices=["ip", "digest"], default="digest")
    ap.add_argument("--rate", type=float, default=200)
    ap.add_argument("--calls", type=int, default=3000)
    ap.add_argument("--children", type=int, default=4)
    ap.add_argument("--timeout", type=float, default=120)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="trunkedge-load-"))
    server = RedisServer(work / "redis")
    gateway = Gateway("eu1", work / "gw")
    edge = Edge(work / "edge", "", {})
    try:
        server.start()
        gateway.start()
        edge = Edge(work / "edge", server.url, {"eu1": gateway.uri}, children=args.children,
                    shm_mb=1024, log_level=1)
        edge.start()
        edge.provision({
            "acls": {"office": {"ips": ["127.0.0.1/32"], "caller_ids": CALLER_IDS},
                     "roaming": {"accounts": [{"username": USER, "password": PASSWORD}],
                                 "caller_ids": CALLER_IDS}},
            "domains": {"acme": {"acls": ["office", "roaming"]}},
        })
        digest = args.scenario == "digest"
        cpu0, t0 = edge.cpu_seconds(), time.monotonic()
        result = run_sipp(
            "call_answered_after_challenge" if digest else "call_answered",
            edge.address, workdir=work, number="+3123456789", domain=f"acme.{BASE}",
            source="127.0.0.2" if digest else "127.0.0.1", from_user=USER,
            auth=(USER, PASSWORD) if digest else None, calls=args.calls, rate=args.rate,
            timeout=args.timeout, extra=["-trace_stat", "-stf", str(work / "stat.csv")],
        )
        elapsed, cpu = time.monotonic() - t0, edge.cpu_seconds() - cpu0
        stats = _final_stats(work / "stat.csv")
        ok = int(stats.get("SuccessfulCall(C)", 0))
        failed = int(stats.get("FailedCall(C)", 0))
        print(json.dumps({
            "scenario": args.scenario, "rate_offered": args.rate,
            "rate_achieved": round((ok + failed) / elapsed, 1), "calls": ok + failed,
            "successful": ok, "failed": failed,
            "retransmissions": int(stats.get("Retransmissions(C)", 0)),
            "kamailio_cpu_ms_per_call": round(1000 * cpu / max(ok + failed, 1), 3),
            "sipp_rc": result.returncode,
        }))
        return 0 if failed == 0 else 1
    finally:
        edge.stop()
        gateway.stop()
        server.stop(save=False)


def _final_stats(path: Path) -> dict[str, str]:
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()] if path.exists() else []
    if len(lines) < 2:
        return {}
    head, last = lines[0].split(";"), lines[-1].split(";")
    return {re.sub(r"\s", "", h): v for h, v in zip(head, last, strict=False)}


if __name__ == "__main__":
    sys.exit(main())
