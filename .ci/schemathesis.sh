#!/usr/bin/env bash
# Fuzzes a running `agora serve` from its own OpenAPI document with schemathesis: every
# operation, as an admin API key and as a user session. Fails on any 5xx and on any answer the
# document does not describe. Also validates the served document with openapi-spec-validator.
set -euo pipefail
cd "$(dirname "$0")/.."

venv="$(realpath -m "${AGORA_CI_VENV:-target/ci-venv}")"
if [ ! -x "$venv/bin/st" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r .ci/requirements.txt
fi

cargo build --quiet -p agora
data="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
admin_key="agora_schemathesis_$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
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

status=0
# Each run leaves out the operations that would end its own credentials mid-run (the stateful
# phase follows links from lists to deletes): the key revoking itself; the session logging
# out or deleting its own user. They are fuzzed by the other run.
# Run from the temporary directory, where schemathesis leaves its cache.
run() {
    (cd "$data" && "$venv/bin/st" run "$base/v1/openapi.json" \
        --header "Authorization: Bearer $1" \
        --checks not_a_server_error,response_schema_conformance \
        --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-20}" \
        --request-timeout 10 \
        --seed 1 \
        --generation-with-security-parameters false \
        --generation-database none \
        --no-color \
        "${@:2}") || status=1
}
run "$admin_key" --exclude-operation-id api-keys_revoke

# A user to sign in as, for the session auth kind, made after the key's run (which deletes
# users it finds): a forum admin, so that the session reaches past the role checks.
json() { python3 -c "import json, sys; print(json.load(sys.stdin)[\"$1\"])"; }
as_admin() {
    curl -fsS -X "$1" "$base$2" -H "Authorization: Bearer $admin_key" \
        -H 'content-type: application/json' ${3:+-d "$3"}
}
name="fuzzer$(date +%s)"
user="$(as_admin POST /v1/users \
    "{\"username\": \"$name\", \"email\": \"$name@example.com\", \"password\": \"correct horse battery\"}" | json id)"
group="$(as_admin POST /v1/groups "{\"name\": \"admins $name\", \"is_admin\": true}" | json id)"
as_admin PUT "/v1/groups/$group/members/$user" >/dev/null
session="$(curl -fsS -X POST "$base/v1/auth/login" -H 'content-type: application/json' \
    -d "{\"login\": \"$name\", \"password\": \"correct horse battery\"}" | json token)"
run "$session" --exclude-operation-id users_logout --exclude-operation-id users_remove
if [ "$status" != 0 ]; then
    echo "--- server log ---"
    tail -n 50 "$data/server.log"
fi
exit "$status"
