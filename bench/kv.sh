#!/usr/bin/env bash
# KV over HTTP, end to end: our 3-server datacenter (real `consul agent` processes) against a
# 3-member etcd 3.4 (its v3 HTTP/JSON gateway), the same load generator (wrk) for both, on the same
# loopback and disk: both run side by side and are measured in turn. 256-byte values.
#   - writes: PUT to fresh keys at 1/16/64 connections (ours: PUT /v1/kv/<key>; etcd: POST /v3/kv/put),
#     ROUNDS (5) rounds (who goes first alternates); the ratios are the medians over the rounds
#   - reads of one key: stale (ours ?stale, etcd serializable) and default (ours default
#     consistency, etcd linearizable), 64 connections
#   - nginx serving a static 300-byte file, 64 connections: the ceiling for a small HTTP answer
# Prints req/s, p50 and p99 per run and the ratios, then the RSS of an idle server, client and
# etcd member. For every write run also the CPU time per write summed over the three members
# (/proc/<pid>/stat) and the bytes the disk received per write (the device's sectors written; the
# other datacenter is idle meanwhile): what a write costs, which the disk's stalls (they decide
# the p99) do not blur.
#
# Every write run is measured as the anchor numbers were (../shared/reference/anchors.md): wrk for
# RUN_SECONDS (10) after WARMUP_SECONDS (2) of the same load, all of it sent to the leader (etcd's
# is looked up before each run: a follower would forward every put).
#
#   bash bench/kv.sh
#   RUN_SECONDS=5 WARMUP_SECONDS=0 ROUNDS=5 CONNECTIONS="16 64" bash bench/kv.sh
#
# Installs wrk, nginx and etcd from Debian when missing (bench only). Only loopback addresses;
# every process started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

