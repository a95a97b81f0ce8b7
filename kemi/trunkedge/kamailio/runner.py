"""`trunkedge run`: render Kamailio's wrapper config from the settings and run Kamailio."""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

from trunkedge.core import metrics
from trunkedge.core.border import removed_from_replies, removed_in_dialog, removed_initially
from trunkedge.core.errors import ConfigError
from trunkedge.core.pops import dispatcher_list
from trunkedge.kamailio import symbols, tls
from trunkedge.settings import (
    NDB_REDIS_UNSAFE,
    SECRET_ENV,
    SETTINGS_ENV,
    RedisSettings,
    Settings,
)
from trunkedge.store.client import connect, sentinels_answering_first
from trunkedge.store.schema import Keys
from trunkedge.store.shared_secret import shared_secret

ROOT = Path(__file__).resolve().parents[3]
MAIN_CFG = ROOT / "kamailio" / "kamailio.cfg"
PY_ENTRY = ROOT / "kamailio" / "edge.py"

SYSTEM_PATH = ("/usr/sbin", "/usr/bin", "/sbin", "/bin")
"""First on Kamailio's PATH: app_python3 finds its prefix from the `python3` there."""
PYTHON_PATH_VARIABLES = ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONUSERBASE",
                         "PYTHONEXECUTABLE", "PYTHONPLATLIBDIR", "PYTHONNOUSERSITE")
"""The caller's variables that would point the embedded interpreter at other files."""

SECRET_WAIT_S = 10.0  # how long `run` waits for Redis to agree on the shared secret


def default_rundir(settings: Settings) -> Path:
    """One runtime folder per settings file, so several edges can run side by side."""
    src = str(settings.source or "settings")
    tag = hashlib.sha256(src.encode()).hexdigest()[:10]
    base = Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir())
    return base / "trunkedge" / tag


def render(settings: Settings, rundir: Path, secret: str,
           sentinels: Sequence[str] | None = None) -> Path:
    """Write the wrapper kamailio.cfg (listen sockets and substitutions) into `rundir`;
    `sentinels`: redis.sentinels in the order the edge should prefer them."""
    rundir.mkdir(parents=True, exist_ok=True)
    redis_servers = ndb_redis_servers(settings.redis, sentinels)
    k = settings.kamailio
    subst = {
        "TE_RUNDIR": str(rundir),
        "TE_PY_ENTRY": str(PY_ENTRY),
        "TE_SECRET": secret,
        "TE_BASE_DOMAIN": settings.base_domain,
        "TE_MASK_IP": settings.routing.mask_ip,
        "TE_BAN_TIME": str(settings.security.ban_time_s),
        "TE_CALLS_EXPIRE": str(settings.limits.max_call_s + 2 * settings.limits.channel_lease_s),
        "TE_KNOWN_S": str(settings.limits.known_source_s),
        "TE_REDIS_SERVER": redis_servers[-1],  # the others (Sentinel): render_redis_servers
        **symbols.SUBSTITUTIONS,
    }
    defines = {
        "TE_FLOOD_REQUESTS": settings.security.flood_requests,
        "TE_FLOOD_WINDOW": settings.security.flood_window_s,
        "TE_REDIS_TIMEOUT": settings.redis.timeout_ms,
        "TE_CHILDREN": k.children,
        "TE_TCP_CHILDREN": k.tcp_children,
        "TE_LOG_LEVEL": k.log_level,
        "TE_PROBE_INTERVAL": settings.routing.probe_interval_s,
        "TE_PROBE_TIMEOUT": settings.routing.probe_timeout_ms,
        "TE_MAX_CALL": settings.limits.max_call_s,
    }
    lines = ["#!KAMAILIO", "# Rendered by `trunkedge run`; do not edit: change the settings."]
    for name, value in subst.items():
        if "!" in value or '"' in value:
            raise ConfigError(name, f"{value!r} may not contain ! or \"")
        lines.append(f'#!substdef "!{name}!{value}!g"')
    lines += [f"#!define {name} {value}" for name, value in defines.items()]
    if settings.routing.topology_hiding:
        lines.append("#!define TE_TOPOH 1")
    lines += tls.render_tls(settings, rundir)  # tls.cfg, and TE_TLS with a tls: listener
    lines += [f"listen={sock}" for sock in settings.listen]
    metrics = settings.metrics.address
    if metrics is not None:
        host = f"[{metrics[0]}]" if ":" in metrics[0] else metrics[0]
        lines.append(f"listen=tcp:{host}:{metrics[1]}")
    lines.append(f'include_file "{MAIN_CFG}"')
    if len(redis_servers) > 1:
        lines.append(f'include_file "{render_redis_servers(redis_servers[:-1], rundir)}"')
    if metrics is not None:
        lines.append(f'include_file "{render_metrics(rundir)}"')
    lines.append(f'include_file "{render_border(settings, rundir)}"')
    lines.append(f'include_file "{render_dialog_events(settings, rundir)}"')
    render_gateways(settings, rundir)
    cfg = rundir / "kamailio.cfg"
    cfg.write_text("\n".join(lines) + "\n")
    return cfg


