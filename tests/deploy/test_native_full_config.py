"""bench/native-full/kamailio.cfg, the benchmark's full native reference (what an operator
would write in plain kamailio.cfg for the product's rules), stays a valid Kamailio config:
its wrapper rendered exactly as bench/run.py renders it, then checked by `kamailio -c`.
bench/native's wrapper (same renderer) is checked alongside."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
GATEWAY = "sip:127.0.0.1:5999"


def bench_run() -> ModuleType:
    """bench/run.py as a module (bench/ is no package)."""
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
    assert spec is not None and spec.loader is not None
    module = sys.modules.get(spec.name)
    if module is None:
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # before running it: its dataclasses look it up
        spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("target", ["native-full", "native"])
def test_the_rendered_wrapper_passes_kamailio_config_check(target: str, tmp_path: Path) -> None:
    kamailio = shutil.which("kamailio") or shutil.which("kamailio", path="/usr/sbin:/sbin")
    if kamailio is None:
        pytest.skip("kamailio is not installed (scripts/setup.sh installs it)")
    cfg, subst = bench_run().render_native(tmp_path / "run", target, 5998, 6379, GATEWAY, 2)
    assert subst["BN_PREFIX"] == "te-test:" and subst["BN_REALM"] == "sip.example.net"
    if target == "native-full":
        listed = (tmp_path / "run" / "dispatcher.list").read_text().split()
        assert GATEWAY in listed  # the gateway is dispatcher set 1
    out = subprocess.run([kamailio, "-c", "-f", str(cfg)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "config file ok" in out.stdout + out.stderr