RUN_SECONDS=${RUN_SECONDS:-10}
WARMUP_SECONDS=${WARMUP_SECONDS:-2}
ROUNDS=${ROUNDS:-5}
CONNECTIONS=${CONNECTIONS:-"1 16 64"}
READ_CONNECTIONS=${READ_CONNECTIONS:-64}
# More `consul agent` arguments for our servers, e.g. CONSUL_AGENT_ARGS="-hcl raft_snapshot_threshold=1000000".
read -r -a AGENT_ARGS <<<"${CONSUL_AGENT_ARGS:-}"

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || need+=(nginx-light)
command -v etcd >/dev/null || need+=(etcd-server etcd-client)
if ((${#need[@]})); then
    # All output away from our pipes: a package's post-install may start a daemon holding them.
    apt-get update -qq >/dev/null 2>&1 </dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null 2>&1 </dev/null
    # nginx's package starts the system site on port 80; this bench runs its own.
    service nginx stop >/dev/null 2>&1 </dev/null || true
fi
# CONSUL_BIN: an already built binary (a quick smoke run of this script with a debug build).
if [[ -n "${CONSUL_BIN:-}" ]]; then
    CONSUL=$CONSUL_BIN
else
    swift build -c release --product consul >/dev/null
    CONSUL=$PWD/.build/release/consul
fi

mkdir -p .build
WORK=$(mktemp -d -p "$PWD/.build" bench-kv.XXXXXX)
chmod 755 "$WORK"  # nginx's workers (user nobody) read the static file from here
PIDS=()
SERVER_PIDS=()
ETCD_PIDS=()
NGINX_PID=""
stop_all() {
    # nginx first, and by its own shutdown (SIGTERM to the master stops the workers): a master
    # killed outright respawns a worker it sees die, which then outlives it, keeps the port and
    # answers the next run's nginx measurement.
    if [ -n "$NGINX_PID" ]; then
        kill -TERM "$NGINX_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$NGINX_PID" 2>/dev/null || break; sleep 0.1; done
        NGINX_PID=""
    fi
    # Children first: workers outlive a killed parent and would hold our output open.
    for pid in "${PIDS[@]}"; do pkill -9 -P "$pid" 2>/dev/null || true; kill -9 "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    PIDS=()
}
trap 'stop_all; rm -rf "$WORK"' EXIT

VALUE=$(head -c 256 /dev/zero | tr '\0' 'v')
VALUE_B64=$(printf '%s' "$VALUE" | base64 -w0)

# wrk scripts: fresh keys per request (thread id and a counter), and a latency summary line.
cat >"$WORK/common.lua" <<'EOF'
local threads = {}
function setup(thread)
    thread:set("id", #threads + 1)
    table.insert(threads, thread)
end
function done(summary, latency, requests)
    io.write(string.format("RESULT rps=%.0f p50_ms=%.3f p99_ms=%.3f requests=%d errors=%d\n",
        summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.requests,
        summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
EOF
cat >"$WORK/consul-put.lua" <<EOF
dofile("$WORK/common.lua")
local n = 0
local body = "$VALUE"
function request()
    n = n + 1
    return wrk.format("PUT", "/v1/kv/bench/" .. id .. "-" .. n, nil, body)
end
EOF
cat >"$WORK/etcd-put.lua" <<EOF
dofile("$WORK/common.lua")
local n = 0
local b = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
local function b64(data)
    return ((data:gsub('.', function(x)
        local r, byte = '', x:byte()
        for i = 8, 1, -1 do r = r .. (byte % 2 ^ i - byte % 2 ^ (i - 1) > 0 and '1' or '0') end
        return r
    end) .. '0000'):gsub('%d%d%d?%d?%d?%d?', function(x)
        if #x < 6 then return '' end
        local c = 0
        for i = 1, 6 do c = c + (x:sub(i, i) == '1' and 2 ^ (6 - i) or 0) end
        return b:sub(c + 1, c + 1)
    end) .. ({ '', '==', '=' })[#data % 3 + 1])
end
function request()
    n = n + 1
    local key = b64("bench/" .. id .. "-" .. n)
    return wrk.format("POST", "/v3/kv/put", {["Content-Type"] = "application/json"},
        '{"key":"' .. key .. '","value":"$VALUE_B64"}')
end
EOF
cat >"$WORK/etcd-get.lua" <<EOF
dofile("$WORK/common.lua")
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
function request()
    return wrk.format(nil, nil, nil, '{"key":"' .. "$(printf 'bench/read' | base64 -w0)" .. '"' .. (os.getenv("SERIALIZABLE") == "1" and ',"serializable":true' or '') .. '}')
end
EOF
cat >"$WORK/plain.lua" <<EOF
dofile("$WORK/common.lua")
EOF

declare -A RESULT
TICK_US=$((1000000 / $(getconf CLK_TCK)))
# The block device under the data directories: what it was sent is counted there (sectors
# written), since a process's write_bytes counts whole page-cache folios dirtied (up to 1 MiB
# apiece on ext4 since Linux 6.x, for a 300-byte append) rather than what reaches the disk.
DISK_STAT=/sys/class/block/$(basename "$(df --output=source "$WORK" | tail -1)")/stat
# CPU time (clock ticks) summed over the given processes, and bytes written to the disk so far.
usage_of() {
    local ticks=0 pid
    for pid in "$@"; do ticks=$((ticks + $(awk '{ print $14 + $15 }' "/proc/$pid/stat"))); done
    echo "$ticks $(awk '{ printf "%.0f", $7 * 512 }' "$DISK_STAT" 2>/dev/null || echo 0)"
}
run_wrk() { # name connections script url [pids whose CPU and disk writes per request to report]
    local name=$1 c=$2 script=$3 url=$4 threads=2
    shift 4
    ((c < 2)) && threads=1
    local line ticks0=0 bytes0=0 ticks1 bytes1 requests
    if ((WARMUP_SECONDS > 0)); then
        wrk -t"$threads" -c"$c" -d"${WARMUP_SECONDS}s" -s "$script" "$url" >/dev/null
    fi
    (($#)) && read -r ticks0 bytes0 < <(usage_of "$@")
    line=$(wrk -t"$threads" -c"$c" -d"${RUN_SECONDS}s" -s "$script" "$url" | grep '^RESULT' | sed 's/^RESULT //')
    if (($#)); then
        read -r ticks1 bytes1 < <(usage_of "$@")
        requests=$(echo "$line" | sed -n 's/.*requests=\([0-9]*\).*/\1/p')
        line+=$(awk -v t=$((ticks1 - ticks0)) -v b=$((bytes1 - bytes0)) -v n="$requests" -v us="$TICK_US" \
            'BEGIN { if (n > 0) printf " cpu_us=%.0f disk_bytes=%.0f", t * us / n, b / n }')
    fi
    RESULT[$name]=$line
    printf '%-28s %s\n' "$name" "$line"
}
field() { echo "${RESULT[$1]}" | sed -n "s|.*$2=\([0-9.]*\).*|\1|p"; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
# The client URL of etcd's current leader: the member whose status names itself as leader.
etcd_leader_url() {
    local i status
    for i in 1 2 3; do
        status=$(curl -sf -m 1 -X POST -d '{}' "http://127.0.0.$i:2750$i/v3/maintenance/status" || true)
        if python3 -c 'import json, sys; d = json.loads(sys.argv[1]); sys.exit(d["header"]["member_id"] != d["leader"])' "$status" 2>/dev/null; then
            echo "http://127.0.0.$i:2750$i"
            return
        fi
    done
    echo "http://127.0.0.1:27501"  # no leader known: e1 forwards or fails, and the run shows it
}

echo "== ours: 3 consul servers (-bootstrap-expect 3) on 127.0.0.11-13"
for i in 1 2 3; do
    "$CONSUL" agent -server -bootstrap-expect 3 -node "bench-s$i" -bind "127.0.0.1$i" -client "127.0.0.1$i" \
        -data-dir "$WORK/s$i" -retry-join 127.0.0.11 -retry-interval 200ms -log-level warn "${AGENT_ARGS[@]}" >"$WORK/s$i.log" 2>&1 &
    PIDS+=($!)
    SERVER_PIDS+=($!)
done
LEADER=""
for _ in $(seq 1 150); do
    LEADER=$(curl -sf http://127.0.0.11:8500/v1/status/leader | tr -d '"' | cut -d: -f1 || true)
    [[ -n "$LEADER" ]] && break
    sleep 0.1
done
[[ -n "$LEADER" ]] || { echo "no leader"; cat "$WORK"/s*.log; exit 1; }
curl -sf -X PUT --data "$VALUE" "http://$LEADER:8500/v1/kv/bench/read" >/dev/null

echo "== etcd $(etcd --version | sed -n 's/etcd Version: //p'): 3 members on 127.0.0.1-3"
CLUSTER="e1=http://127.0.0.1:27601,e2=http://127.0.0.2:27602,e3=http://127.0.0.3:27603"
for i in 1 2 3; do
    etcd --name "e$i" --data-dir "$WORK/e$i" \
        --listen-client-urls "http://127.0.0.$i:2750$i" --advertise-client-urls "http://127.0.0.$i:2750$i" \
        --listen-peer-urls "http://127.0.0.$i:2760$i" --initial-advertise-peer-urls "http://127.0.0.$i:2760$i" \
        --initial-cluster "$CLUSTER" --initial-cluster-state new --initial-cluster-token bench \
        --log-level error >"$WORK/e$i.log" 2>&1 &
    PIDS+=($!)
    ETCD_PIDS+=($!)
done
for _ in $(seq 1 150); do
    curl -sf -X POST -d "{\"key\":\"$(printf 'bench/read' | base64 -w0)\",\"value\":\"$VALUE_B64\"}" http://127.0.0.1:27501/v3/kv/put >/dev/null && break
    sleep 0.1
done

# Both datacenters stay up and are measured in turn, round after round, who goes first
# alternating: the disk's stalls (hundreds of ms on this VM, whoever writes) then fall on both.
for round in $(seq 1 "$ROUNDS"); do
    echo "-- round $round"
    for c in $CONNECTIONS; do
        ours() { run_wrk "ours put c=$c r$round" "$c" "$WORK/consul-put.lua" "http://$LEADER:8500" "${SERVER_PIDS[@]}"; }
        theirs() { run_wrk "etcd put c=$c r$round" "$c" "$WORK/etcd-put.lua" "$(etcd_leader_url)" "${ETCD_PIDS[@]}"; }
        if ((round % 2)); then ours; theirs; else theirs; ours; fi
    done
done
# Reads are CPU-bound: the other datacenter is frozen (SIGSTOP) meanwhile, so its background work
# after the writes (etcd snapshots its log every 100k entries, say) does not count against either.
kill -STOP "${ETCD_PIDS[@]}"
run_wrk "ours stale read" "$READ_CONNECTIONS" "$WORK/plain.lua" "http://$LEADER:8500/v1/kv/bench/read?stale"
run_wrk "ours default read" "$READ_CONNECTIONS" "$WORK/plain.lua" "http://$LEADER:8500/v1/kv/bench/read"
kill -STOP "${SERVER_PIDS[@]}"
kill -CONT "${ETCD_PIDS[@]}"
# A member that slept through its election timeout may hold an election first.
for _ in $(seq 1 100); do
    curl -sf -m 1 -X POST -d "{\"key\":\"$(printf 'bench/read' | base64 -w0)\",\"value\":\"$VALUE_B64\"}" http://127.0.0.1:27501/v3/kv/put >/dev/null && break
    sleep 0.1
done
ETCD_LEADER=$(etcd_leader_url)
SERIALIZABLE=1 run_wrk "etcd serializable read" "$READ_CONNECTIONS" "$WORK/etcd-get.lua" "$ETCD_LEADER/v3/kv/range"
SERIALIZABLE=0 run_wrk "etcd linearizable read" "$READ_CONNECTIONS" "$WORK/etcd-get.lua" "$ETCD_LEADER/v3/kv/range"
kill -CONT "${SERVER_PIDS[@]}"

echo "== idle memory"
"$CONSUL" agent -node bench-c1 -bind 127.0.0.14 -client 127.0.0.14 -data-dir "$WORK/c1" -retry-join 127.0.0.11 \
    -log-level warn >"$WORK/c1.log" 2>&1 &
CLIENT_PID=$!
PIDS+=($CLIENT_PID)
sleep 5
echo "idle RSS after the load above: server $(rss_kib "${SERVER_PIDS[1]}") KiB, client $(rss_kib "$CLIENT_PID") KiB, etcd member $(rss_kib "${ETCD_PIDS[1]}") KiB"
stop_all

echo "== nginx: a static 300-byte file on 127.0.0.20"
mkdir -p "$WORK/www"
head -c 300 /dev/zero | tr '\0' 'x' >"$WORK/www/file"
cat >"$WORK/nginx.conf" <<EOF
worker_processes auto;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
daemon off;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx-body;
    proxy_temp_path $WORK/nginx-proxy;
    fastcgi_temp_path $WORK/nginx-fastcgi;
    uwsgi_temp_path $WORK/nginx-uwsgi;
    scgi_temp_path $WORK/nginx-scgi;
    server { listen 127.0.0.20:28080; root $WORK/www; }
}
EOF
nginx -c "$WORK/nginx.conf" &
NGINX_PID=$!
PIDS+=($!)
sleep 1
run_wrk "nginx static" "$READ_CONNECTIONS" "$WORK/plain.lua" "http://127.0.0.20:28080/file"
stop_all

echo "== ratios (ours / anchor)"
ratio() { awk -v a="$(field "$1" "$3")" -v b="$(field "$2" "$3")" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { printf "%.2f", (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
for c in $CONNECTIONS; do
    throughput="" p99="" cpu="" disk=""
    for round in $(seq 1 "$ROUNDS"); do
        throughput+=" $(ratio "ours put c=$c r$round" "etcd put c=$c r$round" rps)"
        p99+=" $(ratio "ours put c=$c r$round" "etcd put c=$c r$round" p99_ms)"
        cpu+=" $(ratio "ours put c=$c r$round" "etcd put c=$c r$round" cpu_us)"
        disk+=" $(ratio "ours put c=$c r$round" "etcd put c=$c r$round" disk_bytes)"
    done
    echo "put c=$c: throughput $(echo "$throughput" | median)x, p99 $(echo "$p99" | median)x" \
        "(medians of $ROUNDS rounds; per round: throughput $(echo $throughput | tr ' ' /), p99 $(echo $p99 | tr ' ' /))"
    echo "    per write: CPU of the three members $(echo "$cpu" | median)x, bytes the disk received $(echo "$disk" | median)x (medians)"
done
echo "stale read vs etcd serializable: $(ratio "ours stale read" "etcd serializable read" rps)x; vs nginx static: $(ratio "ours stale read" "nginx static" rps)x"
echo "default read vs etcd linearizable: $(ratio "ours default read" "etcd linearizable read" rps)x"
