"""SIP over TLS with Kamailio 5.6's tls module: its tls.cfg rendered from the settings, the
checks `run` and `trunkedge tls reload` make of the certificate first, the descriptors the
connections need, and the fork guard that keeps OpenSSL 3 from crashing the workers.

The fork guard (kamailio/kamailio#3791, #3695). The tls module points libcrypto's allocator
at Kamailio's shared memory (5.6 tls_init.c tls_pre_init: CRYPTO_set_mem_functions with
ser_malloc/ser_free, which call shm_malloc/shm_free) and builds its SSL_CTXs in the main
process before it forks (tls_mod.c mod_child, rank PROC_INIT). OpenSSL 3 keeps per-thread
state, the error queue (ERR_STATE) and the thread's cleanup handlers among it, behind
pthread keys: the main process's values point into shared memory, and every worker forked
afterwards inherits the same pointers. All the workers then share one unlocked error queue:
concurrent TLS errors free its strings twice (`tlsf_free(): BUG: freeing already freed
pointer ... tls_init.c: ser_free`), print another process's error (`TLS read: unsupported
protocol`) and corrupt the heap (TLSF assertions, SIGSEGV in a TCP worker). Kamailio 5.8
fixed it in C (core `tls_threads_mode`); 5.6.3 has neither that parameter nor a tls module
one. OPENSSL_thread_stop() in the main process just before its first fork frees that state
and clears the keys, so that each process makes its own on first use: app_python3 runs
Python's before-fork hooks at rank PROC_INIT (PyOS_BeforeFork), after the tls module's
PROC_INIT (modules initialise in the order they are loaded, and tls.so is loaded first).
"""

from __future__ import annotations

import ctypes
import os
import resource
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from trunkedge.core.errors import ConfigError
from trunkedge.core.transports import SECURE, listener_transport
from trunkedge.settings import TLS_MIN_VERSIONS, Settings

TLS_CFG = "tls.cfg"  # in the runtime folder; kamailio.cfg names it
LIBCRYPTO = "libcrypto.so.3"  # the one Debian's tls.so links
PLAIN_TCP_CONNECTIONS = 2048  # TCP (not TLS) connections besides: Kamailio's default
OTHER_FILES = 1024  # descriptors besides the connections: sockets, pipes, files, Python


@dataclass(frozen=True)
class TlsFiles:
    """The edge's certificate chain, its key and the CA list, as absolute paths."""

    certificate: Path
    private_key: Path
    ca_list: Path | None


def enabled(settings: Settings) -> bool:
    """A `tls:` listener: the edge loads the tls module (and may use TLS gateways)."""
    return any(listener_transport(sock) in SECURE for sock in settings.listen)


def tls_files(settings: Settings) -> TlsFiles:
    """The files of the tls section, checked as Kamailio will load them (readable, PEM,
    the key the certificate's); a ConfigError names the setting that is not."""
    tls, base = settings.tls, settings.source.parent if settings.source else Path.cwd()
    files = TlsFiles(_readable("tls.certificate", base, tls.certificate),
                     _readable("tls.private_key", base, tls.private_key),
                     _readable("tls.ca_list", base, tls.ca_list) if tls.ca_list else None)
    _load(files)
    return files


def _readable(name: str, base: Path, value: str) -> Path:
    path = (base / value).resolve()
    try:
        with path.open("rb") as f:
            f.read(1)
    except OSError as e:
        raise ConfigError(name, f"cannot read {path}: {e.strerror}") from e
    return path


def _load(files: TlsFiles) -> None:
    """Load the files into a TLS context as OpenSSL reads them, naming the one it refuses."""
    import ssl  # only `run` and `tls reload` need it

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert, key, ca = files.certificate, files.private_key, files.ca_list
    checks: list[tuple[str, Path, Callable[[], object]]] = [
        ("tls.certificate", cert, lambda: ctx.load_verify_locations(cafile=cert)),
        ("tls.private_key", key, lambda: ctx.load_cert_chain(cert, key, password=b"")),
    ]
    if ca is not None:
        checks.append(("tls.ca_list", ca, lambda: ctx.load_verify_locations(cafile=ca)))
    for name, path, check in checks:
        try:
            check()
        except ssl.SSLError as e:
            raise ConfigError(name, f"{path}: not usable (PEM, unencrypted, the "
                                    f"certificate's key?): {e.reason or e}") from e


