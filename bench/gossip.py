#!/usr/bin/env python3
"""Gossip pools side by side: N of our nodes (`gossip-node`, or `consul-sim gossip-node`) and N HashiCorp serf agents,
same timing profile and key, measured the same way in one run.

For each N and each system:
  converge  seconds from issuing the joins (everyone joins node 1) until every node lists N alive;
  detect    seconds from SIGKILL of one node until every other node lists it failed;
  leave     seconds from a graceful leave until every remaining node lists it left;
  rss       resident memory per node (MiB, mean over nodes, after convergence), and pss, the same
            with pages shared between processes (the binary, shared libraries) divided among them;
  cpu       idle CPU per node (% of one core, mean over a quiet window after convergence).

Membership is read the same way for both: serf through its agent RPC (`members`, msgpack over
TCP, live state, not the coalesced event stream), ours through the runner's `summary`/`status`
commands on its standard input. Polling is continuous, so times are accurate to one poll round.
"""
import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time

CHILDREN = []


def cleanup(*_):
    for child in CHILDREN:
        try:
            child.kill()
        except Exception:
            pass
    for child in CHILDREN:
        try:
            child.wait(timeout=5)
        except Exception:
            pass


# --- msgpack, just enough for serf's agent RPC -------------------------------------------------

def pack(obj):
    if obj is None:
        return b"\xc0"
    if obj is True:
        return b"\xc3"
    if obj is False:
        return b"\xc2"
    if isinstance(obj, int):
        if 0 <= obj < 128:
            return bytes([obj])
        if 0 <= obj < 2 ** 32:
            return b"\xce" + obj.to_bytes(4, "big")
        return b"\xcf" + obj.to_bytes(8, "big")
    if isinstance(obj, str):
        raw = obj.encode()
        if len(raw) < 32:
            return bytes([0xA0 | len(raw)]) + raw
        return b"\xda" + len(raw).to_bytes(2, "big") + raw
    if isinstance(obj, (list, tuple)):
        return bytes([0x90 | len(obj)]) + b"".join(pack(item) for item in obj)
    if isinstance(obj, dict):
        return bytes([0x80 | len(obj)]) + b"".join(pack(k) + pack(v) for k, v in obj.items())
    raise TypeError(obj)


class Incomplete(Exception):
    pass


def unpack(buf, pos=0):
    def need(n):
        if pos + n > len(buf):
            raise Incomplete()

    need(1)
    b = buf[pos]
    pos += 1

    def take(n):
        nonlocal pos
        need(n)
        out = buf[pos:pos + n]
        pos += n
        return out

    def uint(n):
        return int.from_bytes(take(n), "big")

    def items(count):
        nonlocal pos
        out = []
        for _ in range(count):
            value, pos = unpack(buf, pos)
            out.append(value)
        return out

    def mapping(count):
        flat = items(2 * count)
        return {(k.decode() if isinstance(k, bytes) else k): v for k, v in zip(flat[::2], flat[1::2])}

    if b < 0x80:
        return b, pos
    if b >= 0xE0:
        return b - 256, pos
    if 0x80 <= b <= 0x8F:
        return mapping(b & 0x0F), pos
    if 0x90 <= b <= 0x9F:
        return items(b & 0x0F), pos
    if 0xA0 <= b <= 0xBF:
        return take(b & 0x1F), pos
    simple = {0xC0: None, 0xC2: False, 0xC3: True}
    if b in simple:
        return simple[b], pos
    if b in (0xC4, 0xD9):
        return take(uint(1)), pos
    if b in (0xC5, 0xDA):
        return take(uint(2)), pos
    if b in (0xC6, 0xDB):
        return take(uint(4)), pos
    if b in (0xCC, 0xCD, 0xCE, 0xCF):
        return uint({0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}[b]), pos
    if b in (0xD0, 0xD1, 0xD2, 0xD3):
        n = {0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8}[b]
        return int.from_bytes(take(n), "big", signed=True), pos
    if b == 0xCA:
        take(4)
        return 0.0, pos
    if b == 0xCB:
        take(8)
        return 0.0, pos
    if b == 0xDC:
        return items(uint(2)), pos
    if b == 0xDD:
        return items(uint(4)), pos
    if b == 0xDE:
        return mapping(uint(2)), pos
    if b == 0xDF:
        return mapping(uint(4)), pos
    if b in (0xD4, 0xD5, 0xD6, 0xD7, 0xD8):
        take(1 + {0xD4: 1, 0xD5: 2, 0xD6: 4, 0xD7: 8, 0xD8: 16}[b])
        return None, pos
    if b in (0xC7, 0xC8, 0xC9):
        size = uint({0xC7: 1, 0xC8: 2, 0xC9: 4}[b])
        take(1 + size)
        return None, pos
    raise ValueError("bad msgpack byte %x" % b)


