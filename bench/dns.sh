#!/usr/bin/env bash
# DNS queries per second: the agent's DNS server beside dnsmasq, same records, same load, one run.
#
# Ours: `consul-bench dns serve`, the real DNSServer (one UDP channel on one event loop) answering
# through the resolver from an in-memory catalog of 20 services x 3 instances on 20 nodes, with
# health filtering, shuffling and name compression done per query as in the agent.
# Anchor: dnsmasq (Debian's dnsmasq-base) serving the same A and SRV records from a hosts file and
# srv-host lines that `consul-bench dns files` writes from the same catalog.
# Load: dnsperf (Debian's dnsperf), 50/50 A/SRV over the 20 service names, each server in turn.
# Usage: bash bench/dns.sh [seconds-per-run] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-10}"
rounds="${2:-2}"

need_apt=()
command -v dnsperf >/dev/null 2>&1 || need_apt+=(dnsperf)
command -v dnsmasq >/dev/null 2>&1 || [ -x /usr/sbin/dnsmasq ] || need_apt+=(dnsmasq-base)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "==> installing ${need_apt[*]}"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
dnsmasq_bin=$(command -v dnsmasq || echo /usr/sbin/dnsmasq)

bash scripts/setup.sh
swift build -c release --product consul-bench >/dev/null
bench=.build/release/consul-bench

work=$(mktemp -d)
chmod 755 "$work"
ours_pid=""
dnsmasq_pid=""
cleanup() {
    [ -n "$ours_pid" ] && kill "$ours_pid" 2>/dev/null || true
    [ -n "$dnsmasq_pid" ] && kill "$dnsmasq_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

"$bench" dns files -dir "$work"

# Ours, on a free port; it exits by itself after the runs (or is killed on exit).
"$bench" dns serve -port 0 -seconds $(( (seconds + 5) * rounds * 2 + 30 )) >"$work/ours.log" 2>&1 &
ours_pid=$!
for _ in $(seq 1 100); do grep -q '^ready port=' "$work/ours.log" && break; sleep 0.1; done
ours_port=$(sed -n 's/^ready port=//p' "$work/ours.log")
[ -n "$ours_port" ] || { cat "$work/ours.log"; echo "our DNS server did not start" >&2; exit 1; }

# dnsmasq on another free loopback port: static records only, no upstream, no cache effects
# (local records are answered from memory either way), TTL 0 as ours.
dnsmasq_port=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$dnsmasq_bin" --keep-in-foreground --port="$dnsmasq_port" --listen-address=127.0.0.1 --bind-interfaces \
    --no-resolv --no-hosts --addn-hosts="$work/hosts" --conf-file="$work/dnsmasq.conf" --local-ttl=0 \
    --user=root --pid-file= --log-facility=/dev/null &
dnsmasq_pid=$!
sleep 0.5

# Same answers from both (sorted, as both shuffle).
for query in "svc3.service.consul A" "svc3.service.consul SRV"; do
    if command -v dig >/dev/null 2>&1; then
        a=$(dig @127.0.0.1 -p "$ours_port" $query +short | sort)
        b=$(dig @127.0.0.1 -p "$dnsmasq_port" $query +short | sort)
        [ "$a" = "$b" ] || { echo "answers differ for $query:"; echo "$a"; echo "--"; echo "$b"; exit 1; }
    fi
done

run() {  # port -> queries per second
    dnsperf -s 127.0.0.1 -p "$1" -d "$work/queries" -l "$seconds" -c 4 -q 256 2>&1 \
        | awk '/Queries per second/ { print $4 }'
}

echo "# $(nproc) cores, load average $(cut -d' ' -f1 /proc/loadavg); dnsperf -c 4 -q 256 for ${seconds}s per run;" \
    "queries: 50/50 A/SRV over 20 services x 3 instances"
printf '%-6s %14s %14s %8s\n' "round" "ours q/s" "dnsmasq q/s" "ratio"
total_ours=0
total_theirs=0
for round in $(seq 1 "$rounds"); do
    # Alternate who goes first, so load that comes and goes on the machine hits both alike.
    if [ $((round % 2)) -eq 1 ]; then
        ours=$(run "$ours_port"); theirs=$(run "$dnsmasq_port")
    else
        theirs=$(run "$dnsmasq_port"); ours=$(run "$ours_port")
    fi
    total_ours=$(awk -v a="$total_ours" -v b="$ours" 'BEGIN { print a + b }')
    total_theirs=$(awk -v a="$total_theirs" -v b="$theirs" 'BEGIN { print a + b }')
    awk -v r="$round" -v o="$ours" -v t="$theirs" 'BEGIN { printf "%-6s %14.0f %14.0f %7.2fx\n", r, o, t, o / t }'
done
awk -v o="$total_ours" -v t="$total_theirs" -v n="$rounds" \
    'BEGIN { printf "%-6s %14.0f %14.0f %7.2fx\n", "mean", o / n, t / n, o / t }'
echo "ratio = ours / dnsmasq (mean row: over all rounds); target >= 1.00x"
