#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian 12 machine (run as root): scripts/setup.sh [--test]
# Debian packages (Kamailio 5.6, SIPp, Redis) and a virtual environment at .venv/
# made with /usr/bin/python3, the interpreter Kamailio's app_python3 embeds.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(kamailio kamailio-python3-modules kamailio-redis-modules kamailio-extra-modules
          kamailio-utils-modules kamailio-tls-modules sip-tester redis-server python3-venv)
# With --test: what only the tests need. docker-compose (Debian's) validates
# docker-compose.yml without a Docker engine when the `docker compose` plugin is absent.
# linphone-cli (linphonec) and baresip: the real softphones of tests/e2e/test_real_clients.py
# (the baresip metapackage without its recommends is baresip-core: no GTK, X11, ffmpeg).
# redis-sentinel: Debian ships Sentinel apart from redis-server (tests/e2e/test_sentinel.py).
if [[ ${1:-} == --test ]]; then
    PACKAGES+=(linphone-cli baresip redis-sentinel prometheus)
    if ! docker compose version >/dev/null 2>&1; then
        PACKAGES+=(docker-compose)
    fi
fi

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # policy-rc.d: the packages must not start their own services; we never rely on systemd.
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
fi

# The venv must be built on /usr/bin/python3: Kamailio embeds that libpython.
stamp=.venv/.trunkedge-setup
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [[ ! -x .venv/bin/python || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    echo "setup: building .venv with /usr/bin/python3"
    /usr/bin/python3 -m venv .venv
    .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
    echo "$want" > "$stamp"
fi
test -x .venv/bin/trunkedge
