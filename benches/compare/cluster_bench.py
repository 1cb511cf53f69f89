#!/usr/bin/env python3
"""Cluster mode measured: two or three mini-torrust nodes and one private redis-server, on loopback.

  cluster_bench.py udp      [--runs 3]         UDP throughput, memory-only vs cluster mode in one run
                                                (bench.py udp, aquatic's bencher profile), with the
                                                changes written and dropped and Redis's own CPU
  cluster_bench.py steady   [--rate 20000]     the same steady announce load at a memory-only and a
                                                cluster node, below what Redis takes (nothing dropped):
                                                tracker CPU per announce, Redis CPU per change
  cluster_bench.py converge [--rate 20000]     A->B convergence p50/p99 while A carries a steady
                                                announce load (fresh peers, --torrents swarms)
  cluster_bench.py join     [--peers 1000000 --torrents 100000]
                                                fill node A, then memory per peer on A and in Redis,
                                                and how long a node started empty takes to serve it all

Run from the project root after `cargo build --release` (`--binary` to use another build), with
redis-server on PATH and the bench tools installed (setup.sh). Pinned like bench.py: the nodes on
CPU 1; Redis, the load and the probe on CPU 0 ("Redis on the load generator's core"). Every
socket is on 127.0.0.1; every wait has a time limit. Logs and node configs go to
$BENCH_RUNS/cluster-<phase>-<timestamp>/.
"""
import argparse
import datetime
import json
import os
import random
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (the harness's process control and helpers)

NODE_CPU, LOAD_CPU = "1", "0"


def free_port(kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start_redis(outdir):
    port = free_port()
    d = tempfile.mkdtemp(prefix="redis-", dir=outdir)
    p = bench.start(f"redis-server --port {port} --bind 127.0.0.1 --save '' --appendonly no --dir {d}",
                    LOAD_CPU, os.path.join(outdir, "redis.log"))
    for _ in range(100):
        if redis_cli(port, "ping") == "PONG":
            return p, port
        time.sleep(0.1)
    raise SystemExit("redis-server did not answer within 10 s")


CLUSTER_SET = []  # extra `[cluster]` lines (--set)


def node_config(outdir, name, udp, admin, redis_port):
    path = os.path.join(outdir, f"{name}.toml")
    cluster = ""
    if redis_port:
        cluster = f'[cluster]\nredis_url = "redis://127.0.0.1:{redis_port}"\nnode_name = "{name}"\n'
        cluster += "".join(f"{line}\n" for line in CLUSTER_SET)
    with open(path, "w") as f:
        f.write(f"""[udp]
bind = ["127.0.0.1:{udp}"]
[http]
bind = []
[admin]
bind = ["127.0.0.1:{admin}"]
[snapshot]
enabled = false
[log]
filter = "error"
[limits]
requests_per_sec = 0
ban_threshold = 0
{cluster}""")
    return path


redis_cli = bench.redis_cli
metrics = bench.scrape_metrics


def redis_used_memory(port):
    return float(bench.redis_info(port, "memory").get("used_memory", "nan"))


def peers_of(m):
    return sum(v for k, v in m.items() if k.startswith("mini_torrust_peers{"))


class Node:
    def __init__(self, a, outdir, name, redis_port):
        self.name, self.udp, self.admin = name, free_port(socket.SOCK_DGRAM), free_port()
        self.cfg = node_config(outdir, name, self.udp, self.admin, redis_port)
        self.p = bench.start(f"{a.binary} --config {self.cfg}", NODE_CPU, os.path.join(outdir, f"{name}.log"))
        self.t0 = time.time()

    def ready(self, timeout=120):
        ok, msg = bench.udp_smoke("127.0.0.1", self.udp, timeout, bench.alive_fn(self.p))
        if not ok:
            raise SystemExit(f"node {self.name} not ready: {msg}")
        return time.time() - self.t0

    def rss_kb(self):
        return bench.proc_mem(self.p.pid).get("VmRSS", 0)

    def stop(self):
        bench.stop(self.p)


# ---------------------------------------------------------------- BEP 15 client bits

def connect(sock, addr):
    sock.sendto(struct.pack(">QII", 0x41727101980, 0, 7), addr)
    r = sock.recv(64)
    return struct.unpack(">IIQ", r[:16])[2]


def announce_pkt(cid, ih, port, tid=1, left=100):
    return struct.pack(">QII20s20sQQQIIIiH", cid, 1, tid, ih, b"-CB0001-" + os.urandom(12), 0, left, 0,
                       2, 0, random.getrandbits(32), 50, port)


def load_proc(port, rate, seconds, torrents, seed):
    """A steady announce load at `rate` per second on `torrents` swarms (fresh peers by port)."""
    os.sched_setaffinity(0, {int(LOAD_CPU)})
    rnd = random.Random(seed)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)  # replies are not read
    addr = ("127.0.0.1", port)
    s.settimeout(2)
    cid = connect(s, addr)
    hashes = [rnd.randbytes(20) for _ in range(torrents)]
    pkts = [announce_pkt(cid, rnd.choice(hashes), 1024 + i % 60000, left=rnd.choice((0, 100)))
            for i in range(50_000)]
    s.setblocking(False)
    sent, t0 = 0, time.time()
    tick = 0.002
    while True:
        now = time.time()
        if now - t0 >= seconds:
            break
        due = int((now - t0) * rate) - sent
        for _ in range(max(0, due)):
            try:
                s.sendto(pkts[sent % len(pkts)], addr)
            except BlockingIOError:
                pass
            sent += 1
        time.sleep(tick)
    print(json.dumps({"load_sent": sent, "load_rate": sent / (time.time() - t0)}), flush=True)


# ---------------------------------------------------------------- phases

def phase_udp(a, outdir):
    rp, rport = start_redis(outdir)
    try:
        mem = node_config(outdir, "memory_only", 3010, free_port(), None)
        madm = free_port()
        clu = node_config(outdir, "cluster_on", 3011, madm, rport)
        cmd = [sys.executable, os.path.join(bench.HERE, "bench.py"), "udp", "--runs", str(a.runs),
               "--redis-port", str(rport), "--metrics", f"cluster_on={madm}",
               "--out", os.path.join(outdir, "udp"),
               f"memory_only={a.binary} --config {mem}@3010", f"cluster_on={a.binary} --config {clu}@3011"]
        subprocess.run(cmd, check=True)
        stats = redis_cli(rport, "info", "commandstats")
        with open(os.path.join(outdir, "commandstats.txt"), "w") as f:
            f.write(stats + "\n")
        print("\nRedis INFO commandstats over the whole run (the cluster_on runs; each later run's join "
              "reads what the earlier ones left):\n")
        print("| command | calls | usec per call | usec in all |\n|---|---|---|---|")
        rows = {}
        for line in stats.splitlines():
            if line.startswith("cmdstat_"):
                name, _, rest = line.partition(":")
                kv = dict(x.split("=") for x in rest.split(","))
                rows[name[8:]] = (int(kv["calls"]), float(kv["usec"]))
        for name, (calls, usec) in sorted(rows.items(), key=lambda r: -r[1][1])[:12]:
            print(f"| {name} | {calls:,} | {usec / max(1, calls):.2f} | {usec:,.0f} |")
        script = rows.get("evalsha", (0, 0.0))[1]
        inner = sum(rows.get(c, (0, 0.0))[1] for c in ("zadd", "zrem", "sadd", "scard", "pexpireat", "zremrangebyscore"))
        if script:
            print(f"\nevalsha's time includes the commands the script runs (zadd ... zremrangebyscore: "
                  f"{100 * inner / script:.0f} % of it); the rest, {100 * (script - inner) / script:.0f} %, "
                  f"is Lua: decoding the batch, key names, calls.")
    finally:
        bench.stop(rp)


def phase_converge(a, outdir):
    rp, rport = start_redis(outdir)
    na = nb = None
    try:
        na = Node(a, outdir, "node_a", rport)
        na.ready()
        nb = Node(a, outdir, "node_b", rport)
        nb.ready()
        q = run_load(na.udp, a.rate, a.seconds + 4, a.torrents)
        os.sched_setaffinity(0, {int(LOAD_CPU)})
        time.sleep(2)  # the load reaches its rate
        m0 = metrics(na.admin)
        sa = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sb = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sa.settimeout(2)
        sb.settimeout(2)
        addr_a, addr_b = ("127.0.0.1", na.udp), ("127.0.0.1", nb.udp)
        cid_a, cid_b = connect(sa, addr_a), connect(sb, addr_b)
        lat, lost = [], 0
        end = time.time() + a.seconds
        while time.time() < end:
            ih = os.urandom(20)
            sa.sendto(announce_pkt(cid_a, ih, 7000), addr_a)
            sa.recv(2048)
            t0 = time.perf_counter()
            seen = False
            while time.perf_counter() - t0 < 3.0:
                sb.sendto(struct.pack(">QII", cid_b, 2, 9) + ih, addr_b)
                r = sb.recv(64)
                seeders, done, leechers = struct.unpack(">III", r[8:20])
                if seeders + leechers >= 1:
                    seen = True
                    break
                time.sleep(0.0005)
            if seen:
                lat.append(1000 * (time.perf_counter() - t0))
            else:
                lost += 1
            time.sleep(a.every)
        m1 = metrics(na.admin)
        out, _ = q.communicate(timeout=a.seconds + 60)
        load = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
        lat.sort()
        pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] if lat else float("nan")
        res = {"samples": len(lat), "not_seen_within_3s": lost, "p50_ms": pct(0.5), "p90_ms": pct(0.9),
               "p99_ms": pct(0.99), "max_ms": lat[-1] if lat else None, **load}
        if m0 and m1:
            k = "mini_torrust_cluster_changes_written_total"
            res["written_per_s_at_a"] = (m1[k] - m0[k]) / a.seconds
            res["dropped_at_a"] = sum(m1[x] - m0[x] for x in m1 if x.startswith("mini_torrust_cluster_changes_dropped"))
        print(json.dumps(res, indent=1))
        print(f"\n| load at A (announces/s) | samples | p50 ms | p90 ms | p99 ms | max ms | not seen in 3 s | dropped |\n"
              f"|---|---|---|---|---|---|---|---|\n| {res.get('load_rate', 0):,.0f} | {len(lat)} | {pct(0.5):.1f} | "
              f"{pct(0.9):.1f} | {pct(0.99):.1f} | {res['max_ms'] or 0:.1f} | {lost} | {res.get('dropped_at_a', 0):.0f} |")
    finally:
        for n in (na, nb):
            if n:
                n.stop()
        bench.stop(rp)


