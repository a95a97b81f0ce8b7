"""Per-step timing of the edge's Python, inside Kamailio's workers (a development aid for
bench/per_step.py; never loaded in production).

kamailio/edge.py loads it only when `TRUNKEDGE_PROFILE_DIR` is set. It wraps the named
steps of the adapter with a CPU timer (thread_time_ns: this thread's CPU, so neither a
wait on Redis nor preemption counts; inclusive: a step's time holds the steps and the KSR
calls under it, C work such as t_relay's included) and,
once a second, each process writes what it summed to `<dir>/<pid>.json`:
{kind: {"n": messages, "steps": {step: ns}}}. A message's kind is what it turned out to
be: "INVITE admitted", "INVITE challenged", "ACK in-dialog", "BYE in-dialog", ...; the
reply route and the dialog events are kinds of their own.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

# (module, attribute owner or "", names): what is timed
STEPS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("trunkedge.kamailio.adapter", "Edge", (
        "request", "route_reqinit", "route_transport", "route_withindlg", "route_strict",
        "route_banned", "route_retransmission", "route_cancel", "route_ack", "route_local",
        "floods")),
    ("trunkedge.kamailio.calls", "Admission", (
        "admit", "look_up", "settled", "commit", "relay_held", "challenge", "refuse")),
    ("trunkedge.kamailio.calls", "", ("read_request", "decide", "settle", "read_identity")),
    ("trunkedge.kamailio.relay", "Relay", ("select", "forward", "in_dialog", "sealed_route")),
    ("trunkedge.kamailio.records", "Records", ("opened", "ended", "answered", "write")),
    ("trunkedge.kamailio", "meter", ("request", "admitted")),
    ("trunkedge.kamailio.relay", "", ("remove_headers",)),
)
ENTRIES = ("ksr_onreply_route", "ksr_private_reply_route", "ksr_failure_route",
           "ksr_dialog_event")
DUMP_EVERY_NS = 1_000_000_000


class Profile:
    """One process's sums."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / f"{os.getpid()}.json"
        self.sums: dict[str, dict[str, Any]] = {}
        self.current: list[tuple[str, int]] = []
        self.dumped = time.perf_counter_ns()

    def add(self, kind: str) -> None:
        entry = self.sums.setdefault(kind, {"n": 0, "steps": defaultdict(int)})
        entry["n"] += 1
        for step, ns in self.current:
            entry["steps"][step] += ns
        now = time.perf_counter_ns()
        if now - self.dumped > DUMP_EVERY_NS:
            self.dumped = now
            if self.path.name != f"{os.getpid()}.json":  # forked after mod_init
                self.path = self.path.with_name(f"{os.getpid()}.json")
            self.path.write_text(json.dumps(self.sums))
            if CALLS is not None:
                CALLS.dump_stats(str(self.path.with_suffix(".pstats")))


PROFILE: Profile | None = None
CALLS: Any = None  # with TRUNKEDGE_PROFILE_CALLS: a cProfile.Profile per process


def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.thread_time_ns()
        try:
            return fn(*args, **kwargs)
        finally:
            if PROFILE is not None:
                PROFILE.current.append((name, time.thread_time_ns() - t0))
    return wrapper


def kind_of_request(steps: list[tuple[str, int]]) -> str:
    import KSR

    names = {s for s, _ in steps}
    method = str(KSR.pv.get("$rm"))
    if "Admission.challenge" in names:
        return "INVITE challenged"
    if "Admission.relay_held" in names:
        return "INVITE admitted"
    if "Relay.in_dialog" in names:
        return f"{method} in-dialog"
    return method


def instrument(mod_init: Callable[[], Any]) -> Callable[[], Any]:
    """mod_init, with the steps timed in every process it forks into."""
    import importlib

    global PROFILE
    PROFILE = Profile(Path(os.environ["TRUNKEDGE_PROFILE_DIR"]))
    for module_name, owner, names in () if os.environ.get("TRUNKEDGE_PROFILE_CALLS") else STEPS:
        module = importlib.import_module(module_name)
        target = getattr(module, owner) if owner else module
        for name in names:
            label = f"{owner}.{name}" if owner else name
            if not hasattr(target, name):
                continue  # not in this version of the edge (an older tree, profiled alike)
            wrapped = timed(label, getattr(target, name))
            if isinstance(vars(target).get(name), staticmethod):
                wrapped = staticmethod(wrapped)  # type: ignore[assignment]
            setattr(target, name, wrapped)

    if os.environ.get("TRUNKEDGE_PROFILE_KSR"):
        count_crossings()

    def profiled_init() -> Any:
        edge = mod_init()
        request = edge.ksr_request_route

        def ksr_request_route(msg: object) -> int:
            global CALLS
            if os.environ.get("TRUNKEDGE_PROFILE_CALLS") and CALLS is None:
                import cProfile

                CALLS = cProfile.Profile()  # in the worker (after the fork): its calls
                CALLS.enable()
            assert PROFILE is not None
            t0, PROFILE.current = time.thread_time_ns(), []
            result = request(msg)
            PROFILE.current.append(("(whole request)", time.thread_time_ns() - t0))
            PROFILE.add(kind_of_request(PROFILE.current))
            return int(result)

        edge.ksr_request_route = ksr_request_route
        for entry in ENTRIES:
            edge.__dict__[entry] = entry_timer(entry, getattr(edge, entry))
        return edge
    return profiled_init


def entry_timer(entry: str, fn: Callable[..., int]) -> Callable[..., int]:
    def wrapper(*args: Any) -> int:
        assert PROFILE is not None
        outer, PROFILE.current = PROFILE.current, []  # dialog events run inside a request
        t0 = time.thread_time_ns()
        result = fn(*args)
        PROFILE.current.append(("(whole callback)", time.thread_time_ns() - t0))
        PROFILE.add(entry if entry != "ksr_dialog_event" else f"{entry} {args[-1]}")
        PROFILE.current = outer
        return result
    return wrapper


def count_crossings() -> None:
    """Count every KSR call (as a step "KSR <name>", its "µs" column reads as calls per
    message). Slows the edge further: a separate run."""
    import types

    import KSR

    def counter(label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any) -> Any:
            if PROFILE is not None:
                PROFILE.current.append((label, 1000))
            return fn(*args)
        return wrapper

    for group in dir(KSR):
        sub = getattr(KSR, group)
        if isinstance(sub, types.ModuleType):
            for name in dir(sub):
                if not name.startswith("_") and callable(getattr(sub, name)):
                    setattr(sub, name, counter(f"KSR.{group}.{name}", getattr(sub, name)))
        elif callable(sub) and not group.startswith("_"):
            setattr(KSR, group, counter(f"KSR.{group}", sub))
