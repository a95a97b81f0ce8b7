"""`trunkedge run`: render Kamailio's wrapper config from the settings and run Kamailio."""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote, urlsplit

from trunkedge.core.errors import ConfigError
from trunkedge.core.pops import dispatcher_list
from trunkedge.kamailio import symbols
from trunkedge.settings import SECRET_ENV, SETTINGS_ENV, Settings
from trunkedge.store.client import connect
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


def render(settings: Settings, rundir: Path, secret: str) -> Path:
    """Write the wrapper kamailio.cfg (listen sockets and substitutions) into `rundir`."""
    rundir.mkdir(parents=True, exist_ok=True)
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
        "TE_REDIS_SERVER": ndb_redis_server(settings.redis.url),
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
    lines += [f"listen={sock}" for sock in settings.listen]
    lines.append(f'include_file "{MAIN_CFG}"')
    render_gateways(settings, rundir)
    cfg = rundir / "kamailio.cfg"
    cfg.write_text("\n".join(lines) + "\n")
    return cfg


def render_gateways(settings: Settings, rundir: Path) -> Path:
    """Write the dispatcher list (atomically: Kamailio may be reading it)."""
    path = rundir / "dispatcher.list"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(dispatcher_list(settings.pops))
    tmp.replace(path)
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
        if any(c in password for c in ';!"'):
            raise ConfigError("redis.url", "the password may not contain ; ! or \"")
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
    cfg = render(settings, rundir, secret)
    env = kamailio_environment(os.environ, sys.base_prefix)
    env[SETTINGS_ENV] = str(settings.source)
    env[SECRET_ENV] = secret
    env.setdefault("TRUNKEDGE_VENV", sys.prefix)
    argv = kamailio_argv(settings, cfg, rundir)
    os.execve(argv[0], argv, env)
