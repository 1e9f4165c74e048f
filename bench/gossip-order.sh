#!/usr/bin/env bash
# Regenerates Sources/gossip-node/gossip-node.order: the functions a gossip node executes, which the
# release link of `gossip-node` places next to each other (lld --symbol-ordering-file), so the code
# a node runs sits in a few dense pages instead of being spread over the whole text. Without it
# the kernel's fault-around maps 64 KiB of text around every function touched: 8.7 MiB resident of
# an 11 MiB text, against 4.7 MiB with the order (bench/README.md, gossip). A stale order is only
# less effective (names it does not find are ignored; new code is placed after the ordered part).
#
# How: a pool of four `gossip-node`s on 127.0.0.196-199 that does what bench/gossip.py does (join,
# status polling, a SIGKILLed member detected failed, a graceful leave, a push/pull), two of them
# (the seed and a joiner) under valgrind's callgrind; every function either executed is listed.
# Needs valgrind (apt-get install valgrind). Usage: bash bench/gossip-order.sh, then rebuild
# (bench/gossip.sh does) so the new order is linked in.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is needed: apt-get install -y valgrind" >&2; exit 1; }
# Built exactly as bench/gossip.sh builds it (see there for the flags).
swift build -c release --product gossip-node --static-swift-stdlib -Xlinker -no-pie \
    -Xswiftc -Xfrontend -Xswiftc -function-sections --scratch-path .build-gossip >/dev/null
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
# valgrind cannot read the DWARF 5 the toolchain emits; the symbol table is all it needs.
strip --strip-debug -o "$work/gossip-node" .build-gossip/release/gossip-node
bin="$work/gossip-node"
key=$(openssl rand -base64 32)
vg=(valgrind --tool=callgrind --dump-instr=no --compress-strings=no --compress-pos=no --demangle=no)
common=(--encrypt "$key" --profile lan --log-level error --exit-on-eof)
for n in a b c d; do mkfifo "$work/in.$n"; done
"${vg[@]}" --callgrind-out-file="$work/cg.a" "$bin" --name a --bind 127.0.0.196:7946 "${common[@]}" <"$work/in.a" >"$work/a.out" 2>/dev/null &
exec 3>"$work/in.a"
sleep 8
"${vg[@]}" --callgrind-out-file="$work/cg.b" "$bin" --name b --bind 127.0.0.197:7946 "${common[@]}" <"$work/in.b" >"$work/b.out" 2>/dev/null &
exec 4>"$work/in.b"
"$bin" --name c --bind 127.0.0.198:7946 --join 127.0.0.196:7946 "${common[@]}" <"$work/in.c" >/dev/null 2>&1 &
victim=$!
exec 5>"$work/in.c"
"$bin" --name d --bind 127.0.0.199:7946 --join 127.0.0.196:7946 "${common[@]}" <"$work/in.d" >/dev/null 2>&1 &
exec 6>"$work/in.d"
sleep 8
echo "join 127.0.0.196:7946" >&4
for _ in $(seq 10); do echo summary >&3; echo summary >&4; echo "status c" >&3; echo "status d" >&4; sleep 1; done
echo members >&3; echo metrics >&4
kill -9 "$victim"
for _ in $(seq 25); do echo "status c" >&3; echo "status c" >&4; echo summary >&3; sleep 1; done
echo leave >&6
for _ in $(seq 8); do echo "status d" >&3; echo "status d" >&4; sleep 1; done
echo leave >&4
sleep 5
exec 3>&- 4>&- 5>&- 6>&-
wait
grep -q "member-failed c" "$work/a.out" || { echo "the profiled pool did not detect the failure; order not written" >&2; exit 1; }
grep -hE "^c?fn=" "$work/cg.a" "$work/cg.b" | sed -E "s/^c?fn=(\([0-9]+\) ?)?//; s/'.*//" | grep -v -e "^0x" -e "^(below main)" | grep . \
    > "$work/executed"
# glibc picks its string functions by CPU (IFUNC) and valgrind's virtual CPU is not this one (no
# EVEX): list every variant of each string function that ran, and the resolvers, which run at start.
nm --defined-only .build-gossip/release/gossip-node | awk '{print $3}' > "$work/symbols"
sed -nE 's/^__([a-z0-9]+(_l)?)_(sse2|ssse3|sse4|avx|evex|erms).*$/\1/p' "$work/executed" | sort -u | while read -r base; do
    grep -E "^__${base}_(sse2|ssse3|sse4|avx|evex|erms)" "$work/symbols" || true
done >> "$work/executed"
grep -E "_ifunc$" "$work/symbols" >> "$work/executed" || true
LC_ALL=C sort -u "$work/executed" > Sources/gossip-node/gossip-node.order
echo "wrote Sources/gossip-node/gossip-node.order: $(wc -l < Sources/gossip-node/gossip-node.order) functions"
