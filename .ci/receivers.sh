#!/usr/bin/env bash
# The receiver kits of examples/receivers/ against live deliveries: each kit runs with its own
# chosen `whsec_` secret behind a webhook of a running `agora serve` (the workspace's debug
# binary), must accept every event published, ignore a redelivery, and refuse a tampered body
# and a stale timestamp. Installs what the machine lacks. Bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."
KITS=examples/receivers
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
    echo "receivers: $*" >&2
    for log in "$WORK"/*.log; do echo "--- $log" >&2; tail -n 30 "$log" >&2; done
    exit 1
}

# Waits up to $1 seconds for the command after it to succeed.
wait_until() {
    local seconds=$1; shift
    for _ in $(seq 1 $((seconds * 5))); do "$@" && return 0; sleep 0.2; done
    return 1
}

# A free loopback port.
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Node, npm, a Python venv, curl and jq, from Debian's packages when missing.
if ! command -v node >/dev/null || ! command -v npm >/dev/null || ! command -v curl >/dev/null \
    || ! command -v jq >/dev/null || ! python3 -c 'import ensurepip' 2>/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm curl jq python3-venv >/dev/null
fi

echo "receivers: installing the kits' pinned dependencies"
(cd "$KITS/node" && timeout 300 npm ci --no-audit --no-fund --loglevel=error)
python3 -m venv "$WORK/venv"
timeout 300 "$WORK/venv/bin/pip" install -q --disable-pip-version-check -r "$KITS/python/requirements.txt"
timeout 900 cargo build --quiet --locked --manifest-path "$KITS/rust/Cargo.toml" --target-dir target/receivers
timeout 900 cargo build --quiet -p agora

AGORA_PORT=$(free_port)
API="http://127.0.0.1:$AGORA_PORT"
ADMIN="ci-receivers-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
AGORA_DATA_DIR="$WORK/data" AGORA_ADMIN_KEY="$ADMIN" AGORA_ALLOW_PRIVATE_TARGETS=1 \
    AGORA_LISTEN="127.0.0.1:$AGORA_PORT" target/debug/agora serve >"$WORK/agora.log" 2>&1 &
PIDS+=($!)
wait_until 30 curl -sf "$API/readyz" -o /dev/null || fail "agora did not become ready"

api() { # METHOD PATH [JSON]
    curl -sf -X "$1" "$API$2" -H "authorization: Bearer $ADMIN" -H 'content-type: application/json' \
        ${3:+--data "$3"}
}
new_secret() { python3 -c 'import base64, os; print("whsec_" + base64.b64encode(os.urandom(32)).decode())'; }

api POST /v1/event-types '{"name": "kit.checked", "description": "receiver kit check"}' >/dev/null

declare -A PORT SECRET
for kit in node python rust; do
    PORT[$kit]=$(free_port)
    SECRET[$kit]=$(new_secret)
done
AGORA_WEBHOOK_SECRET="${SECRET[node]}" PORT="${PORT[node]}" node "$KITS/node/server.js" >"$WORK/node.log" 2>&1 &
PIDS+=($!)
AGORA_WEBHOOK_SECRET="${SECRET[python]}" PORT="${PORT[python]}" "$WORK/venv/bin/python" "$KITS/python/app.py" >"$WORK/python.log" 2>&1 &
PIDS+=($!)
AGORA_WEBHOOK_SECRET="${SECRET[rust]}" PORT="${PORT[rust]}" target/receivers/debug/agora-receiver >"$WORK/rust.log" 2>&1 &
PIDS+=($!)

declare -A HOOK
for kit in node python rust; do
    wait_until 30 grep -q listening "$WORK/$kit.log" || fail "the $kit kit did not start"
    HOOK[$kit]=$(api POST /v1/webhooks "$(jq -n --arg url "http://127.0.0.1:${PORT[$kit]}/webhook" \
        --arg secret "${SECRET[$kit]}" '{url: $url, events: ["kit.*"], secret: $secret, retry_count: 0}')" | jq -r .id)
done

EVENTS=()
for n in 1 2 3; do
    EVENTS+=("$(api POST /v1/events "{\"type\": \"kit.checked\", \"data\": {\"n\": $n}}" | jq -r .id)")
done

# Every kit accepts every event, once.
for kit in node python rust; do
    for event in "${EVENTS[@]}"; do
        wait_until 20 grep -q "accepted msg_.* kit.checked $event" "$WORK/$kit.log" \
            || fail "the $kit kit did not accept $event"
    done
    # A redelivery carries the same webhook-id: verified, answered, not processed again.
    delivery=$(api GET "/v1/webhooks/${HOOK[$kit]}/deliveries" | jq -r '.data[0].id')
    api POST "/v1/deliveries/$delivery/redeliver" >/dev/null
    wait_until 20 grep -q "duplicate $delivery" "$WORK/$kit.log" \
        || fail "the $kit kit did not recognise the redelivery of $delivery"
    [ "$(grep -c '^accepted ' "$WORK/$kit.log")" -eq 3 ] || fail "the $kit kit processed a repeat"
done

# Signs like Agora: STATUS of POST with (body, timestamp) signed over (signed body, timestamp).
post_signed() { # KIT SIGNED_BODY SENT_BODY TIMESTAMP
    local signature
    signature=$(SECRET="${SECRET[$1]}" BODY="$2" TS="$4" python3 -c '
import base64, hashlib, hmac, os
key = base64.b64decode(os.environ["SECRET"].removeprefix("whsec_"))
signed = "msg_ci{}.{}.{}".format(os.environ["TS"], os.environ["TS"], os.environ["BODY"]).encode()
print("v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode())')
    curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${PORT[$1]}/webhook" \
        -H 'content-type: application/json' -H "webhook-id: msg_ci$4" -H "webhook-timestamp: $4" \
        -H "webhook-signature: $signature" --data "$3"
}
BODY='{"id":"evt_ci","type":"kit.checked","timestamp":"2026-01-01T00:00:00.000Z","data":{}}'
TAMPERED='{"id":"evt_ci","type":"kit.checked","timestamp":"2026-01-01T00:00:00.000Z","data":{"x":1}}'
for kit in node python rust; do
    now=$(date +%s)
    status=$(post_signed "$kit" "$BODY" "$BODY" "$now")
    [[ $status == 2* ]] || fail "the $kit kit refused a correctly signed request ($status): the check itself is wrong"
    status=$(post_signed "$kit" "$BODY" "$TAMPERED" "$((now + 1))")
    [[ $status == 400 || $status == 401 ]] || fail "the $kit kit answered $status to a tampered body"
    status=$(post_signed "$kit" "$BODY" "$BODY" "$((now - 600))")
    [[ $status == 400 || $status == 401 ]] || fail "the $kit kit answered $status to a stale timestamp"
    status=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${PORT[$kit]}/webhook" \
        -H 'content-type: application/json' --data "$BODY")
    [[ $status == 400 || $status == 401 ]] || fail "the $kit kit answered $status to an unsigned request"
    echo "receivers: $kit kit: 3 live deliveries accepted, a redelivery ignored, tampered, stale and unsigned requests refused"
done
