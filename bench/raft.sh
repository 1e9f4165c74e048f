#!/usr/bin/env bash
# Raft write throughput and latency: our 3-server cluster (consul-sim raft-node: TCP transport,
# real WAL with fdatasync, group commit) against a 3-member etcd 3.4 on the same loopback and
# disk, both driven by the same load generator (consul-sim raft-bench): N clients, each writing
# 256-byte values to fresh keys one at a time, a write counted when the leader acknowledged it
# (after a quorum fsynced it). Also measures the disk's fsync rate, the limit of unbatched commits:
# 256-byte writes each followed by fdatasync, appended to a growing file and written over a
# preallocated one (our WAL and etcd's both write into preallocated segments).
#
#   bash bench/raft.sh                 # 1, 16, 64 clients, 5 s each
#   CLIENTS="16" RUN_SECONDS=10 bash bench/raft.sh
#
# Installs etcd-server/etcd-client from Debian when missing (bench only; tests never need etcd).
# Only loopback addresses are used; every process started here is killed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

CLIENTS=${CLIENTS:-"1 16 64"}
RUN_SECONDS=${RUN_SECONDS:-5}
WARMUP_SECONDS=${WARMUP_SECONDS:-1}
VALUE_BYTES=256

if ! command -v etcd >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server etcd-client >/dev/null
fi
swift build -c release --product consul-sim >/dev/null
SIM=.build/release/consul-sim

# Data on the project's disk (not a tmpfs), so fsync costs what it costs.
mkdir -p .build
WORK=$(mktemp -d -p "$PWD/.build" bench-raft.XXXXXX)
PIDS=()
stop_all() {
    for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    PIDS=()
}
trap 'stop_all; rm -rf "$WORK"' EXIT

declare -A OURS ETCD
field() { sed -n "s|.*$1=\([0-9.]*\).*|\1|p"; }

# The build's own writes are still being flushed: let them land before measuring the disk.
sync
sleep 2
echo "== disk (measured again at the end)"
FSYNC=$("$SIM" fsync-rate --dir "$WORK" --seconds 3)
echo "$FSYNC"
FSYNC_RATE=$(echo "$FSYNC" | field "appends+fdatasync/s")
OVERWRITE_RATE=$(echo "$FSYNC" | field "overwrites+fdatasync/s")

echo "== ours: 3 x consul-sim raft-node on 127.0.0.1-3"
PEERS="n1=127.0.0.1:27301,n2=127.0.0.2:27302,n3=127.0.0.3:27303"
for i in 1 2 3; do
    # Consul's default snapshot threshold (16384 entries).
    "$SIM" raft-node --id "n$i" --dir "$WORK/n$i" --bind "127.0.0.$i:2730$i" --client "127.0.0.$i:2740$i" \
        --peers "$PEERS" --snapshot-every 16384 >"$WORK/n$i.out" 2>"$WORK/n$i.log" &
    PIDS+=($!)
done
for i in 1 2 3; do
    for _ in $(seq 1 100); do grep -q ready "$WORK/n$i.out" 2>/dev/null && break; sleep 0.1; done
done
for n in $CLIENTS; do
    line=$("$SIM" raft-bench --target raft --endpoints 127.0.0.1:27401,127.0.0.2:27402,127.0.0.3:27403 \
        --clients "$n" --seconds "$RUN_SECONDS" --warmup "$WARMUP_SECONDS" --value-bytes "$VALUE_BYTES")
    echo "$line"
    OURS[$n]=$line
done
stop_all

echo "== etcd $(etcd --version | sed -n 's/etcd Version: //p'): 3 members on 127.0.0.1-3, v3 HTTP gateway"
CLUSTER="e1=http://127.0.0.1:27601,e2=http://127.0.0.2:27602,e3=http://127.0.0.3:27603"
for i in 1 2 3; do
    etcd --name "e$i" --data-dir "$WORK/e$i" \
        --listen-client-urls "http://127.0.0.$i:2750$i" --advertise-client-urls "http://127.0.0.$i:2750$i" \
        --listen-peer-urls "http://127.0.0.$i:2760$i" --initial-advertise-peer-urls "http://127.0.0.$i:2760$i" \
        --initial-cluster "$CLUSTER" --initial-cluster-state new --initial-cluster-token bench \
        --log-level error >"$WORK/e$i.log" 2>&1 &
    PIDS+=($!)
done
for n in $CLIENTS; do
    line=$("$SIM" raft-bench --target etcd --endpoints 127.0.0.1:27501,127.0.0.2:27502,127.0.0.3:27503 \
        --clients "$n" --seconds "$RUN_SECONDS" --warmup "$WARMUP_SECONDS" --value-bytes "$VALUE_BYTES")
    echo "$line"
    ETCD[$n]=$line
done
stop_all

echo "== disk, again"
"$SIM" fsync-rate --dir "$WORK" --seconds 3

echo "== ratios (ours / etcd; throughput higher is better, p99 lower is better)"
for n in $CLIENTS; do
    ours_rate=$(echo "${OURS[$n]}" | field "commits/s")
    etcd_rate=$(echo "${ETCD[$n]}" | field "commits/s")
    ours_p99=$(echo "${OURS[$n]}" | field p99_ms)
    etcd_p99=$(echo "${ETCD[$n]}" | field p99_ms)
    awk -v n="$n" -v a="$ours_rate" -v b="$etcd_rate" -v c="$ours_p99" -v d="$etcd_p99" -v f="$FSYNC_RATE" -v o="$OVERWRITE_RATE" 'BEGIN {
        printf "clients=%-3s throughput %.2fx (%.0f vs %.0f/s)  p99 %.2fx (%.2f vs %.2f ms)  ours/append-fsync-rate %.2f  ours/overwrite-fsync-rate %.2f\n",
            n, (b > 0 ? a / b : 0), a, b, (d > 0 ? c / d : 0), c, d, (f > 0 ? a / f : 0), (o > 0 ? a / o : 0) }'
done