def render_metrics(rundir: Path) -> Path:
    """The metrics endpoint's modules: xhttp answers HTTP on the metrics socket (the
    adapter's CB_XHTTP_EVENT), xhttp_prom serves every series of core.metrics and
    Kamailio's own statistics (named <group>_<name>, e.g. tm_..., dialog_active_dialogs)."""
    lines = [
        "# Rendered by `trunkedge run` when metrics.listen is set.",
        'loadmodule "xhttp.so"',
        'loadmodule "xhttp_prom.so"',
        f'modparam("xhttp", "event_callback", "{symbols.CB_XHTTP_EVENT}")',
        'modparam("xhttp_prom", "xhttp_prom_beginning", "")',
        'modparam("xhttp_prom", "xhttp_prom_stats", "all")',
        'modparam("xhttp_prom", "xhttp_prom_timeout", 0)',
        *(f'modparam("xhttp_prom", "prom_{s.xhttp_prom_kind}", '
          f'"{metrics.xhttp_prom_declaration(s)}")'
          for s in metrics.ALL),
    ]
    path = rundir / "metrics.cfg"
    path.write_text("\n".join(lines) + "\n")
    return path


def render_border(settings: Settings, rundir: Path) -> Path:
    """The headers each kind of message loses at the border (core.border and the routing
    settings' strip_reply_headers), as route blocks the adapter runs by name: Kamailio
    removes them natively, one remove_hf per header name."""
    internal = settings.routing.strip_reply_headers
    blocks = {
        symbols.ROUTE_BORDER_INITIAL: removed_initially(internal),
        symbols.ROUTE_BORDER_DIALOG: removed_in_dialog(internal),
        symbols.ROUTE_STRIP_REPLY: removed_from_replies(internal, private=False),
        symbols.ROUTE_STRIP_PRIVATE_REPLY: removed_from_replies(internal, private=True),
    }
    lines = ["# Rendered by `trunkedge run`: what messages lose at the border."]
    for name, headers in blocks.items():  # an empty block is a syntax error: return
        body = [f'    remove_hf("{h}");' for h in headers] or ["    return;"]
        lines += [f"route[{name}] {{", *body, "}"]
    path = rundir / "border.cfg"
    path.write_text("\n".join(lines) + "\n")
    return path


def render_dialog_events(settings: Settings, rundir: Path) -> Path:
    """The dialog module's events: the answer time kept natively (seconds.microseconds);
    the end or failure handed to the adapter with every fact it needs in one string
    (symbols.DIALOG_END_FACTS, formatted by Kamailio: the adapter reads no variable).
    Without records, only a call that holds channels has anything to hand over (the
    others are tracked for the calls-in-progress gauge alone)."""
    facts = "\\n".join(symbols.DIALOG_END_FACTS.values())
    guard = "" if settings.cdr.enabled else f"if ({symbols.HELD_VAR} != $null) "
    lines = ["# Rendered by `trunkedge run`: the dialog module's events.",
             f"event_route[dialog:start] {{\n    {symbols.ANSWERED_VAR} = $TV(Sn);\n}}"]
    for event in symbols.DIALOG_ENDED:
        lines.append(f'event_route[{event}] {{\n    {guard}python_exec('
                     f'"{symbols.CB_DIALOG_EVENT}", "{event}\\n{facts}");\n}}')
    path = rundir / "dialog_events.cfg"
    path.write_text("\n".join(lines) + "\n")
    return path


def render_gateways(settings: Settings, rundir: Path) -> Path:
    """Write the dispatcher list (atomically: Kamailio may be reading it)."""
    path = rundir / "dispatcher.list"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(dispatcher_list(settings.pops))
    tmp.replace(path)
    return path


def ndb_redis_servers(redis: RedisSettings, sentinels: Sequence[str] | None = None) -> list[str]:
    """ndb_redis `server` specs, most preferred first, named symbols.redis_servers: the one
    Redis of `redis.url`, or one per sentinel (in `sentinels`' order, else the settings'),
    each naming that sentinel alone. Debian's ndb_redis 5.6.3 reads only one `sentinel=`
    right: redisc_init and redisc_reconnect_server cut the i-th one visited at `pos[i]`
    (not `pos[0]`: fixed in 5.6.5/5.6.6), visit them last written first (parse_params
    prepends), never stop at an answer, and keep the port of the last one visited, so with
    more than one a worker connects to the first sentinel's port (`unknown command
    'EVALSHA'`). With one each, every server asks its own sentinel on each reconnect and
    NdbTransport moves on to the next server when one fails."""
    if not redis.sentinels:
        return [ndb_redis_server(redis.url)]
    order = redis.sentinels if sentinels is None else tuple(sentinels)
    password = f";pass={redis.password}" if redis.password else ""
    return [f"name={name};sentinel_group={redis.master_name};sentinel_master=1;"
            f"sentinel={sentinel};db={redis.db}{password}"
            for name, sentinel in zip(symbols.redis_servers(len(order)), order, strict=True)]


