"""End to end: real Kamailio running our KEMI script, real Redis, SIPp as customer and POPs.

Each test provisions the whole configuration it needs through the `trunkedge` CLI
(`import` replaces everything), then proves the behaviour with a SIPp scenario.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness import BASE, Edge, RedisMonitor, RedisServer, run_sipp, sip_request, status_of
from trunkedge.provisioning.writer import Provisioner
from trunkedge.store.schema import Keys
from trunkedge.store.scripts import COMMIT, EDGE

pytestmark = pytest.mark.e2e

PBX = "127.0.0.1"  # the customer's listed PBX address
ROAMING = "127.0.0.2"  # an address no ACL lists
STRANGER = "127.0.0.3"
USER, PASSWORD = "31000000", "s3cret-pass"
NUMBER = "+3123456789"


CALLER_IDS = {"allow": ["+31*"], "default": "+31200000000", "policy": "replace"}


def customer(**domains: list[str]) -> dict[str, object]:
    """ACLs: `office` (IP only), `roaming` (account only), `strict` (IP and account).
    Every one may present +31 numbers and asserts +31200000000 for anything else."""
    return {
        "acls": {
            "office": {"ips": [f"{PBX}/32", "::1/128"], "caller_ids": CALLER_IDS},
            "roaming": {"accounts": [{"username": USER, "password": PASSWORD}],
                        "caller_ids": CALLER_IDS},
            "strict": {"ips": [f"{PBX}/32"], "caller_ids": CALLER_IDS,
                       "accounts": [{"username": "31000001", "password": PASSWORD}]},
            "empty": {},
        },
        "domains": {name: {"acls": acls} for name, acls in domains.items()},
    }


def call(edge: Edge, workdir: Path, scenario: str, domain: str, **kw: object):  # type: ignore[no-untyped-def]
    kw.setdefault("number", NUMBER)
    return run_sipp(scenario, edge.address, workdir=workdir, domain=domain, **kw)  # type: ignore[arg-type]


class LogFromNow:
    """What the edge logs from now on: its log is only appended to, and it logs a refusal
    (`trunkedge: refused CODE reason=REASON ... callid=...`, at NOTICE) before it answers,
    so once the caller has the answer the line is there."""

    def __init__(self, edge: Edge) -> None:
        self.path = edge.log_path
        self.start = self.path.stat().st_size if self.path.exists() else 0

    def text(self) -> str:
        with self.path.open("rb") as f:
            f.seek(self.start)
            return f.read().decode(errors="replace")

    def refusal_lines(self) -> list[str]:
        return [ln for ln in self.text().splitlines() if "trunkedge: refused " in ln]

    def refusals(self) -> list[str]:
        """"CODE REASON" of each refusal logged since, in order."""
        return [" ".join(m.groups()) for ln in self.refusal_lines()
                if (m := re.search(r"trunkedge: refused (\S+) reason=(\S+)", ln))]


def test_ip_acl_call_is_answered_by_eu1(edge: Edge, tmp_path: Path) -> None:
    edge.provision(customer(acme=["office"]))
    r = call(edge, tmp_path, "call_answered", f"acme.{BASE}", source=PBX)
    assert r.ok, r.explain()
    assert r.landed == ["eu1"]


def test_ip_acl_over_tcp_and_ipv6(edge: Edge, tmp_path: Path) -> None:
    edge.provision(customer(acme=["office"]))
    tcp = call(edge, tmp_path, "call_answered", f"acme.{BASE}", source=PBX, transport="t1")
    assert tcp.ok, tcp.explain()
    v6 = run_sipp("call_answered", f"[::1]:{edge.port}", workdir=tmp_path, number=NUMBER,
                  domain=f"acme.{BASE}", source="::1")
    assert v6.ok, v6.explain()
    assert tcp.landed == v6.landed == ["eu1"]


def test_account_call_is_challenged_then_answered(edge: Edge, tmp_path: Path) -> None:
    edge.provision(customer(acme=["roaming"]))
    r = call(edge, tmp_path, "call_answered_after_challenge", f"acme.{BASE}",
             source=ROAMING, from_user=USER, auth=(USER, PASSWORD))
    assert r.ok, r.explain()
    assert r.landed == ["eu1"]


def test_account_with_wrong_password_gets_403_after_the_challenge(
    edge: Edge, tmp_path: Path
) -> None:
    edge.provision(customer(acme=["roaming"]))
    log = LogFromNow(edge)
    r = call(edge, tmp_path, "refused_403_after_challenge", f"acme.{BASE}",
             source=ROAMING, from_user=USER, auth=(USER, "wrong"))
    assert r.ok, r.explain()
    assert "reason=wrong-credentials" in edge.log()
    assert log.refusals() == ["403 wrong-credentials:response"]


def test_auth_user_must_equal_from_user(edge: Edge, tmp_path: Path) -> None:
    edge.provision(customer(acme=["roaming"]))
    log = LogFromNow(edge)
    r = call(edge, tmp_path, "refused_403_after_challenge", f"acme.{BASE}",
             source=ROAMING, from_user="31009999", auth=(USER, PASSWORD))
    assert r.ok, r.explain()
    assert log.refusals() == ["403 auth-user-not-from-user"]


@pytest.mark.parametrize(
    ("scenario", "source", "password", "refusals"),
    [("call_answered_after_challenge", PBX, PASSWORD, []),  # listed address, right password
     ("refused_403_after_challenge", PBX, "wrong",  # listed address, wrong password
      ["403 wrong-credentials:response"]),
     ("refused_403_without_challenge", ROAMING, PASSWORD,  # unlisted: never challenged
      ["403 address-not-allowed"])],
    ids=["listed-right-password", "listed-wrong-password", "unlisted-right-password"],
)
def test_both_rule_needs_the_address_and_the_password(
        edge: Edge, tmp_path: Path, scenario: str, source: str, password: str,
        refusals: list[str]) -> None:
    """`strict` lists the PBX address and an account: both must hold."""
    edge.provision(customer(acme=["strict"]))
    log = LogFromNow(edge)
    r = call(edge, tmp_path, scenario, f"acme.{BASE}", source=source, from_user="31000001",
             auth=("31000001", password))
    assert r.ok, r.explain()
    assert log.refusals() == refusals


@pytest.mark.parametrize(("host", "reason"), [
    (f"nosuch.{BASE}", "unknown-domain"),
    ("acme.example.org", "foreign-host"),  # not under the base domain
    (f"acme.eu9.{BASE}", "foreign-host"),  # no such POP
    (f"ac-me.{BASE}", "foreign-host"),  # not a valid domain name
], ids=["unknown-domain", "other-base-domain", "unknown-pop", "malformed-name"])
def test_a_host_naming_no_domain_of_ours_is_refused_403(
        edge: Edge, tmp_path: Path, host: str, reason: str) -> None:
    edge.provision(customer(acme=["office"]))
    log = LogFromNow(edge)
    r = call(edge, tmp_path, "refused_403_without_challenge", host, source=PBX)
    assert r.ok, f"{host}: {r.explain()}"
    assert log.refusals() == [f"403 {reason}"], log.text()


def test_unlisted_address_is_refused_403_without_challenge(edge: Edge, tmp_path: Path) -> None:
    edge.provision(customer(acme=["office", "strict", "empty"]))
    log = LogFromNow(edge)
    r = call(edge, tmp_path, "refused_403_without_challenge", f"acme.{BASE}", source=STRANGER)
    assert r.ok, r.explain()
    assert "reason=address-not-allowed" in edge.log()
    assert log.refusals() == ["403 address-not-allowed"]


@pytest.mark.parametrize("number", ["1234567", "+1234567890123456", "12345abc9",
                                    "%2B3123456789"],
                         ids=["7-digits", "16-digits", "letters", "escaped-plus"])
def test_number_that_is_not_e164_gets_484(edge: Edge, tmp_path: Path, number: str) -> None:
    edge.provision(customer(acme=["office"]))
    log = LogFromNow(edge)
    r = call(edge, tmp_path, "refused_484_bad_number", f"acme.{BASE}", source=PBX,
             number=number)
    assert r.ok, f"{number}: {r.explain()}"
    assert log.refusals() == ["484 not-e164"]


def test_one_acl_on_two_domains_admits_on_both(edge: Edge, tmp_path: Path) -> None:
    edge.provision(customer(acme=["roaming"], globex=["roaming"]))
    for domain in ("acme", "GLOBEX"):
        r = call(edge, tmp_path, "call_answered_after_challenge", f"{domain}.{BASE}",
                 source=ROAMING, from_user=USER, auth=(USER, PASSWORD))
        assert r.ok, f"{domain}: {r.explain()}"


@pytest.mark.parametrize("pop", ["eu2", "us1", "us2", "apac1", "apac2"])
def test_pinned_form_reaches_its_pop(edge: Edge, tmp_path: Path, pop: str) -> None:
    edge.provision(customer(acme=["office"]))
    r = call(edge, tmp_path, "call_answered", f"acme.{pop}.{BASE}", source=PBX)
    assert r.ok, r.explain()
    assert r.landed == [pop]


def test_provisioning_change_applies_to_the_next_call(edge: Edge, tmp_path: Path) -> None:
    edge.provision(customer())
    domain = f"newco.{BASE}"
    assert edge.cli("domain", "create", "newco").returncode == 0
    log = LogFromNow(edge)
    r = call(edge, tmp_path, "refused_403_without_challenge", domain, source=STRANGER)
    assert r.ok, r.explain()  # a domain without ACLs admits nobody
    assert log.refusals() == ["403 address-not-allowed"]

    assert edge.cli("acl", "create", "newco-pbx").returncode == 0
    assert edge.cli("acl", "add-ip", "newco-pbx", f"{STRANGER}/32").returncode == 0
    assert edge.cli("domain", "attach", "newco", "newco-pbx").returncode == 0
    log = LogFromNow(edge)
    r = call(edge, tmp_path, "refused_403_without_challenge", domain, source=STRANGER)
    assert r.ok, r.explain()  # admitted, but no caller ID it may present: 403
    assert log.refusals() == ["403 caller-id-not-allowed"]
    assert edge.cli("acl", "caller-ids", "newco-pbx", "--default", "+31200000000",
                    "--policy", "replace").returncode == 0
    log = LogFromNow(edge)
    r = call(edge, tmp_path, "call_answered", domain, source=STRANGER)
    assert r.ok, r.explain()
    assert log.refusals() == []

    assert edge.cli("acl", "remove-ip", "newco-pbx", STRANGER).returncode == 0
    log = LogFromNow(edge)
    r = call(edge, tmp_path, "refused_403_without_challenge", domain, source=STRANGER)
    assert r.ok, r.explain()
    assert log.refusals() == ["403 address-not-allowed"]

    added = edge.cli("acl", "add-account", "newco-pbx", "44000000", stdin="pw-from-stdin\n")
    assert added.returncode == 0, added.stderr
    r = call(edge, tmp_path, "call_answered_after_challenge", domain, source=STRANGER,
             from_user="44000000", auth=("44000000", "pw-from-stdin"))
    assert r.ok, r.explain()


def test_warm_calls_skip_redis_and_a_change_still_applies_to_the_next_call(
        edge: Edge, redis_server: RedisServer, tmp_path: Path) -> None:
    """Steady state: an IP call costs no Redis round trip (the watcher vouches for the
    workers' caches), a digest call one (the claim of its (nonce, nc), for every edge)."""
    edge.provision(customer(acme=["office", "roaming"]))
    ip = dict(source=PBX, rate=100, hold_ms=0)
    digest = dict(source=ROAMING, from_user=USER, auth=(USER, PASSWORD), rate=100, hold_ms=0)
    for kw in (ip, digest):  # every worker caches the domain and the account
        r = call(edge, tmp_path, "call_answered_after_challenge" if "auth" in kw
                 else "call_answered", f"acme.{BASE}", calls=40, **kw)
        assert r.ok, r.explain()

    with RedisMonitor(redis_server) as seen:  # what the workers send (not the watcher)
        r = call(edge, tmp_path, "call_answered", f"acme.{BASE}", calls=50, **ip)
        assert r.ok, r.explain()
    assert seen.count(f"EVALSHA {EDGE.sha}") == seen.count(f"EVALSHA {COMMIT.sha}") == 0
    with RedisMonitor(redis_server) as seen:
        r = call(edge, tmp_path, "call_answered_after_challenge", f"acme.{BASE}", calls=50,
                 **digest)
        assert r.ok, r.explain()
    assert seen.count(f"EVALSHA {EDGE.sha}") == 0
    assert seen.count(f"EVALSHA {COMMIT.sha}") == 50  # the claim of each (nonce, nc)

    assert edge.cli("domain", "delete", "acme").returncode == 0
    log = LogFromNow(edge)
    r = call(edge, tmp_path, "refused_403_without_challenge", f"acme.{BASE}", source=PBX)
    assert r.ok, r.explain()
    assert log.refusals() == ["403 unknown-domain"]


def test_options_is_answered_and_other_methods_are_refused(edge: Edge) -> None:
    edge.provision(customer(acme=["office"]))
    target = (edge.host, edge.port)
    ok = sip_request(target, "OPTIONS", f"sip:{edge.address}")
    assert status_of(ok) == 200
    assert "Allow: INVITE" in (ok or "")
    register = sip_request(target, "REGISTER", f"sip:acme.{BASE}")
    assert status_of(register) == 405
    assert "Allow: INVITE" in (register or "")
    assert status_of(sip_request(target, "MESSAGE", f"sip:{NUMBER}@acme.{BASE}")) == 405
    assert status_of(sip_request(target, "BYE", f"sip:{NUMBER}@acme.{BASE}")) == 481


def test_forged_route_set_is_not_relayed(edge: Edge) -> None:
    """An in-dialog INVITE with a Route set the edge never signed does not reach a POP."""
    edge.provision(customer(acme=["office"]))
    log = LogFromNow(edge)
    reply = sip_request(
        (edge.host, edge.port), "INVITE", f"sip:{NUMBER}@acme.{BASE}",
        source=STRANGER,
        headers=[f"Route: <sip:{edge.address};lr>", "To: <sip:x@y>;tag=forged"],
    )
    assert status_of(reply) == 403
    assert "reason=forged-route" in edge.log()
    assert log.refusals() == ["403 forged-route"]


def test_refusals_are_logged_with_reason_domain_and_source(edge: Edge, tmp_path: Path) -> None:
    edge.provision(customer(acme=["roaming"]))
    log = LogFromNow(edge)
    r = call(edge, tmp_path, "refused_403_after_challenge", f"acme.{BASE}",
             source=ROAMING, from_user=USER, auth=(USER, "not-the-password"))
    assert r.ok, r.explain()
    lines = [ln for ln in edge.log().splitlines() if "reason=wrong-credentials" in ln]
    assert lines and "domain=acme" in lines[-1] and f"src={ROAMING}:" in lines[-1]
    assert "not-the-password" not in edge.log()
    (line,) = log.refusal_lines()  # this call's, and only it
    assert "reason=wrong-credentials:response " in line and "method=INVITE " in line
    assert " domain=acme " in line and f" src={ROAMING}:" in line and f" from={USER} " in line
    assert re.search(r" callid=\S+", line), line


def test_warm_calls_stay_warm_while_other_customers_change(
        edge: Edge, redis_server: RedisServer, tmp_path: Path) -> None:
    """A change invalidates only what it touched: 200 changes to other customers leave
    the warm domain cached on every worker; one change to it is seen by the next call."""
    edge.provision(customer(acme=["office"]))
    warm = call(edge, tmp_path, "call_answered", f"acme.{BASE}", source=PBX, calls=40,
                rate=100, hold_ms=0)
    assert warm.ok, warm.explain()
    prov = Provisioner(redis_server.client(), Keys("te-test:"), BASE)
    with RedisMonitor(redis_server) as seen:
        for i in range(200):
            prov.domain_create(f"other{i}")
        r = call(edge, tmp_path, "call_answered", f"acme.{BASE}", source=PBX, calls=50,
                 rate=100, hold_ms=0)
        assert r.ok, r.explain()
    assert seen.count(f"EVALSHA {EDGE.sha}") == 0  # no customer read for the warm domain
    assert edge.cli("domain", "detach", "acme", "office").returncode == 0
    log = LogFromNow(edge)
    r = call(edge, tmp_path, "refused_403_without_challenge", f"acme.{BASE}", source=PBX)
    assert r.ok, r.explain()
    assert log.refusals() == ["403 address-not-allowed"]
