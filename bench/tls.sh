#!/usr/bin/env bash
# What TLS on the server port costs: the same 3-server + 1-client datacenter (real `consul agent`
# processes) run twice in one go, first in plaintext, then with TLS on 8300 (verify_incoming,
# verify_outgoing, verify_server_hostname; certificates made with our own `consul tls`), and the
# same KV write load (wrk, 256-byte values to fresh keys) against both:
#   - PUT on the leader: each write is a Raft commit, replicated to the followers over the
#     server port (plaintext Raft vs Raft inside TLS);
#   - PUT on the client agent: forwarded over agent RPC to a server (then the leader), so agent
#     RPC inside TLS is in the path too.
# The HTTP API stays plaintext in both runs, so only the server port differs. Prints req/s, p50
# and p99 per run and TLS/plaintext ratios; the target is an overhead of at most 10%.
#
#   bash bench/tls.sh                      # 1 and 16 connections, 5 s per run, 2 rounds
#   RUN_SECONDS=10 CONNECTIONS="16" ROUNDS=3 bash bench/tls.sh
# Each round runs plaintext then TLS; the rounds show how much of a difference is noise (the
# machine is shared) and whether running first or second matters.
#
# Installs wrk from Debian when missing (bench only). Only loopback addresses (127.0.0.31-34);
# every process started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

RUN_SECONDS=${RUN_SECONDS:-5}
CONNECTIONS=${CONNECTIONS:-"1 16"}
ROUNDS=${ROUNDS:-2}

if ! command -v wrk >/dev/null; then
    apt-get update -qq >/dev/null 2>&1 </dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null 2>&1 </dev/null
fi
# CONSUL_BIN: an already built binary (a quick smoke run of this script with a debug build).
if [[ -n "${CONSUL_BIN:-}" ]]; then
    CONSUL=$CONSUL_BIN
else
    swift build -c release --product consul >/dev/null
    CONSUL=$PWD/.build/release/consul
fi

mkdir -p .build
WORK=$(mktemp -d -p "$PWD/.build" bench-tls.XXXXXX)
PIDS=()
stop_all() {
    for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    PIDS=()
}
trap 'stop_all; rm -rf "$WORK"' EXIT

# Certificates, as an operator makes them.
(
    cd "$WORK"
    "$CONSUL" tls ca create >/dev/null
    "$CONSUL" tls cert create -server -dc dc1 >/dev/null
    "$CONSUL" tls cert create -client -dc dc1 >/dev/null
)
tls_hcl() { # cert key
    echo "tls { defaults { ca_file = \"$WORK/consul-agent-ca.pem\" cert_file = \"$1\" key_file = \"$2\"" \
        "verify_incoming = true verify_outgoing = true } internal_rpc { verify_server_hostname = true } }"
}
SERVER_TLS=$(tls_hcl "$WORK/dc1-server-consul-0.pem" "$WORK/dc1-server-consul-0-key.pem")
CLIENT_TLS=$(tls_hcl "$WORK/dc1-client-consul-0.pem" "$WORK/dc1-client-consul-0-key.pem")

VALUE=$(head -c 256 /dev/zero | tr '\0' 'v')
cat >"$WORK/put.lua" <<EOF
local threads = {}
function setup(thread)
    thread:set("id", #threads + 1)
    table.insert(threads, thread)
end
local n = 0
local body = "$VALUE"
function request()
    n = n + 1
    return wrk.format("PUT", "/v1/kv/bench/" .. (os.getenv("PREFIX") or "") .. id .. "-" .. n, nil, body)
end
function done(summary, latency, requests)
    io.write(string.format("RESULT rps=%.0f p50_ms=%.3f p99_ms=%.3f errors=%d\n",
        summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000,
        summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
EOF

declare -A RESULT
run_wrk() { # name connections url
    local name=$1 c=$2 url=$3 threads=2
    ((c < 2)) && threads=1
    local line
    line=$(PREFIX="${name// /_}-" wrk -t"$threads" -c"$c" -d"${RUN_SECONDS}s" -s "$WORK/put.lua" "$url" | grep '^RESULT' | sed 's/^RESULT //')
    RESULT[$name]=$line
    printf '%-26s %s\n' "$name" "$line"
}
field() { echo "${RESULT[$1]}" | sed -n "s|.*$2=\([0-9.]*\).*|\1|p"; }

run_datacenter() { # mode: plain | tls
    local mode=$1 server_extra=() client_extra=()
    if [[ $mode == tls ]]; then
        server_extra=(-hcl "$SERVER_TLS")
        client_extra=(-hcl "$CLIENT_TLS")
    fi
    echo "== $mode: 3 servers on 127.0.0.31-33, a client on 127.0.0.34"
    for i in 1 2 3; do
        "$CONSUL" agent -server -bootstrap-expect 3 -node "tls-s$i" -bind "127.0.0.3$i" -client "127.0.0.3$i" \
            -data-dir "$WORK/$mode-s$i" -retry-join 127.0.0.31 -retry-interval 200ms -log-level warn "${server_extra[@]}" \
            >"$WORK/$mode-s$i.log" 2>&1 &
        PIDS+=($!)
    done
    "$CONSUL" agent -node tls-c1 -bind 127.0.0.34 -client 127.0.0.34 -data-dir "$WORK/$mode-c1" \
        -retry-join 127.0.0.31 -retry-interval 200ms -log-level warn "${client_extra[@]}" >"$WORK/$mode-c1.log" 2>&1 &
    PIDS+=($!)
    local leader=""
    for _ in $(seq 1 200); do
        leader=$(curl -sf http://127.0.0.31:8500/v1/status/leader | tr -d '"' | cut -d: -f1 || true)
        [[ -n "$leader" ]] && curl -sf -X PUT --data x http://127.0.0.34:8500/v1/kv/bench/ready >/dev/null && break
        leader=""
        sleep 0.1
    done
    [[ -n "$leader" ]] || { echo "no leader, or the client cannot write"; cat "$WORK/$mode"-*.log; exit 1; }
    for c in $CONNECTIONS; do run_wrk "$mode leader c=$c" "$c" "http://$leader:8500"; done
    for c in $CONNECTIONS; do run_wrk "$mode client c=$c" "$c" "http://127.0.0.34:8500"; done
    if [[ $mode == tls ]]; then
        echo "tls: $(curl -sf http://127.0.0.31:8500/v1/agent/self | grep -o '"tls":{[^}]*}')"
    fi
    stop_all
}

ratio() { awk -v a="$(field "$1" "$3")" -v b="$(field "$2" "$3")" 'BEGIN { printf "%.2fx", (b > 0 ? a / b : 0) }'; }
for round in $(seq 1 "$ROUNDS"); do
    echo "#### round $round"
    run_datacenter plain
    run_datacenter tls
    echo "== round $round: TLS / plaintext (throughput: 1.00x = no cost; p50/p99: above 1 = slower)"
    for where in leader client; do
        for c in $CONNECTIONS; do
            echo "$where c=$c: throughput $(ratio "tls $where c=$c" "plain $where c=$c" rps)," \
                "p50 $(ratio "tls $where c=$c" "plain $where c=$c" p50_ms), p99 $(ratio "tls $where c=$c" "plain $where c=$c" p99_ms)" \
                "($(field "tls $where c=$c" rps) vs $(field "plain $where c=$c" rps) req/s)"
        done
    done
done