def tls_cfg(settings: Settings, files: TlsFiles) -> str:
    """Kamailio's tls.cfg: the edge's certificate as a server (customers) and as a client
    (TLS gateways, whose certificates ca_list must sign when it is given)."""
    tls = settings.tls
    common = [f"method = {TLS_MIN_VERSIONS[tls.min_version]}",
              f"certificate = {files.certificate}", f"private_key = {files.private_key}"]
    if files.ca_list is not None:
        common.append(f"ca_list = {files.ca_list}")
    verify_server = "yes" if files.ca_list is not None else "no"
    verify_client = "yes" if tls.verify_client else "no"
    return "\n".join([
        "# Rendered by `trunkedge run` from the settings' tls section; do not edit.",
        "[server:default]", *common,
        f"verify_certificate = {verify_client}", f"require_certificate = {verify_client}", "",
        "[client:default]", *common,
        f"verify_certificate = {verify_server}", f"require_certificate = {verify_server}", "",
    ])


def render_tls(settings: Settings, rundir: Path) -> list[str]:
    """The wrapper's lines that turn TLS on (none without a tls: listener), tls.cfg
    written into `rundir`."""
    if not enabled(settings):
        return []
    write_tls_cfg(settings, rundir)
    tls = settings.tls
    return ["#!define TE_TLS 1",
            f"#!define TE_TLS_HANDSHAKE_TIMEOUT {tls.handshake_timeout_s}",
            f"#!define TE_TLS_MAX_CONNECTIONS {tls.max_connections}",
            f"#!define TE_TCP_MAX_CONNECTIONS {PLAIN_TCP_CONNECTIONS + tls.max_connections}"]


def write_tls_cfg(settings: Settings, rundir: Path) -> TlsFiles:
    """Check the files, then write tls.cfg (atomically: a running edge may be reading it)."""
    files = tls_files(settings)
    path = rundir / TLS_CFG
    tmp = path.with_suffix(".tmp")
    tmp.write_text(tls_cfg(settings, files))
    tmp.replace(path)
    return files


def reload(settings: Settings, rundir: Path) -> TlsFiles:
    """`trunkedge tls reload`: the files checked as at start-up, tls.cfg rendered again,
    and the running edge told to read it (the tls module's `tls.reload` RPC). Connections
    already open keep their session (calls go on); new ones get the new certificate."""
    from trunkedge.kamailio import rpc

    if not enabled(settings):
        raise ConfigError("listen", "no tls: listener, no certificate to reload")
    files = write_tls_cfg(settings, rundir)
    rpc.call(rundir, "tls.reload")
    return files


def raise_open_files(settings: Settings) -> None:
    """Kamailio's TCP main process holds a descriptor per connection: raise this process's
    soft limit (Kamailio inherits it) to what the connection limits need, up to the hard
    limit, and say so when the hard limit is lower."""
    wanted = PLAIN_TCP_CONNECTIONS + settings.tls.max_connections + OTHER_FILES
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < wanted:
        print(f"trunkedge run: open files limited to {target} (hard limit): fewer "
              f"connections than tls.max_connections will be accepted", file=sys.stderr)


def openssl_thread_stop() -> Callable[[], object]:
    """libcrypto's OPENSSL_thread_stop(), which frees the calling thread's OpenSSL state
    and clears its pthread keys (resolved now: a missing libcrypto fails at start-up)."""
    stop: Callable[[], object] = ctypes.CDLL(LIBCRYPTO).OPENSSL_thread_stop
    return stop


def guard_fork(settings: Settings) -> bool:
    """With TLS, have Kamailio's main process release OpenSSL's per-thread state just
    before it forks the workers (see the module's docstring). True when armed."""
    if not enabled(settings):
        return False
    os.register_at_fork(before=openssl_thread_stop())
    return True
