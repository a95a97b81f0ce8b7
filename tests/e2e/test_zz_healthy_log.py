"""Runs last: the shared edge took every end-to-end test of the session that needs no
outage, and an operator reads ERROR as broken, so its log holds no ERROR and no
Python traceback (dispatcher events, script loading, every route)."""

from __future__ import annotations

import re

import pytest

from harness import Edge

pytestmark = pytest.mark.e2e

UNHEALTHY = re.compile(r"\bERROR\b|Traceback|internal error")


def test_a_healthy_run_logs_no_error_and_no_traceback(edge: Edge) -> None:
    lines = [ln for ln in edge.log().splitlines() if UNHEALTHY.search(ln)]
    assert lines == [], "\n".join(lines[:20])