def run_load(port, rate, seconds, torrents):
    q = subprocess.Popen([sys.executable, "-c",
                          "import sys; sys.path.insert(0, sys.argv[1]); import cluster_bench as c; "
                          "c.load_proc(int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), 1)",
                          bench.HERE, str(port), str(rate), str(seconds), str(torrents)],
                         stdout=subprocess.PIPE, text=True, start_new_session=True)
    bench._live.append(q)
    return q


def phase_steady(a, outdir):
    """The same steady load (below what Redis takes, so nothing is dropped) at a memory-only
    node and at a cluster node, rounds alternating: tracker CPU per announce, without drops."""
    rp, rport = start_redis(outdir)
    rows = []
    try:
        for rnd in range(1, a.runs + 1):
            for name in (["memory_only", "cluster_on"] if rnd % 2 else ["cluster_on", "memory_only"]):
                n = Node(a, outdir, f"{name}_r{rnd}", rport if name == "cluster_on" else None)
                try:
                    n.ready()
                    time.sleep(1)
                    q = run_load(n.udp, a.rate, a.seconds + 3, a.torrents)
                    time.sleep(2)
                    m0, r0 = metrics(n.admin), bench.redis_cpu(rport)
                    c0, t0 = bench.proc_cpu(n.p.pid), time.time()
                    time.sleep(a.seconds - 1)
                    m1, r1 = metrics(n.admin), bench.redis_cpu(rport)
                    c1, t1 = bench.proc_cpu(n.p.pid), time.time()
                    q.communicate(timeout=60)
                    dt = t1 - t0
                    k = 'mini_torrust_requests_total{protocol="udp",action="announce",outcome="ok"}'
                    ann = (m1[k] - m0[k]) / dt
                    row = {"name": name, "round": rnd, "announces_s": ann, "cpu_pct": 100 * (c1 - c0) / dt}
                    row["announces_per_cpu_s"] = ann / max(1e-9, (c1 - c0) / dt)
                    if name == "cluster_on":
                        w = "mini_torrust_cluster_changes_written_total"
                        row["written_s"] = (m1[w] - m0[w]) / dt
                        row["dropped"] = sum(m1[x] - m0[x] for x in m1 if x.startswith("mini_torrust_cluster_changes_dropped"))
                        row["redis_cpu_pct"] = 100 * (r1 - r0) / dt
                        row["written_per_redis_cpu_s"] = row["written_s"] / max(1e-9, (r1 - r0) / dt)
                    print(json.dumps(row), file=sys.stderr)
                    rows.append(row)
                finally:
                    n.stop()
    finally:
        bench.stop(rp)
    med = lambda n, k: bench.med([r for r in rows if r["name"] == n], k)
    print(f"\nSteady UDP load of {a.rate:,.0f} announces/s, {a.runs} rounds, medians:\n")
    print("| node | announces/s | tracker CPU% | announces per tracker CPU-s | changes written/s | dropped | "
          "Redis CPU% | changes per Redis CPU-s |\n|---|---|---|---|---|---|---|---|")
    for n in ("memory_only", "cluster_on"):
        print(f"| {n} | {bench.fmt(med(n, 'announces_s'))} | {bench.fmt(med(n, 'cpu_pct'), 1)} | "
              f"{bench.fmt(med(n, 'announces_per_cpu_s'))} | {bench.fmt(med(n, 'written_s'))} | "
              f"{bench.fmt(med(n, 'dropped'))} | {bench.fmt(med(n, 'redis_cpu_pct'), 1)} | "
              f"{bench.fmt(med(n, 'written_per_redis_cpu_s'))} |")
    ratio = med("cluster_on", "announces_per_cpu_s") / med("memory_only", "announces_per_cpu_s")
    print(f"\ncluster_on / memory_only, announces per tracker CPU-s: {100 * ratio:.0f} %")


