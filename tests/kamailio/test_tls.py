"""SIP over TLS without running Kamailio: the certificate checks `run` and `tls reload`
make (each failure names its setting), the tls.cfg and wrapper lines rendered, the
descriptors raised for the connection limits, and the OpenSSL fork guard's call."""

from __future__ import annotations

import resource
import ssl
from pathlib import Path

import pytest
import yaml

from certs import Certificate, make_ca, make_certificate
from trunkedge.cli import main
from trunkedge.core.errors import ConfigError
from trunkedge.kamailio import tls
from trunkedge.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "settings.yaml"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Certificate, Certificate]:
    """A CA and an edge certificate it signs."""
    folder = tmp_path_factory.mktemp("pki")
    ca = make_ca(folder)
    return ca, make_certificate(folder, "edge", ca)


def settings_with(folder: Path, tls_section: dict[str, object],
                  listen: tuple[str, ...] = ("udp:127.0.0.1:5060", "tls:127.0.0.1:5061"),
                  ) -> Settings:
    """The example settings, with TLS, written to `folder` (relative paths start there)."""
    doc = dict(yaml.safe_load(EXAMPLE.read_text()))
    doc["listen"], doc["tls"] = list(listen), tls_section
    path = folder / "settings.yaml"
    path.write_text(yaml.safe_dump(doc))
    return load_settings(path)


def test_without_a_tls_listener_nothing_of_tls_is_rendered(tmp_path: Path) -> None:
    s = load_settings(EXAMPLE)
    assert not tls.enabled(s)
    assert tls.render_tls(s, tmp_path) == [] and not (tmp_path / tls.TLS_CFG).exists()
    assert not tls.guard_fork(s)


def test_tls_cfg_names_the_files_and_what_is_asked_of_clients(
        tmp_path: Path, pki: tuple[Certificate, Certificate]) -> None:
    ca, cert = pki
    s = settings_with(tmp_path, {"certificate": str(cert.cert), "private_key": str(cert.key),
                                 "ca_list": str(ca.cert), "verify_client": True,
                                 "handshake_timeout_s": 7, "max_connections": 500})
    lines = tls.render_tls(s, tmp_path)
    assert lines == ["#!define TE_TLS 1", "#!define TE_TLS_HANDSHAKE_TIMEOUT 7",
                     "#!define TE_TLS_MAX_CONNECTIONS 500",
                     "#!define TE_TCP_MAX_CONNECTIONS 2548"]
    text = (tmp_path / tls.TLS_CFG).read_text()
    server, client = text.split("[client:default]")
    assert "[server:default]" in server and "method = TLSv1.2+" in server
    assert f"certificate = {cert.cert}" in server and f"private_key = {cert.key}" in server
    assert f"ca_list = {ca.cert}" in server
    assert "verify_certificate = yes" in server and "require_certificate = yes" in server
    # towards TLS gateways: their certificates checked against ca_list
    assert "verify_certificate = yes" in client and f"ca_list = {ca.cert}" in client


def test_without_a_ca_list_clients_and_gateways_are_not_asked_for_certificates(
        tmp_path: Path, pki: tuple[Certificate, Certificate]) -> None:
    _, cert = pki
    s = settings_with(tmp_path, {"certificate": str(cert.cert), "private_key": str(cert.key)})
    tls.render_tls(s, tmp_path)
    text = (tmp_path / tls.TLS_CFG).read_text()
    assert "ca_list" not in text and "verify_certificate = yes" not in text
    assert text.count("require_certificate = no") == 2


def test_relative_paths_start_at_the_settings_file(
        tmp_path: Path, pki: tuple[Certificate, Certificate]) -> None:
    _, cert = pki
    (tmp_path / "certs").mkdir()
    for made in (cert.cert, cert.key):
        (tmp_path / "certs" / made.name).write_bytes(made.read_bytes())
    s = settings_with(tmp_path, {"certificate": f"certs/{cert.cert.name}",
                                 "private_key": f"certs/{cert.key.name}"})
    files = tls.tls_files(s)
    assert files.certificate == (tmp_path / "certs" / cert.cert.name).resolve()


@pytest.mark.parametrize("broken", ["certificate", "private_key"])
def test_a_missing_file_is_a_start_up_error_naming_the_setting(
        tmp_path: Path, pki: tuple[Certificate, Certificate], broken: str) -> None:
    _, cert = pki
    section = {"certificate": str(cert.cert), "private_key": str(cert.key),
               broken: str(tmp_path / "missing.pem")}
    with pytest.raises(ConfigError, match=rf"^tls\.{broken}: cannot read .*missing\.pem"):
        tls.render_tls(settings_with(tmp_path, section), tmp_path)


def test_an_unreadable_key_is_a_start_up_error(tmp_path: Path,
                                               pki: tuple[Certificate, Certificate]) -> None:
    _, cert = pki
    key = tmp_path / "key.pem"  # a folder: unreadable as a file, even for root
    key.mkdir()
    s = settings_with(tmp_path, {"certificate": str(cert.cert), "private_key": str(key)})
    with pytest.raises(ConfigError, match=r"^tls\.private_key: cannot read .*Is a directory"):
        tls.tls_files(s)


def test_files_openssl_cannot_use_are_refused_naming_the_setting(
        tmp_path: Path, pki: tuple[Certificate, Certificate]) -> None:
    ca, cert = pki
    junk = tmp_path / "junk.pem"
    junk.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    cases = {"certificate": {"certificate": str(junk), "private_key": str(cert.key)},
             "private_key": {"certificate": str(cert.cert), "private_key": str(ca.key)},
             "ca_list": {"certificate": str(cert.cert), "private_key": str(cert.key),
                         "ca_list": str(junk)}}
    for name, section in cases.items():
        with pytest.raises(ConfigError, match=rf"^tls\.{name}: .*not usable"):
            tls.tls_files(settings_with(tmp_path, section))


def test_trunkedge_run_names_the_missing_certificate_and_exits_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = dict(yaml.safe_load(EXAMPLE.read_text()))
    doc["listen"] = ["tls:127.0.0.1:5061"]
    doc["tls"] = {"certificate": str(tmp_path / "none.crt"),
                  "private_key": str(tmp_path / "none.key")}
    path = tmp_path / "settings.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert main(["--config", str(path), "run", "--rundir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "tls.certificate: cannot read" in err and "Traceback" not in err


def test_tls_reload_without_a_tls_listener_says_so(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(EXAMPLE), "tls", "reload", "--rundir", str(tmp_path)]) == 2
    assert "no tls: listener" in capsys.readouterr().err


def test_the_open_files_limit_is_raised_for_the_connections(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, int]] = []
    monkeypatch.setattr(resource, "getrlimit", lambda _: (1024, 1_000_000))
    monkeypatch.setattr(resource, "setrlimit", lambda _, limits: calls.append(limits))
    tls.raise_open_files(load_settings(EXAMPLE))
    wanted = tls.PLAIN_TCP_CONNECTIONS + 2048 + tls.OTHER_FILES
    assert calls == [(wanted, 1_000_000)]


def test_the_fork_guard_releases_openssls_thread_state_and_openssl_still_works() -> None:
    import hashlib

    tls.openssl_thread_stop()()  # what the before-fork hook calls
    assert hashlib.sha256(b"x").hexdigest().startswith("2d711642")
    with pytest.raises(ssl.SSLError):  # an error queue made anew, and usable
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata="junk")