class SerfRPC:
    def __init__(self, address, timeout=10):
        host, port = address.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.buf = b""
        self.seq = 0
        self.call("handshake", {"Version": 1}, body=False)

    def _read(self):
        while True:
            try:
                value, end = unpack(self.buf)
                self.buf = self.buf[end:]
                return value
            except Incomplete:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("serf RPC closed")
                self.buf += chunk

    def call(self, command, request=None, body=True):
        self.seq += 1
        payload = pack({"Command": command, "Seq": self.seq})
        if request is not None:
            payload += pack(request)
        self.sock.sendall(payload)
        header = self._read()
        if header.get("Error"):
            raise RuntimeError(header["Error"].decode() if isinstance(header["Error"], bytes) else header["Error"])
        return self._read() if body else None

    def statuses(self):
        members = self.call("members")["Members"]
        return {m["Name"].decode(): m["Status"].decode() for m in members}


# --- the two kinds of nodes ----------------------------------------------------------------------

class SerfNode:
    def __init__(self, name, ip, key, serf):
        self.name, self.ip = name, ip
        self.process = subprocess.Popen(
            [serf, "agent", f"-node={name}", f"-bind={ip}:7946", f"-rpc-addr={ip}:7373", f"-encrypt={key}",
             "-profile=lan", "-log-level=err"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        CHILDREN.append(self.process)
        self.rpc = None

    def wait_ready(self, deadline):
        while time.time() < deadline:
            try:
                self.rpc = SerfRPC(f"{self.ip}:7373")
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"serf agent {self.name} did not start")

    def join(self, address):
        self.rpc.call("join", {"Existing": [address], "Replay": False})

    def statuses(self):
        return self.rpc.statuses()

    def alive_count(self):
        return sum(1 for s in self.statuses().values() if s == "alive")

    def status_of(self, name):
        return self.statuses().get(name, "none")

    def leave(self):
        threading.Thread(target=lambda: self._leave(), daemon=True).start()

    def _leave(self):
        try:
            SerfRPC(f"{self.ip}:7373").call("leave", body=False)
        except Exception:
            pass


class OurNode:
    def __init__(self, name, ip, key, runner):
        self.name, self.ip = name, ip
        # The lean `gossip-node` executable takes the options directly; `consul-sim` needs its
        # `gossip-node` subcommand first (same command, same options).
        command = [runner] if os.path.basename(runner) == "gossip-node" else [runner, "gossip-node"]
        self.process = subprocess.Popen(
            command + ["--name", name, "--bind", f"{ip}:7946", "--encrypt", key, "--profile", "lan",
             "--log-level", "error", "--exit-on-eof"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)
        CHILDREN.append(self.process)
        self.lock = threading.Lock()

    def _ask(self, command, prefixes):
        with self.lock:
            self.process.stdin.write(command + "\n")
            self.process.stdin.flush()
            while True:
                line = self.process.stdout.readline()
                if not line:
                    raise ConnectionError(f"{self.name} exited")
                if line.startswith(prefixes):
                    return line.strip()

    def wait_ready(self, deadline):
        while time.time() < deadline:
            line = self.process.stdout.readline()
            if line.startswith("ready"):
                return
            if not line:
                break
        raise RuntimeError(f"node {self.name} did not start")

    def join(self, address):
        line = self._ask(f"join {address}", ("joined", "join-failed"))
        if not line.startswith("joined"):
            raise RuntimeError(line)

    def alive_count(self):
        fields = dict(f.split("=") for f in self._ask("summary", ("summary",)).split()[1:])
        return int(fields["alive"])

    def status_of(self, name):
        return self._ask(f"status {name}", ("status",)).split()[2]

    def leave(self):
        with self.lock:
            self.process.stdin.write("leave\n")
            self.process.stdin.flush()


# --- measurements ----------------------------------------------------------------------------------

def proc_stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks


def memory_kib(pid):
    """(RSS, PSS) in KiB from smaps_rollup."""
    values = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[0] in ("Rss:", "Pss:"):
                values[parts[0]] = int(parts[1])
    return values.get("Rss:", 0), values.get("Pss:", 0)


def wait_all(nodes, done, limit, start):
    """Polls every node until done(node) holds for all; seconds since `start`, or None past the limit."""
    pending = list(nodes)
    while pending and time.time() - start < limit:
        still = []
        for node in pending:
            try:
                ok = done(node)
            except Exception:
                ok = False
            if not ok:
                still.append(node)
        pending = still
        if pending:
            time.sleep(0.01)
    return None if pending else time.time() - start


def run_pool(kind, n, key, args, base):
    make = (lambda i: SerfNode(f"serf-{i}", f"{base}.{i}", key, args.serf)) if kind == "serf" else \
        (lambda i: OurNode(f"ours-{i}", f"{base}.{i}", key, args.runner))
    nodes = [make(i) for i in range(1, n + 1)]
    deadline = time.time() + 60
    for node in nodes:
        node.wait_ready(deadline)
    seed = f"{nodes[0].ip}:7946"
    errors = []

    def join(node):
        try:
            node.join(seed)
        except Exception as error:
            errors.append(f"{node.name}: {error}")

    start = time.time()
    threads = [threading.Thread(target=join, args=(node,)) for node in nodes[1:]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    converge = wait_all(nodes, lambda node: node.alive_count() >= n, args.limit, start)
    time.sleep(args.settle)
    pids = [node.process.pid for node in nodes]
    before = {pid: proc_stat(pid) for pid in pids}
    time.sleep(args.idle)
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = sum(proc_stat(pid) - before[pid] for pid in pids) / len(pids) / ticks / args.idle * 100
    memory = [memory_kib(pid) for pid in pids]
    rss = sum(m[0] for m in memory) / len(pids) / 1024
    pss = sum(m[1] for m in memory) / len(pids) / 1024

    victim = nodes[-1]
    killed = time.time()
    victim.process.send_signal(signal.SIGKILL)
    others = nodes[:-1]
    detect = wait_all(others, lambda node: node.status_of(victim.name) == "failed", args.limit, killed)

    leaver = nodes[-2]
    rest = nodes[:-2]
    left = time.time()
    leaver.leave()
    leave = wait_all(rest, lambda node: node.status_of(leaver.name) == "left", args.limit, left)

    for node in nodes:
        try:
            node.process.kill()
            node.process.wait(timeout=10)
        except Exception:
            pass
    return converge, detect, leave, rss, pss, cpu, errors


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10,50,100")
    parser.add_argument("--runner", required=True)
    parser.add_argument("--serf", default="/usr/bin/serf")
    parser.add_argument("--key", required=True)
    parser.add_argument("--limit", type=float, default=150, help="seconds to wait for any one measurement")
    parser.add_argument("--settle", type=float, default=5)
    parser.add_argument("--idle", type=float, default=10)
    parser.add_argument("--subnet", default="127.91")
    parser.add_argument("--trials", type=int, default=1, help="runs per size and system (they alternate)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: (cleanup(), sys.exit(1)))
    fmt = lambda v, unit="s": ">%g%s" % (args.limit, unit) if v is None else "%.2f%s" % (v, unit)
    print("%-5s %-6s %11s %11s %11s %10s %10s %9s" % ("N", "system", "converge", "detect", "leave", "RSS/node", "PSS/node", "CPU/node"))
    try:
        for n in [int(s) for s in args.sizes.split(",")]:
            for kind, pool in (("serf", 1), ("ours", 2)) * args.trials:
                converge, detect, leave, rss, pss, cpu, errors = run_pool(kind, n, args.key, args, f"{args.subnet}.{pool}")
                print("%-5d %-6s %11s %11s %11s %7.1fMiB %7.1fMiB %8.2f%%" % (
                    n, kind, fmt(converge), fmt(detect), fmt(leave), rss, pss, cpu), flush=True)
                for error in errors[:3]:
                    print(f"      join error: {error}", flush=True)
                time.sleep(2)
    finally:
        cleanup()


if __name__ == "__main__":
    main()
