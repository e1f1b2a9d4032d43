#!/usr/bin/env bash
# Fuzzes the REST API with schemathesis against a live `flowplane up` (its own database, NATS
# prefix and ports), twice: as a platform admin, and as a member of one team (so refusals are
# fuzzed too), each with a token the run cannot take away (hooks.py).
# Every operation is called with generated valid and invalid input; the run fails on a server
# error, a status code, content type or header the document does not list, a response that does
# not match its schema, a request the document's schemas forbid that is not refused, or an
# error in flowplane's log. One resource of each kind is seeded (seed.py) and path parameters
# name it part of the time (schemathesis.toml), so operations reach real resources. Generation is deterministic, so a
# failure reproduces. Usage: tests/fuzz/run.sh [max examples per operation]
set -euo pipefail
cd "$(dirname "$0")/../.."
examples="${1:-10}"
target="${CARGO_TARGET_DIR:-$HOME/.cache/flowplane-target}"
flowplane="$target/debug/flowplane"
cargo build -q -p flowplane-cli
[ -x .venv/bin/schemathesis ] ||
  .venv/bin/pip install --quiet --disable-pip-version-check 'schemathesis>=4,<5'

work=$(mktemp -d)
database="fp_fuzz_$$"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
api=$(port); grpc=$(port)
cleanup() {
  [ -n "${up_pid:-}" ] && kill "$up_pid" 2>/dev/null && wait "$up_pid" 2>/dev/null || true
  [ -n "${FUZZ_KEEP_DB:-}" ] || psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $database WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

env XDG_CONFIG_HOME="$work" \
  FLOWPLANE_DATABASE_URL="postgres://postgres@127.0.0.1:5432/$database" \
  FLOWPLANE_NATS_PREFIX="fpfuzz$$" FLOWPLANE_REDIS_PREFIX="fpfuzz$$" \
  FLOWPLANE_API_ADDR="127.0.0.1:$api" \
  FLOWPLANE_CONFIG_GRPC_ADDR="127.0.0.1:$grpc" FLOWPLANE_CONFIG_URL="http://127.0.0.1:$grpc" \
  FLOWPLANE_CONFIG_HTTP_ADDR="127.0.0.1:$(port)" \
  FLOWPLANE_XDS_ADDR="127.0.0.1:$(port)" FLOWPLANE_XDS_HTTP_ADDR="127.0.0.1:$(port)" \
  FLOWPLANE_RATELIMIT_ADDR="127.0.0.1:$(port)" FLOWPLANE_RATELIMIT_HTTP_ADDR="127.0.0.1:$(port)" \
  FLOWPLANE_LEARNING_ADDR="127.0.0.1:$(port)" FLOWPLANE_LEARNING_HTTP_ADDR="127.0.0.1:$(port)" \
  FLOWPLANE_MCP_ADDR="127.0.0.1:$(port)" \
  FLOWPLANE_ACCESS_LOG_DIR="$work" \
  FLOWPLANE_LOGIN_MAX_FAILURES_PER_ADDRESS=1000000 \
  FLOWPLANE_BEARER_MAX_FAILURES_PER_ADDRESS=1000000 \
  "$flowplane" up >"$work/up.log" 2>&1 &
up_pid=$!
base="http://127.0.0.1:$api"
for _ in $(seq 1 200); do
  curl -sf "$base/readyz" >/dev/null && break
  kill -0 "$up_pid" 2>/dev/null || { cat "$work/up.log"; exit 1; }
  sleep 0.2
done
setup=$(grep -o 'fp_setup_[A-Za-z0-9]*' "$work/up.log" | head -n1)
FUZZ_MINT_TOKEN=$(curl -sf -X POST "$base/api/v1/bootstrap/initialize" -H "Authorization: Bearer $setup" \
  -H 'content-type: application/json' \
  -d '{"email":"fuzz-admin@example.com","password":"fuzz-admin-password","name":"Fuzz"}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
export FUZZ_API="$base" FUZZ_MINT_TOKEN

# An organization whose default team the second pass's token is scoped to.
curl -sf -X POST "$base/api/v1/admin/organizations" -H "Authorization: Bearer $FUZZ_MINT_TOKEN" \
  -H 'content-type: application/json' -d '{"name":"fuzz","displayName":"Fuzz"}' >/dev/null
FUZZ_TEAM=fuzz-default FUZZ_LISTENER_PORT=$(port) python3 tests/fuzz/seed.py
team="team:fuzz-default"
status=0
# The platform admin can see every token, the bootstrap one the hook mints with included, so
# its pass leaves the operations on a token by id to the team member's pass (a member sees and
# manages only its own tokens, and the hook mints it a new one whenever it revokes its own).
admin=("admin:all" --exclude-path-regex '^/api/v1/tokens/\{id\}')
member=("$team:clusters:write,$team:routes:write,$team:listeners:write,$team:secrets:read,$team:dataplanes:read,$team:learning-sessions:write,$team:api-definitions:read,$team:tokens:write")
for pass in admin member; do
  declare -n args="$pass"
  echo "== as a caller with ${args[0]}"
  FUZZ_SCOPES="${args[0]}" PYTHONPATH=tests/fuzz SCHEMATHESIS_HOOKS=hooks \
    .venv/bin/schemathesis --config-file tests/fuzz/schemathesis.toml \
    run "$base/api-docs/openapi.json" "${args[@]:1}" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection \
    --max-examples "$examples" --phases examples,fuzzing --continue-on-failure \
    --generation-deterministic --no-color || status=$?
done
if grep -q ' ERROR ' "$work/up.log"; then
  echo "flowplane logged errors during the run:"; grep ' ERROR ' "$work/up.log" | head -n 20
  status=1
fi
exit "$status"