def render_redis_servers(specs: Sequence[str], rundir: Path) -> Path:
    """The ndb_redis servers before the one kamailio.cfg names (TE_REDIS_SERVER: the least
    preferred), written most preferred last. ndb_redis puts each server in front of those
    given before it (redisc_add_server) and connects them in that order at start, leaving
    every one after the first that fails unconnected for good (redisc_init returns under
    init_without_redis): so it connects them in the order of `specs`."""
    path = rundir / "redis.cfg"
    path.write_text("# Rendered by `trunkedge run` for redis.sentinels.\n" + "".join(
        f'modparam("ndb_redis", "server", "{spec}")\n' for spec in reversed(specs)))
    return path


def ndb_redis_server(url: str) -> str:
    """ndb_redis's server spec for a redis:// or unix:// URL (named symbols.REDIS_SERVER)."""
    u = urlsplit(url)
    query = dict(p.split("=", 1) for p in u.query.split("&") if "=" in p)
    if u.scheme == "unix":
        spec = f"name={symbols.REDIS_SERVER};unix={u.path};db={query.get('db', '0')}"
    else:
        db = (u.path or "/0").lstrip("/") or "0"
        host, port = u.hostname or "127.0.0.1", u.port or 6379
        spec = f"name={symbols.REDIS_SERVER};addr={host};port={port};db={db}"
    if u.password:
        password = unquote(u.password)
        if NDB_REDIS_UNSAFE & set(password):
            raise ConfigError("redis.url", "the password may not contain ; , ! \" \\ or "
                              "white space")
        spec += f";pass={password}"
    return spec


def kamailio_argv(settings: Settings, cfg: Path, rundir: Path) -> list[str]:
    binary = shutil.which("kamailio") or "/usr/sbin/kamailio"
    k = settings.kamailio
    return [
        binary, "-f", str(cfg), "-DD", "-E",
        "-m", str(k.shm_mb), "-M", str(k.pkg_mb), "-x", k.memory_manager,
        "-Y", str(rundir), "-P", str(rundir / "kamailio.pid"),
    ]


def kamailio_environment(environ: Mapping[str, str], base_prefix: str) -> dict[str, str]:
    """`environ` for Kamailio, whose embedded Python must be the one at `base_prefix` (the
    venv's base, Debian's /usr), whatever python3, PYTHONHOME or PYTHONPATH it names."""
    env = {k: v for k, v in environ.items() if k not in PYTHON_PATH_VARIABLES}
    rest = [d for d in environ.get("PATH", "").split(":") if d and d not in SYSTEM_PATH]
    env["PATH"] = ":".join([*SYSTEM_PATH, *rest])
    env["PYTHONHOME"] = base_prefix
    env["PYTHONNOUSERSITE"] = "1"  # no ~/.local packages in front of the venv's
    return env


def configured_secret(settings: Settings, environ: Mapping[str, str]) -> str:
    """TRUNKEDGE_SECRET, else auth.secret; "" when neither is set."""
    return environ.get(SECRET_ENV) or settings.auth.secret


def edge_secret(settings: Settings, environ: Mapping[str, str]) -> str:
    """The configured secret, else the one the edges sharing this Redis keep there."""
    secret = configured_secret(settings, environ)
    if secret:
        return secret
    key = Keys(settings.redis.prefix).secret
    secret, created = shared_secret(connect(settings.redis), key, SECRET_WAIT_S)
    done = "created it" if created else "using it"
    print(f"trunkedge run: auth.secret not set: the secret is the one shared in Redis key "
          f"{key} ({done})", file=sys.stderr, flush=True)
    return secret


def run(settings: Settings, rundir: Path | None) -> None:
    """Replace this process with Kamailio in the foreground (logs on stderr).

    Kamailio's main process handles SIGINT/SIGTERM by stopping all its children.
    """
    rundir = rundir or default_rundir(settings)
    secret = edge_secret(settings, os.environ)
    sentinels = sentinels_answering_first(settings.redis) if settings.redis.sentinels else None
    cfg = render(settings, rundir, secret, sentinels)
    tls.raise_open_files(settings)
    env = kamailio_environment(os.environ, sys.base_prefix)
    env[SETTINGS_ENV] = str(settings.source)
    env[SECRET_ENV] = secret
    env.setdefault("TRUNKEDGE_VENV", sys.prefix)
    argv = kamailio_argv(settings, cfg, rundir)
    os.execve(argv[0], argv, env)