def fill(port, a):
    out = subprocess.run(["taskset", "-c", LOAD_CPU, bench.UDP_FILL, "-a", "127.0.0.1", "-p", str(port),
                          "-n", str(a.peers), "-t", str(a.torrents), "-T", "300"],
                         capture_output=True, text=True, timeout=400)
    print("fill:", out.stdout.strip(), file=sys.stderr)


def phase_join(a, outdir):
    # The same fill at a memory-only node first, for the node's memory per peer beside it.
    m = Node(a, outdir, "memory_only", None)
    try:
        m.ready()
        time.sleep(1)
        m0 = m.rss_kb()
        fill(m.udp, a)
        time.sleep(1)
        mem_only = (m.rss_kb() - m0) * 1024 / a.peers
    finally:
        m.stop()
    rp, rport = start_redis(outdir)
    na = nb = None
    try:
        mem0 = redis_used_memory(rport)
        na = Node(a, outdir, "node_a", rport)
        na.ready()
        time.sleep(1)
        rss0 = na.rss_kb()
        fill(na.udp, a)
        # The writer is done when the changes written stop moving.
        last, still, t0 = -1, 0, time.time()
        while time.time() - t0 < 300:
            m = metrics(na.admin)
            w = m.get("mini_torrust_cluster_changes_written_total", 0)
            still = still + 1 if w == last else 0
            if still >= 4:
                break
            last = w
            time.sleep(0.5)
        m = metrics(na.admin)
        peers_a = peers_of(m)
        dropped = sum(v for k, v in m.items() if k.startswith("mini_torrust_cluster_changes_dropped"))
        rss1 = na.rss_kb()
        mem1 = redis_used_memory(rport)
        keys = redis_cli(rport, "dbsize")
        stream = float(redis_cli(rport, "memory", "usage", "mt:log", "samples", "0") or "nan")
        # The swarm keys themselves: MEMORY USAGE of 300 random keys, scaled to all of them.
        sample = []
        for _ in range(300):
            k = redis_cli(rport, "randomkey")
            if k.startswith("{"):
                sample.append(float(redis_cli(rport, "memory", "usage", k) or "nan"))
        swarm_keys = sum(sample) / max(1, len(sample)) * (int(keys) - 5)
        # A node started empty: time to READY (it joins before it serves) and to the full swarms.
        nb = Node(a, outdir, "node_b", rport)
        t_ready = nb.ready(timeout=300)
        t_full = None
        while time.time() - nb.t0 < 300:
            mb = metrics(nb.admin)
            if mb and peers_of(mb) >= peers_a:
                t_full = time.time() - nb.t0
                break
            time.sleep(0.05)
        mb = metrics(nb.admin) or {}
        res = {"peers": a.peers, "torrents": a.torrents, "peers_at_a": peers_a, "dropped_at_a": dropped,
               "memory_only_rss_growth_bytes_per_peer": mem_only,
               "node_a_rss_growth_bytes_per_peer": (rss1 - rss0) * 1024 / max(1, peers_a),
               "redis_used_memory_bytes_per_peer": (mem1 - mem0) / max(1, peers_a), "redis_keys": keys,
               "redis_stream_bytes_per_peer": stream / max(1, peers_a),
               "redis_swarm_keys_bytes_per_peer": swarm_keys / max(1, peers_a),
               "join_ready_s": t_ready, "join_full_s": t_full, "peers_at_b": peers_of(mb),
               "torrents_at_b": mb.get("mini_torrust_torrents"), "node_b_rss_mb": nb.rss_kb() / 1024,
               "node_b_rss_over_empty_node_bytes_per_peer": (nb.rss_kb() - rss0) * 1024 / max(1, peers_a)}
        print(json.dumps(res, indent=1))
    finally:
        for n in (na, nb):
            if n:
                n.stop()
        bench.stop(rp)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("phase", choices=["udp", "steady", "converge", "join"])
    ap.add_argument("--binary", default="target/release/mini-torrust")
    ap.add_argument("--runs", type=int, default=3, help="udp, steady: rounds")
    ap.add_argument("--rate", type=float, default=20000, help="steady, converge: announces per second")
    ap.add_argument("--seconds", type=float, default=20, help="steady: seconds per run; converge: how long to probe")
    ap.add_argument("--every", type=float, default=0.05, help="converge: pause between probes, s")
    ap.add_argument("--torrents", type=int, default=100000, help="converge load / join fill: swarms")
    ap.add_argument("--peers", type=int, default=1000000, help="join: peers to fill")
    ap.add_argument("--set", action="append", default=[], metavar="OPTION=VALUE",
                    help="an extra [cluster] line for the cluster nodes, e.g. ring_capacity=64 (repeatable)")
    a = ap.parse_args()
    CLUSTER_SET.extend(a.set)
    if not os.access(a.binary, os.X_OK):
        raise SystemExit(f"{a.binary}: not built (cargo build --release)")
    if subprocess.run(["sh", "-c", "command -v redis-server"], capture_output=True).returncode:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    outdir = os.path.join(bench.RUNS, f"cluster-{a.phase}-{stamp}")
    os.makedirs(outdir, exist_ok=True)
    print(f"# output: {outdir}", file=sys.stderr)
    {"udp": phase_udp, "steady": phase_steady, "converge": phase_converge, "join": phase_join}[a.phase](a, outdir)


if __name__ == "__main__":
    main()
