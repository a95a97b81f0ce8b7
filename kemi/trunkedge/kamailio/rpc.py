"""Kamailio's JSON-RPC over the runtime folder's datagram socket, and what we read from it."""

from __future__ import annotations

import json
import os
import secrets
import socket
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from trunkedge.core import counters
from trunkedge.core.errors import TrunkEdgeError
from trunkedge.core.pops import POP_NAMES
from trunkedge.kamailio import symbols

SOCKET_NAME = "kamailio_rpc.sock"


class RpcError(TrunkEdgeError):
    pass


def call(rundir: Path, method: str, *params: object, timeout: float = 5.0) -> Any:
    """One JSON-RPC request to the edge whose runtime folder is `rundir`."""
    server = rundir / SOCKET_NAME
    request = {"jsonrpc": "2.0", "method": method, "params": list(params), "id": 1}
    # the client's socket lives in the runtime folder (short names: a socket path has at
    # most 107 bytes): Kamailio must reach it, also with a private /tmp (PrivateTmp)
    me = rundir / f"c{os.getpid()}-{secrets.token_hex(3)}.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(str(me))
        try:
            s.settimeout(timeout)
            s.sendto(json.dumps(request).encode(), str(server))
            reply = json.loads(s.recv(1 << 20))
        except (OSError, ValueError) as e:
            raise RpcError(f"no JSON-RPC answer from {server}: {e}") from e
        finally:
            me.unlink(missing_ok=True)
    if "error" in reply:
        raise RpcError(f"{method}: {reply['error']}")
    return reply.get("result")


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def counters_of(dump: Any) -> dict[str, int]:
    """`htable.dump` of symbols.HT_METRICS as {name: value}."""
    return {str(e["name"]): int(e["value"]) for e in _walk(dump)
            if "name" in e and "value" in e}


def status(ds_list: Any, metrics: dict[str, int]) -> dict[str, Any]:
    """Per POP and gateway: state (active/inactive, probing), calls sent, failovers."""
    pops: dict[str, dict[str, Any]] = defaultdict(lambda: {"gateways": []})
    for entry in _walk(ds_list):
        if "SET" not in entry:
            continue
        ds_set = entry["SET"]
        set_id = int(ds_set.get("ID", 0))
        if not 1 <= set_id <= len(POP_NAMES):
            continue
        pop = POP_NAMES[set_id - 1]
        for target in _walk(ds_set.get("TARGETS", [])):
            dest = target.get("DEST")
            if not isinstance(dest, dict):
                continue
            uri, flags = str(dest.get("URI")), str(dest.get("FLAGS", ""))
            pops[pop]["gateways"].append({
                "uri": uri,
                "state": "active" if flags.startswith("A") else
                         "disabled" if flags.startswith("D") else "inactive",
                "probing": "P" in flags,
                "sent": metrics.get(counters.sent(pop, uri), 0),
                "failovers": metrics.get(counters.failover(pop, uri), 0),
            })
    for pop in pops:
        pops[pop]["sent"] = metrics.get(counters.sent(pop), 0)
        pops[pop]["failovers"] = metrics.get(counters.failover(pop), 0)
    return {
        "pops": {p: pops[p] for p in POP_NAMES if p in pops},
        "admitted": counters.group(metrics, counters.ADMITTED),
        "refused": counters.group(metrics, counters.REFUSED),
        "dropped": counters.group(metrics, counters.DROPPED),
        "banned": metrics.get(counters.BANNED, 0),
    }


def edge_status(rundir: Path) -> dict[str, Any]:
    """What `trunkedge status` prints: the gateways' states and the edge's counters."""
    metrics = counters_of(call(rundir, "htable.dump", symbols.HT_METRICS))
    return {**status(call(rundir, "dispatcher.list"), metrics), **transports(rundir)}


def listeners(sockets: Any) -> list[str]:
    """`core.sockets_list` as the settings spell sockets: proto:address:port."""
    out = []
    for entry in _walk(sockets):
        sock = entry.get("socket")
        if isinstance(sock, dict) and {"proto", "address", "port"} <= set(sock):
            address = str(sock["address"])
            host = f"[{address.strip('[]')}]" if ":" in address else address
            out.append(f"{sock['proto']}:{host}:{sock['port']}")
    return out


def transports(rundir: Path) -> dict[str, Any]:
    """The edge's listen sockets and, with a TLS one, its TLS connections (open, and at
    most: tls.max_connections)."""
    socks = listeners(call(rundir, "core.sockets_list"))
    report: dict[str, Any] = {"listeners": socks}
    if any(sock.startswith("tls:") for sock in socks):
        info = next(_walk(call(rundir, "tls.info")), {})
        report["tls_connections"] = {"open": int(info.get("opened_connections", 0)),
                                     "max": int(info.get("max_connections", 0))}
    return report
