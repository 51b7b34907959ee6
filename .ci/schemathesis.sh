#!/usr/bin/env bash
# Fuzzes a running `agora serve` from its own OpenAPI document with schemathesis: every
# operation, as an admin API key and as a user session. Fails on any 5xx and on any answer the
# document does not describe. Also validates the served document with openapi-spec-validator.
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${AGORA_CI_VENV:-target/ci-venv}"
if [ ! -x "$venv/bin/st" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r .ci/requirements.txt
fi

cargo build --quiet -p agora
data="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
admin_key="key_schemathesis_$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
AGORA_ADMIN_KEY="$admin_key" AGORA_DATA_DIR="$data" AGORA_LISTEN="127.0.0.1:$port" \
    AGORA_LOG_FORMAT=text RUST_LOG=warn target/debug/agora serve >"$data/server.log" 2>&1 &
server=$!
cleanup() {
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    rm -rf "$data"
}
trap cleanup EXIT
for _ in $(seq 1 100); do
    curl -fsS "$base/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done

curl -fsS "$base/v1/openapi.json" -o "$data/openapi.json"
"$venv/bin/openapi-spec-validator" "$data/openapi.json"

# A user to sign in as, for the session auth kind.
curl -fsS -X POST "$base/v1/users" -H "Authorization: Bearer $admin_key" \
    -H 'content-type: application/json' \
    -d '{"username": "fuzzer", "email": "fuzzer@example.com", "password": "correct horse battery"}' >/dev/null
session="$(curl -fsS -X POST "$base/v1/auth/login" -H 'content-type: application/json' \
    -d '{"login": "fuzzer", "password": "correct horse battery"}' |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')"

status=0
for auth in "$admin_key" "$session"; do
    # A session must not log itself out mid-run: logout is fuzzed as the key only.
    exclude=()
    [ "$auth" = "$session" ] && exclude=(--exclude-path /v1/auth/logout)
    "$venv/bin/st" run "$base/v1/openapi.json" \
        --header "Authorization: Bearer $auth" \
        --checks not_a_server_error,response_schema_conformance \
        --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-10}" \
        --request-timeout 10 \
        --seed 1 \
        --no-color \
        "${exclude[@]}" || status=1
done
if [ "$status" != 0 ]; then
    echo "--- server log ---"
    tail -n 50 "$data/server.log"
fi
exit "$status"
