# The edge on Debian 12 with the same packages and set-up as the native run.
FROM debian:12
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      kamailio kamailio-python3-modules kamailio-redis-modules kamailio-extra-modules \
      kamailio-utils-modules kamailio-tls-modules sip-tester redis-server python3-venv \
      ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/trunkedge
COPY . .
RUN rm -rf .venv && ./scripts/setup.sh
ENTRYPOINT ["/opt/trunkedge/.venv/bin/trunkedge"]
CMD ["run", "--config", "/etc/trunkedge/settings.yaml", "--rundir", "/run/trunkedge"]
