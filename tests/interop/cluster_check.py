"""The `cluster` group of the interop suite (issue 13): two mini-torrust nodes sharing their swarms
through one Redis, real clients on both.

A redis-server (private: free loopback port, scratch directory, no persistence) and two nodes, A
and B, each with its own ports on 127.0.0.2 and `[cluster] redis_url` pointing at it (run.sh
writes their configs and says why 127.0.0.2). A libtorrent seeder announces to A over UDP, a libtorrent leecher to B over HTTP (the
same torrent, its announce URL rewritten: the info hash does not cover it); the leecher can only
have learnt the seeder's address through Redis. The download completes, and a scrape at each node
shows the completion once (downloaded = 1) with both peers as seeders.
"""

import copy
import os
import socket
import time

import libtorrent as lt

import tracker_probe as tp


def redis_ping(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"*1\r\n$4\r\nPING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def retarget(torrent, name, url):
    """The same torrent (same info hash) with `url` as its only tracker, written to its own file."""
    meta = lt.bdecode(torrent.torrent_bytes)
    meta[b"announce"] = url.encode()
    meta.pop(b"announce-list", None)
    t = copy.copy(torrent)
    t.torrent_path = os.path.join(os.path.dirname(torrent.torrent_path), name + ".torrent")
    with open(t.torrent_path, "wb") as f:
        f.write(lt.bencode(meta))
    t.tracker_url = url
    return t


def check_cluster(suite, io_):
    """Runs the group's checks on `suite`; `io_` is the driver module (Tracker, CheckFailed,
    wait_until, DOWNLOAD_TIMEOUT: passed in, as the driver runs as __main__)."""
    a = suite.args
    base = os.path.join(suite.work, "cluster")
    os.makedirs(base, exist_ok=True)
    state = {"nodes": []}

    def start():
        conf = os.path.join(base, "redis.conf")
        with open(conf, "w") as f:
            # set-proc-title no: the command line keeps this file's path, which run.sh's
            # last-resort cleanup looks for.
            f.write(
                "bind 127.0.0.1\nport %d\nsave \"\"\nappendonly no\ndir %s\nset-proc-title no\n"
                % (a.redis_port, base)
            )
        p = suite.spawn("redis-server", [a.redis_server, conf], base)
        state["redis"] = p
        io_.wait_until("redis-server to answer PING", 10, lambda: redis_ping(a.redis_port))
        for name, cmd, urls in (
            ("a", a.node_a_cmd, [a.node_a_http, a.node_a_udp]),
            ("b", a.node_b_cmd, [a.node_b_http, a.node_b_udp]),
        ):
            d = os.path.join(base, name)
            os.makedirs(d, exist_ok=True)
            node = io_.Tracker(cmd, d, urls)
            state["nodes"].append(node)
            node.start()
            with open(os.path.join(suite.work, "children.pids"), "a") as f:
                f.write("%d\n" % node.proc.pid)

    def download():
        if len(state["nodes"]) != 2:
            raise io_.CheckFailed("the nodes did not start")
        t = suite.torrent("cluster", a.node_a_udp)
        state["t"] = t
        # The seeder at A (UDP), counted at A, then at B through Redis.
        suite.start_seeder(t)
        suite.expect_counts(
            a.node_b_http,
            t.info_hash,
            {"complete": 1, "downloaded": 0, "incomplete": 0},
            "A's seeder in B's scrape",
        )
        tb = retarget(t, "cluster-b", a.node_b_http)
        leech = suite.new_session("leech-cluster-b")
        d = os.path.join(suite.work, t.name, "leech")
        os.makedirs(d)
        h = leech.add(tb, d)
        leech.wait_seeding(h, io_.DOWNLOAD_TIMEOUT, "the leecher at B to complete")
        io_.wait_until(
            "the downloaded file to equal the payload",
            10,
            lambda: t.matches(os.path.join(d, t.payload_name)),
        )
        state["done"] = True

    def counts():
        if "done" not in state:
            raise io_.CheckFailed("no download to count")
        t = state["t"]
        want = {"complete": 2, "downloaded": 1, "incomplete": 0}
        for what, url in (("A over UDP", a.node_a_udp), ("B over HTTP", a.node_b_http),
                          ("A over HTTP", a.node_a_http), ("B over UDP", a.node_b_udp)):
            suite.expect_counts(url, t.info_hash, want, "the completion once, at " + what)
        # Still once a moment later (no node counts it again from the other's log).
        time.sleep(1.0)
        for url in (a.node_a_http, a.node_b_http):
            got = tp.scrape(url, t.info_hash)
            if got != want:
                raise io_.CheckFailed("scrape %s says %s a second later, expected %s" % (url, got, want))

    def stop():
        codes = [n.stop() for n in state["nodes"]]
        state["nodes"] = []
        if any(c != 0 for c in codes):
            raise io_.CheckFailed("nodes exited with %s on SIGTERM, expected 0" % codes)

    try:
        if suite.run_check("cluster-start", start):
            suite.run_check("cluster-udp-at-a-http-at-b", download)
            suite.run_check("cluster-counts-once", counts)
            suite.run_check("cluster-stop", stop)
    finally:
        suite.close_sessions()
        for n in state["nodes"]:
            try:
                n.stop()
            except io_.CheckFailed:
                pass
        if "redis" in state:
            suite.reap(state["redis"], timeout=0.1)
