"""Test certificates made with Debian's `openssl` command: a CA of the test's own and
server certificates it signs (RSA 2048, the common case; loopback names and addresses)."""

from __future__ import annotations

import hashlib
import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Certificate:
    """A PEM certificate and its unencrypted key."""

    cert: Path
    key: Path

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the DER certificate (what a client sees in the handshake)."""
        der = ssl.PEM_cert_to_DER_cert(self.cert.read_text())
        return hashlib.sha256(der).hexdigest()


def _openssl(*args: str, cwd: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.fail("openssl is not installed (Debian's openssl package)")
    out = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr


def make_ca(folder: Path) -> Certificate:
    """A self-signed CA, valid for two days."""
    folder.mkdir(parents=True, exist_ok=True)
    ca = Certificate(folder / "ca.crt", folder / "ca.key")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca.key),
             "-out", str(ca.cert), "-days", "2", "-subj", "/CN=trunkedge test CA",
             cwd=folder)
    return ca


def make_certificate(folder: Path, name: str, ca: Certificate,
                     host: str = "127.0.0.1") -> Certificate:
    """A server certificate for `host` (and localhost) that `ca` signs: a new key each time."""
    folder.mkdir(parents=True, exist_ok=True)
    made = Certificate(folder / f"{name}.crt", folder / f"{name}.key")
    csr, ext = folder / f"{name}.csr", folder / f"{name}.ext"
    ext.write_text(f"subjectAltName=IP:{host},DNS:localhost\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(made.key), "-out",
             str(csr), "-subj", f"/CN={host}", cwd=folder)
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca.cert), "-CAkey", str(ca.key),
             "-CAcreateserial", "-out", str(made.cert), "-days", "2", "-extfile", str(ext),
             cwd=folder)
    return made
