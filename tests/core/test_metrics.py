"""The Prometheus series: names and labels by the conventions, label values from bounded
sets, and the documentation (docs/metrics.md, the Grafana dashboard) in step with
core.metrics.ALL."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from trunkedge.core import metrics
from trunkedge.core.pops import POP_NAMES
from trunkedge.core.reasons import Drop, Reason

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "metrics.md"
DASHBOARD = ROOT / "docs" / "grafana-dashboard.json"

# Every label a series may have; each takes its values from a fixed set (never a domain,
# an account or an address). `gateway`: the gateway URIs the settings configure.
BOUNDED_LABELS = {"method", "pop", "reason", "why", "gateway", "result"}
# Kamailio's internal statistics exported beside the edge's series (xhttp_prom_stats);
# in 5.6 the tm statistics are the tmx module's.
KAMAILIO_GROUPS = ("dialog_", "tm_", "tmx_", "core_", "shmem_", "sl_")

NAME = re.compile(r"^trunkedge_[a-z_]+$")
LABEL_NAME = re.compile(r"^[a-z_]+$")


def series_ids() -> list[str]:
    return [s.name for s in metrics.ALL]


@pytest.mark.parametrize("series", metrics.ALL, ids=series_ids())
def test_names_follow_the_prometheus_conventions(series: metrics.Series) -> None:
    assert NAME.match(series.name), series.name
    assert series.kind in ("counter", "gauge")
    if series.kind == "counter":
        assert series.name.endswith("_total")
    else:
        assert not series.name.endswith("_total")
    assert series.help and series.help == series.help.strip()


@pytest.mark.parametrize("series", metrics.ALL, ids=series_ids())
def test_labels_are_from_the_bounded_set(series: metrics.Series) -> None:
    assert set(series.labels) <= BOUNDED_LABELS, series.labels
    assert len(set(series.labels)) == len(series.labels)
    assert all(LABEL_NAME.match(label) for label in series.labels)


def test_every_series_is_declared_once() -> None:
    names = series_ids()
    assert len(names) == len(set(names))
    declared = {value for value in vars(metrics).values() if isinstance(value, metrics.Series)}
    assert declared == set(metrics.ALL)  # none defined and forgotten in ALL


def test_methods_are_a_bounded_set_with_other_for_the_rest() -> None:
    assert {"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER"} <= metrics.KNOWN_METHODS
    for method in metrics.KNOWN_METHODS:
        assert metrics.method_label(method) == method
    for method in ("FOO", "invite", "", "X" * 100):
        assert metrics.method_label(method) == "other"


def test_every_known_method_has_kamailios_own_count() -> None:
    """kex's core statistics (src/modules/kex/core_stats.c) count these methods; the edge
    copies them into trunkedge_requests_total at each scrape."""
    kex = {"invite", "cancel", "ack", "bye", "info", "register", "subscribe", "notify",
           "message", "options", "prack", "update", "refer", "publish"}
    assert {metrics.core_statistic(m) for m in metrics.KNOWN_METHODS} <= \
        {f"rcv_requests_{m}" for m in kex}


def test_xhttp_prom_declarations() -> None:
    assert metrics.xhttp_prom_declaration(metrics.CHALLENGES) == \
        "name=trunkedge_challenges_total;"
    assert metrics.xhttp_prom_declaration(metrics.GATEWAY_UP) == \
        "name=trunkedge_gateway_up; label=pop:gateway;"


# -- docs/metrics.md -------------------------------------------------------------------------


def doc_text() -> str:
    return DOC.read_text()


@pytest.mark.parametrize("series", metrics.ALL, ids=series_ids())
def test_the_doc_lists_every_series_with_its_kind_and_labels(series: metrics.Series) -> None:
    rows = [line for line in doc_text().splitlines()
            if line.startswith(f"| `{series.name}` |")]
    assert len(rows) == 1, f"docs/metrics.md: no table row for {series.name}"
    cells = [cell.strip() for cell in rows[0].strip("|").split("|")]
    assert cells[1] == series.kind
    if series.labels:
        assert cells[2] == ", ".join(f"`{label}`" for label in series.labels)
    else:
        assert cells[2] == "none"
    assert cells[3], f"docs/metrics.md: {series.name} has no meaning"


def test_the_doc_names_no_series_that_does_not_exist() -> None:
    mentioned = set(re.findall(r"\btrunkedge_[a-z_]+", doc_text()))
    assert mentioned <= set(series_ids()), mentioned - set(series_ids())


@pytest.mark.parametrize("value", [
    *sorted(metrics.KNOWN_METHODS), "other", *(r.value for r in Reason),
    *(d.value for d in Drop), *POP_NAMES, "hit", "miss",
])
def test_the_doc_lists_every_label_value(value: str) -> None:
    assert f"`{value}`" in doc_text()


def test_the_doc_explains_what_xhttp_prom_prints() -> None:
    text = doc_text()
    assert "TYPE" in text and "HELP" in text and "millisecond" in text
    assert "honor_timestamps: false" in text


# -- docs/grafana-dashboard.json -------------------------------------------------------------


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def exprs(node: object) -> Iterator[str]:
    """Every PromQL `expr` anywhere in the dashboard's JSON model."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr":
                assert isinstance(value, str)
                yield value
            else:
                yield from exprs(value)
    elif isinstance(node, list):
        for value in node:
            yield from exprs(value)


PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool",
                "and", "or", "unless", "offset", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The series a PromQL expression selects: identifiers other than functions (followed
    by a parenthesis), keywords, label names and values, ranges and Grafana variables."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings (label values)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range and subquery durations
    text = re.sub(r"\$\{?\w+\}?", " ", text)  # Grafana variables
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])[A-Za-z_:][A-Za-z0-9_:]*", text):
        word = match.group()
        if text[match.end():].lstrip().startswith("(") or word.lower() in PROMQL_WORDS:
            continue
        names.add(word)
    return names


def test_metric_names_reads_promql() -> None:
    assert metric_names(
        'sum by (reason) (rate(trunkedge_refusals_total{instance=~"$instance"}'
        '[$__rate_interval])) / ignoring(reason) group_left() '
        '(sum(rate(trunkedge_calls_admitted_total[5m])) + shmem_used_size offset 1h)'
    ) == {"trunkedge_refusals_total", "trunkedge_calls_admitted_total", "shmem_used_size"}


def test_the_dashboard_is_a_grafana_json_model_on_a_prometheus_datasource_variable() -> None:
    model = dashboard()
    assert model["title"] and model["uid"]
    assert 36 <= model["schemaVersion"] <= 40
    variables = {v["name"]: v for v in model["templating"]["list"]}
    source = variables["datasource"]
    assert source["type"] == "datasource" and source["query"] == "prometheus"
    panels = [p for p in model["panels"] if p["type"] != "row"]
    assert panels
    ids = [p["id"] for p in model["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, \
            panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip() and target["refId"], panel["title"]


def test_the_dashboard_queries_only_series_that_exist() -> None:
    known = set(series_ids())
    used: set[str] = set()
    for expr in exprs(dashboard()):
        names = metric_names(expr)
        assert names, f"selects no series: {expr}"
        for name in names:
            assert name in known or name.startswith(KAMAILIO_GROUPS), \
                f"{name} (in {expr!r}) is neither in core.metrics.ALL nor Kamailio's"
        used |= names
    # the key series have a panel
    for series in (metrics.ADMITTED, metrics.REFUSED, metrics.FAILOVERS, metrics.GATEWAY_UP,
                   metrics.BREAKER_OPEN, metrics.CACHE_LOOKUPS, metrics.CALLS_IN_PROGRESS):
        assert series.name in used, series.name
