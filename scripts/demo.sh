#!/usr/bin/env bash
# Run the edge on this machine: set up if needed, start a local redis-server (data in
# $TRUNKEDGE_DEMO_DIR, outside the repo), provision the demo customer, start a SIPp gateway
# for POP eu1, and run Kamailio in the foreground. Ctrl-C stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
./scripts/setup.sh

STATE=${TRUNKEDGE_DEMO_DIR:-/var/tmp/trunkedge-demo}
REDIS_PORT=${TRUNKEDGE_DEMO_REDIS_PORT:-6390}
mkdir -p "$STATE"
# SIP over TLS on 127.0.0.1:5061 too, with a self-signed certificate of the demo's own
# (in $STATE, never in the repo; clients must accept it or trust $STATE/edge.crt).
if [[ ! -s $STATE/edge.crt || ! -s $STATE/edge.key ]]; then
    openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj /CN=127.0.0.1 \
        -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
        -keyout "$STATE/edge.key" -out "$STATE/edge.crt" 2>/dev/null
    chmod 600 "$STATE/edge.key"
fi
sed -e "s|redis://127.0.0.1:6379/0|redis://127.0.0.1:$REDIS_PORT/0|" \
    -e 's|^\(listen: \[[^]]*\)\]|\1, "tls:127.0.0.1:5061"]|' \
    -e "s|/etc/trunkedge/tls/edge.crt|$STATE/edge.crt|" \
    -e "s|/etc/trunkedge/tls/edge.key|$STATE/edge.key|" examples/settings.yaml \
    > "$STATE/settings.yaml"

pids=()
cleanup() {
    trap - INT TERM EXIT
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    echo "demo: stopped (data kept in $STATE)"
}
trap cleanup INT TERM EXIT

# A demo Redis of our own (never someone else's: a port of its own, data in $STATE).
if [[ -f $STATE/redis.pid ]] && kill -0 "$(cat "$STATE/redis.pid")" 2>/dev/null; then
    kill "$(cat "$STATE/redis.pid")"; sleep 0.5
fi
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$STATE" --save 60 1 \
    --appendonly no --pidfile "$STATE/redis.pid" --logfile "$STATE/redis.log" &
pids+=($!)
for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

TE=(.venv/bin/trunkedge --config "$STATE/settings.yaml")
"${TE[@]}" import examples/demo-customer.yaml

# The eu1 gateway (sip:127.0.0.1:5091 in the settings): a SIPp UAS that answers every call.
sipp -sf sipp-scenarios/gateway_answers.xml -key gw eu1 -i 127.0.0.1 -p 5091 -nostdin \
    -trace_err -error_file "$STATE/gateway.err" >/dev/null 2>"$STATE/gateway.log" &
pids+=($!)

KEYS="-key from_display '' -key hdr2 'X-Pad: 1' -key hdr3 'X-Pad: 1' -key hdr4 'X-Pad: 1'"
cat <<MSG

demo: the edge listens on udp/tcp 127.0.0.1:5060 and tls 127.0.0.1:5061 (certificate
demo: $STATE/edge.crt, self-signed), Redis on 127.0.0.1:$REDIS_PORT.
demo: in another terminal, place a test call admitted by the PBX's address (IP ACL "office";
demo: the From number is not one it may present, so the default caller ID is asserted):
  sipp -sf $ROOT/sipp-scenarios/call_answered.xml 127.0.0.1:5060 -i 127.0.0.1 -m 1 \\
       -s +3123456789 -key domain acme.sip.example.net -key from_user pbx \\
       -key from_host acme.sip.example.net -key hdr1 'X-Pad: 1' $KEYS
demo: or one from another address with digest (account 31000000 of ACL "roaming"),
demo: presenting its verified number in P-Preferred-Identity:
  sipp -sf $ROOT/sipp-scenarios/call_answered_after_challenge.xml 127.0.0.1:5060 -i 127.0.0.2 \\
       -m 1 -s +3123456789 -key domain acme.sip.example.net -key from_user 31000000 \\
       -key from_host acme.sip.example.net -key hdr1 'P-Preferred-Identity: <tel:+31205550100>' \\
       $KEYS -au 31000000 -ap demo-password -auth_uri +3123456789@acme.sip.example.net
demo: or from a softphone (linphone, baresip, ...): see README "Calling the demo from a
demo: softphone" (server 127.0.0.1:5060 UDP, domain acme.sip.example.net, user 31000000,
demo: password demo-password, from 127.0.0.2 or any address but 127.0.0.1 for digest).
demo: provisioning: ${TE[*]} --help; state: ${TE[*]} status
demo: starting Kamailio (Ctrl-C stops the edge, Redis and the gateway)

MSG
"${TE[@]}" run &
pids=("$!" "${pids[@]}")  # Kamailio first: stopped before Redis
wait "${pids[0]}"
