#!/usr/bin/python3
"""Real-client interop checks for a BitTorrent tracker (driven by tests/interop/run.sh).

Runs with Debian's /usr/bin/python3 because it imports python3-libtorrent. It starts the tracker
from the shell command given with --tracker-cmd (and restarts it for the restart checks), runs
libtorrent sessions in-process and aria2c / transmission-daemon as child processes, and prints one
line per check (`PASS name (1.2s)` / `FAIL name (1.2s): reason`) and finally `N passed, M failed`.
Exit status 0 only if no check failed.

Every client is isolated: own directory, own listen port on 127.0.0.1 (or ::1), DHT, local peer
discovery, PEX, UPnP and NAT-PMP off, and each check uses its own private torrent (fresh random
payload, hence fresh info hash) whose only tracker is the one under test. So the tracker is the
only way peers find each other, and download counts of different checks never mix.
"""

import argparse
import base64
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import traceback
import urllib.request

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import libtorrent as lt  # noqa: E402  (python3-libtorrent, Debian's /usr/bin/python3)

import cluster_check  # noqa: E402
import tracker_probe as tp  # noqa: E402

PAYLOAD_BYTES = 4 * 1024 * 1024 + 12345  # a few MiB, deliberately not a multiple of the piece size
PIECE_BYTES = 64 * 1024
DOWNLOAD_TIMEOUT = 90.0  # seconds for one client to complete one download
COUNT_TIMEOUT = 20.0  # seconds for scrape counts to reach the expected values

LOG = None  # the driver's detailed log (a file in the work dir)


def log(msg):
    if LOG:
        LOG.write("%.3f %s\n" % (time.time(), msg))
        LOG.flush()


class CheckFailed(Exception):
    pass


def wait_until(what, timeout, fn, interval=0.2):
    """Poll fn() until it returns a truthy value; raise CheckFailed naming `what` after timeout.
    fn may raise tp.ProbeError/OSError, which counts as 'not yet' (the last one is reported)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            v = fn()
            if v:
                return v
        except (tp.ProbeError, OSError) as e:
            last = e
        if time.monotonic() > deadline:
            raise CheckFailed(
                "timed out after %.0fs waiting for %s%s"
                % (timeout, what, " (last error: %s)" % last if last else "")
            )
        time.sleep(interval)


# ------------------------------------------------------------------------------------- tracker


class Tracker:
    """The tracker under test, started from a shell command; stopped by its PID only."""

    def __init__(self, cmd, workdir, ready_urls):
        self.cmd, self.workdir, self.ready_urls = cmd, workdir, ready_urls
        self.proc = None
        self.log_path = os.path.join(workdir, "tracker.log")
        self.pid_path = os.path.join(workdir, "tracker.pid")
        self.starts = 0

    def start(self, timeout=30.0):
        self.starts += 1
        logf = open(self.log_path, "ab")
        logf.write(b"==== start %d: %s\n" % (self.starts, self.cmd.encode()))
        logf.flush()
        # `exec` makes the PID we hold the tracker's own PID, not a shell's.
        self.proc = subprocess.Popen(
            ["/bin/bash", "-c", "exec " + self.cmd],
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            start_new_session=True,
        )
        logf.close()
        with open(self.pid_path, "w") as f:
            f.write("%d\n" % self.proc.pid)
        log("tracker started pid %d" % self.proc.pid)
        deadline = time.monotonic() + timeout
        http = [u for u in self.ready_urls if not u.startswith("udp://")]
        udp = [u for u in self.ready_urls if u.startswith("udp://")]
        while True:
            if self.proc.poll() is not None:
                raise CheckFailed(
                    "tracker exited with status %s at start (see %s)" % (self.proc.returncode, self.log_path)
                )
            try:
                tp.wait_ready(http, udp, timeout=1.0)
                return
            except tp.ProbeError as e:
                if time.monotonic() > deadline:
                    raise CheckFailed("tracker not ready after %.0fs: %s" % (timeout, e)) from None

    def stop(self, timeout=20.0):
        """SIGTERM by PID, wait; SIGKILL if it does not exit in time. Returns the exit status."""
        if self.proc is None:
            return None
        p, self.proc = self.proc, None
        if p.poll() is None:
            os.kill(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait(5)
                raise CheckFailed("tracker did not exit within %.0fs of SIGTERM (killed)" % timeout) from None
        log("tracker pid %d exited with %s" % (p.pid, p.returncode))
        try:
            os.unlink(self.pid_path)
        except OSError:
            pass
        return p.returncode

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def tail(self, n=30):
        try:
            with open(self.log_path, "rb") as f:
                return b"".join(f.readlines()[-n:]).decode(errors="replace")
        except OSError:
            return ""


# ------------------------------------------------------------------------------------- torrents


class Torrent:
    """A fresh random payload and a private v1 torrent whose only tracker is `tracker_url`."""

    def __init__(self, root, name, tracker_url):
        self.name = name
        self.seed_dir = os.path.join(root, name, "seed")
        os.makedirs(self.seed_dir)
        self.payload_name = "payload-%s.bin" % name
        self.payload_path = os.path.join(self.seed_dir, self.payload_name)
        data = os.urandom(PAYLOAD_BYTES)
        self.sha1 = hashlib.sha1(data).hexdigest()
        with open(self.payload_path, "wb") as f:
            f.write(data)
        fs = lt.file_storage()
        lt.add_files(fs, self.payload_path)
        ct = lt.create_torrent(fs, PIECE_BYTES, lt.create_torrent.v1_only)
        ct.add_tracker(tracker_url)
        ct.set_priv(True)
        ct.set_creator("mini-torrust interop suite")
        lt.set_piece_hashes(ct, self.seed_dir)
        self.torrent_bytes = lt.bencode(ct.generate())
        self.torrent_path = os.path.join(root, name, name + ".torrent")
        with open(self.torrent_path, "wb") as f:
            f.write(self.torrent_bytes)
        ti = lt.torrent_info(self.torrent_path)
        self.info_hash = ti.info_hashes().v1.to_bytes()
        self.tracker_url = tracker_url
        log("torrent %s info_hash %s tracker %s" % (name, self.info_hash.hex(), tracker_url))

    def matches(self, path):
        """True if the file at `path` is byte for byte the payload."""
        try:
            if os.path.getsize(path) != PAYLOAD_BYTES:
                return False
            with open(path, "rb") as a, open(self.payload_path, "rb") as b:
                while True:
                    x, y = a.read(1 << 20), b.read(1 << 20)
                    if x != y:
                        return False
                    if not x:
                        return True
        except OSError:
            return False


# ------------------------------------------------------------------------------------- libtorrent


class LtSession:
    """One libtorrent session listening on one loopback address, everything but the tracker off."""

    def __init__(self, name, host, port):
        self.name, self.port = name, port
        listen = "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)
        settings = {
            "listen_interfaces": listen,
            "outgoing_interfaces": "",
            "enable_dht": False,
            "enable_lsd": False,
            "enable_upnp": False,
            "enable_natpmp": False,
            "dht_bootstrap_nodes": "",
            "enable_outgoing_utp": False,
            "enable_incoming_utp": False,
            "allow_multiple_connections_per_ip": True,
            "announce_to_all_trackers": True,
            "announce_to_all_tiers": True,
            "stop_tracker_timeout": 3,
            "tracker_completion_timeout": 15,
            "tracker_receive_timeout": 5,
            "user_agent": "mini-torrust-interop libtorrent/" + lt.__version__,
            "alert_mask": (
                lt.alert.category_t.error_notification
                | lt.alert.category_t.tracker_notification
                | lt.alert.category_t.status_notification
                | lt.alert.category_t.connect_notification
            ),
        }
        # flags=0: no default plugins (so no ut_pex / ut_metadata) and no default features
        # (DHT, LSD, UPnP, NAT-PMP are never started).
        self.ses = lt.session(settings, 0)
        self.handles = []
        self.announces = 0  # tracker announces this session sent (seen as alerts)
        self.replies = 0  # tracker replies or errors it got
        deadline = time.monotonic() + 10
        while not self.ses.is_listening() or self.ses.listen_port() != port:
            self.drain()
            if time.monotonic() > deadline:
                raise CheckFailed("libtorrent %s could not listen on %s" % (name, listen))
            time.sleep(0.05)

    def drain(self):
        for a in self.ses.pop_alerts():
            if isinstance(a, lt.tracker_announce_alert):
                self.announces += 1
            elif isinstance(a, (lt.tracker_reply_alert, lt.tracker_error_alert)):
                self.replies += 1
            log("lt[%s] %s: %s" % (self.name, type(a).__name__, a.message()))

    def add(self, torrent, save_path):
        atp = lt.add_torrent_params()
        atp.ti = lt.torrent_info(torrent.torrent_path)
        atp.save_path = save_path
        atp.flags = atp.flags & ~lt.torrent_flags.paused & ~lt.torrent_flags.auto_managed
        h = self.ses.add_torrent(atp)
        self.handles.append(h)
        return h

    def wait_seeding(self, h, timeout, what):
        def done():
            self.drain()
            s = h.status()
            if s.errc.value():
                raise CheckFailed("libtorrent %s: torrent error %s" % (self.name, s.errc.message()))
            return s.is_seeding

        try:
            wait_until(what, timeout, done)
        except CheckFailed as e:
            s = h.status()
            raise CheckFailed(
                "%s (state %s, progress %.0f%%, peers %d, tracker says: %s)"
                % (e, s.state, 100 * s.progress, s.num_peers, self.tracker_state(h))
            ) from None

    def tracker_state(self, h):
        out = []
        for t in h.trackers():
            errs = []
            for ep in t.get("endpoints", []):
                for ih in ep.get("info_hashes", []):
                    if ih.get("message") or ih.get("last_error", {}).get("value"):
                        errs.append("%s %s" % (ih.get("message", ""), ih.get("last_error", {})))
            out.append("%s%s" % (t["url"], (" [" + "; ".join(errs) + "]") if errs else ""))
        return ", ".join(out) or "no trackers"

    def remove(self, h):
        self.ses.remove_torrent(h)
        self.handles.remove(h)

    def close(self, timeout=3.0):
        """Remove the torrents (each sends event=stopped) and wait, bounded, for the tracker's
        answers before dropping the session: libtorrent drops UDP `stopped` announces still
        pending when a session is torn down, which would leave our peers in the swarm."""
        self.drain()
        want = self.replies + len(self.handles)
        for h in list(self.handles):
            try:
                self.ses.remove_torrent(h)
            except RuntimeError:
                pass
        self.handles = []
        deadline = time.monotonic() + timeout
        while self.replies < want and time.monotonic() < deadline:
            time.sleep(0.05)
            self.drain()
        self.ses = None


# ------------------------------------------------------------------------------------- suite


class Suite:
    def __init__(self, args):
        self.args = args
        self.work = args.work
        self.results = []
        self.children = []  # Popen objects of clients we started
        self.tracker = Tracker(
            args.tracker_cmd,
            self.work,
            [args.http4, args.udp4] + ([args.http6, args.udp6] if args.wait_v6 else []),
        )
        self.sessions = []
        self.versions = {}

    # -- bookkeeping

    def run_check(self, name, fn, *a):
        t0 = time.monotonic()
        try:
            fn(*a)
            ok, why = True, ""
        except CheckFailed as e:
            ok, why = False, str(e)
        except Exception as e:  # noqa: BLE001 - any surprise is this check's failure, not the suite's end
            ok, why = False, "%s: %s" % (type(e).__name__, e)
            log(traceback.format_exc())
        dt = time.monotonic() - t0
        self.results.append((name, ok, dt, why))
        line = "%s %s (%.1fs)%s" % ("PASS" if ok else "FAIL", name, dt, (": " + why) if why else "")
        print(line, flush=True)
        log(line)
        return ok

    def ports(self, n):
        return tp.free_ports(n)

    def new_session(self, name, host="127.0.0.1"):
        s = LtSession(name, host, self.ports(1)[0])
        self.sessions.append(s)
        return s

    def close_sessions(self):
        for s in self.sessions:
            try:
                s.close()
            except Exception as e:  # noqa: BLE001 - cleanup must go on
                log("closing session %s: %s" % (s.name, e))
        self.sessions = []

    def spawn(self, name, argv, cwd):
        logf = open(os.path.join(cwd, name + ".out"), "ab")
        p = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
        )
        logf.close()
        log("spawned %s pid %d: %s" % (name, p.pid, " ".join(argv)))
        with open(os.path.join(self.work, "children.pids"), "a") as f:  # for run.sh's last-resort cleanup
            f.write("%d\n" % p.pid)
        self.children.append(p)
        return p

    def reap(self, p, timeout=10.0):
        """Wait for a child we started; SIGTERM then SIGKILL it by PID if it does not exit."""
        for sig, wait in ((None, timeout), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            if p.poll() is not None:
                break
            if sig is not None:
                try:
                    os.kill(p.pid, sig)
                except ProcessLookupError:
                    break
            try:
                p.wait(wait)
            except subprocess.TimeoutExpired:
                pass
        if p in self.children:
            self.children.remove(p)

    def cleanup(self):
        self.close_sessions()
        for p in list(self.children):
            self.reap(p, timeout=0.1)

    def torrent(self, name, url):
        return Torrent(self.work, name, url)

    # -- counts

    def expect_counts(self, url, info_hash, want, what):
        """Poll the tracker's scrape (over url's protocol) until it equals `want`."""
        seen = {}

        def ok():
            seen["last"] = tp.scrape(url, info_hash)
            return seen["last"] == want

        try:
            wait_until(what, COUNT_TIMEOUT, ok, interval=0.3)
        except CheckFailed:
            raise CheckFailed(
                "%s: scrape %s says %s, expected %s"
                % (what, "UDP" if url.startswith("udp") else "HTTP", seen.get("last"), want)
            ) from None

    def expect_listed(self, url, torrent, port, what):
        """A probe leecher announces (and then stops): the tracker must hand it 127.0.0.1:port."""
        probe_id = tp.random_peer_id()
        peers, _ = tp.announce(url, torrent.info_hash, probe_id, 9, left=1, event="started", numwant=50)
        tp.announce(url, torrent.info_hash, probe_id, 9, left=1, event="stopped")
        if ("127.0.0.1", port) not in peers:
            raise CheckFailed(
                "%s: a leecher's announce got peers %s, expected them to include 127.0.0.1:%d"
                % (what, peers, port)
            )

    def start_seeder(self, torrent, host="127.0.0.1"):
        """A libtorrent seeder for `torrent`, waited for until the tracker counts it as a seeder."""
        s = self.new_session("seed-" + torrent.name, host)
        h = s.add(torrent, torrent.seed_dir)
        s.wait_seeding(h, 30, "the seeder to check its files")
        self.expect_counts(
            torrent.tracker_url,
            torrent.info_hash,
            {"complete": 1, "downloaded": 0, "incomplete": 0},
            "the seeder's announce",
        )
        return s, h

    # -- check 1 + 4: libtorrent

    def check_libtorrent(self, proto, url):
        state = {}

        def download():
            t = self.torrent("lt-" + proto, url)
            state["t"] = t
            seeder, _ = self.start_seeder(t)
            leech = self.new_session("leech-" + t.name)
            d = os.path.join(self.work, t.name, "leech")
            os.makedirs(d)
            h = leech.add(t, d)
            state.update(leech=leech, h=h)
            leech.wait_seeding(h, DOWNLOAD_TIMEOUT, "the libtorrent leecher to complete")
            wait_until(
                "the downloaded file to equal the payload",
                10,
                lambda: t.matches(os.path.join(d, t.payload_name)),
            )

        def counts():
            if "h" not in state:
                raise CheckFailed("no download to count")
            t = state["t"]
            self.expect_counts(
                url, t.info_hash, {"complete": 2, "downloaded": 1, "incomplete": 0}, "after the download"
            )
            self.expect_listed(url, t, state["leech"].port, "the finished libtorrent client")
            state["leech"].remove(state["h"])  # libtorrent sends event=stopped
            self.expect_counts(
                url,
                t.info_hash,
                {"complete": 1, "downloaded": 1, "incomplete": 0},
                "after the leecher was removed (event=stopped)",
            )

        self.run_check("libtorrent-" + proto, download)
        self.run_check("libtorrent-%s-counts" % proto, counts)
        self.close_sessions()

    # -- check 2 + 4: aria2c

    def aria2_rpc(self, port, secret, method, *params):
        body = json.dumps(
            {"jsonrpc": "2.0", "id": "1", "method": method, "params": ["token:" + secret] + list(params)}
        ).encode()
        req = urllib.request.Request(
            "http://127.0.0.1:%d/jsonrpc" % port, data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=5) as r:
            reply = json.loads(r.read())
        if "error" in reply:
            raise tp.ProbeError("aria2 rpc %s: %s" % (method, reply["error"]))
        return reply["result"]

    def check_aria2(self, proto, url):
        state = {}

        def download():
            t = self.torrent("aria2-" + proto, url)
            state["t"] = t
            self.start_seeder(t)
            d = os.path.join(self.work, t.name, "aria2")
            os.makedirs(d)
            listen, rpc, dht = self.ports(3)
            secret = base64.b16encode(os.urandom(8)).decode()
            if proto == "udp":
                # aria2 speaks UDP trackers only through its DHT socket: "--enable-dht ... also
                # enables UDP tracker support. If a private flag is set in a torrent, aria2 doesn't
                # use DHT for that download". The torrent is private, the routing table starts
                # empty (own file, no entry point), so no DHT traffic happens for it.
                dht_args = [
                    "--enable-dht=true",
                    "--dht-listen-port=%d" % dht,
                    "--dht-file-path=" + os.path.join(d, "dht.dat"),
                ]
            else:
                dht_args = ["--enable-dht=false"]
            argv = [
                "aria2c",
                "--no-conf",
                "--dir=" + d,
                "--log=" + os.path.join(d, "aria2.log"),
                "--log-level=info",
                "--console-log-level=warn",
                "--enable-rpc=true",
                "--rpc-listen-all=false",
                "--rpc-listen-port=%d" % rpc,
                "--rpc-secret=" + secret,
                *dht_args,
                "--enable-dht6=false",
                "--bt-enable-lpd=false",
                "--enable-peer-exchange=false",
                "--disable-ipv6=true",
                "--listen-port=%d" % listen,
                "--seed-ratio=0.0",  # keep seeding until removed, so the counts can be checked
                "--file-allocation=none",
                "--bt-tracker-connect-timeout=10",
                "--bt-tracker-timeout=10",
                "--follow-torrent=false",
                "--auto-save-interval=0",
                "--bt-save-metadata=false",
                "--bt-require-crypto=false",
                t.torrent_path,
            ]
            p = self.spawn("aria2c", argv, d)
            state.update(p=p, rpc=rpc, secret=secret, port=listen)

            def seeding():
                if p.poll() is not None:
                    raise CheckFailed("aria2c exited with status %s" % p.returncode)
                active = self.aria2_rpc(
                    rpc,
                    secret,
                    "aria2.tellActive",
                    [
                        "gid",
                        "status",
                        "completedLength",
                        "totalLength",
                        "seeder",
                        "numSeeders",
                        "connections",
                    ],
                )
                state["last"] = active
                for a in active:
                    if a.get("seeder") == "true" and a["completedLength"] == a["totalLength"]:
                        state["gid"] = a["gid"]
                        return True
                return False

            try:
                wait_until("aria2c to complete", DOWNLOAD_TIMEOUT, seeding, interval=0.5)
            except CheckFailed as e:
                raise CheckFailed("%s; aria2 status %s" % (e, state.get("last"))) from None
            wait_until(
                "the downloaded file to equal the payload",
                10,
                lambda: t.matches(os.path.join(d, t.payload_name)),
            )

        def counts():
            if "gid" not in state:
                raise CheckFailed("no download to count")
            t = state["t"]
            self.expect_counts(
                url, t.info_hash, {"complete": 2, "downloaded": 1, "incomplete": 0}, "after the download"
            )
            self.expect_listed(url, t, state["port"], "the finished aria2 client")
            self.aria2_rpc(state["rpc"], state["secret"], "aria2.remove", state["gid"])  # sends event=stopped
            self.expect_counts(
                url,
                t.info_hash,
                {"complete": 1, "downloaded": 1, "incomplete": 0},
                "after aria2 removed the download (event=stopped)",
            )

        try:
            self.run_check("aria2-" + proto, download)
            self.run_check("aria2-%s-counts" % proto, counts)
        finally:
            if "p" in state:
                try:
                    self.aria2_rpc(state["rpc"], state["secret"], "aria2.shutdown")
                except (tp.ProbeError, OSError):
                    pass
                self.reap(state["p"])
            self.close_sessions()

    # -- check 3 + 4: Transmission

    def tr_remote(self, rpc, *args, timeout=20):
        r = subprocess.run(
            ["transmission-remote", "127.0.0.1:%d" % rpc] + list(args),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
        )
        out = (r.stdout + r.stderr).decode(errors="replace")
        log("transmission-remote %s -> %d: %s" % (" ".join(args), r.returncode, out.strip()[:2000]))
        if r.returncode != 0:
            raise tp.ProbeError(
                "transmission-remote %s failed (%d): %s" % (" ".join(args), r.returncode, out.strip()[:300])
            )
        return out

    def check_transmission(self, proto, url):
        state = {}

        def download():
            t = self.torrent("tr-" + proto, url)
            state["t"] = t
            seeder, seed_h = self.start_seeder(t)
            base = os.path.join(self.work, t.name, "transmission")
            conf, d = os.path.join(base, "config"), os.path.join(base, "download")
            os.makedirs(conf)
            os.makedirs(d)
            peer, rpc = self.ports(2)
            settings = {
                "dht-enabled": False,
                "lpd-enabled": False,
                "pex-enabled": False,
                "port-forwarding-enabled": False,
                "utp-enabled": False,
                "blocklist-enabled": False,
                "peer-port": peer,
                "peer-port-random-on-start": False,
                "bind-address-ipv4": "127.0.0.1",
                "bind-address-ipv6": "::1",
                "rpc-enabled": True,
                "rpc-bind-address": "127.0.0.1",
                "rpc-port": rpc,
                "rpc-authentication-required": False,
                "rpc-whitelist-enabled": True,
                "rpc-whitelist": "127.0.0.1",
                "rpc-host-whitelist-enabled": False,
                "download-dir": d,
                "incomplete-dir-enabled": False,
                "watch-dir-enabled": False,
                "start-added-torrents": True,
                "ratio-limit-enabled": False,
                "idle-seeding-limit-enabled": False,
                "speed-limit-down-enabled": False,
                "speed-limit-up-enabled": False,
                "alt-speed-enabled": False,
                "encryption": 1,
                "message-level": 3,
                "cache-size-mb": 4,
                "umask": 18,
            }
            with open(os.path.join(conf, "settings.json"), "w") as f:
                json.dump(settings, f, indent=1)
            p = self.spawn(
                "transmission-daemon",
                [
                    "transmission-daemon",
                    "--foreground",
                    "--config-dir",
                    conf,
                    "--logfile",
                    os.path.join(base, "transmission.log"),
                ],
                base,
            )
            state.update(p=p, rpc=rpc, port=peer)

            def rpc_up():
                if p.poll() is not None:
                    raise CheckFailed("transmission-daemon exited with status %s" % p.returncode)
                return self.tr_remote(rpc, "--session-info", timeout=5)

            wait_until("transmission-daemon's RPC", 20, rpc_up)
            added = self.tr_remote(rpc, "--add", t.torrent_path)
            if "success" not in added:
                raise CheckFailed("transmission-remote --add: %s" % added.strip())
            ih = t.info_hash.hex()
            # Transmission 3.00 drops loopback addresses from tracker peer lists (it treats 127/8
            # as "martian"), so on loopback it cannot dial the seeder it was told about. Once the
            # tracker has counted Transmission as a leecher, the seeder announces again: its reply
            # from the tracker lists Transmission, and the seeder dials in. The tracker is still
            # the only way the two find each other.
            self.expect_counts(
                url,
                t.info_hash,
                {"complete": 1, "downloaded": 0, "incomplete": 1},
                "Transmission's started announce",
            )
            seed_h.force_reannounce(0, -1, lt.reannounce_flags_t.ignore_min_interval)

            def seeding():
                if p.poll() is not None:
                    raise CheckFailed("transmission-daemon exited with status %s" % p.returncode)
                seeder.drain()
                info = self.tr_remote(rpc, "-t", ih, "--info", timeout=5)
                state["last"] = " ".join(
                    line.strip()
                    for line in info.splitlines()
                    if line.strip().startswith(("State:", "Percent Done:", "Error:", "Peers:"))
                )
                return "Percent Done: 100%" in info

            try:
                wait_until("Transmission to complete", DOWNLOAD_TIMEOUT, seeding, interval=0.5)
            except CheckFailed as e:
                raise CheckFailed("%s; transmission says: %s" % (e, state.get("last"))) from None
            wait_until(
                "the downloaded file to equal the payload",
                15,
                lambda: t.matches(os.path.join(d, t.payload_name)),
            )
            state["done"] = ih

        def counts():
            if "done" not in state:
                raise CheckFailed("no download to count")
            t = state["t"]
            self.expect_counts(
                url, t.info_hash, {"complete": 2, "downloaded": 1, "incomplete": 0}, "after the download"
            )
            self.expect_listed(url, t, state["port"], "the finished Transmission client")
            self.tr_remote(state["rpc"], "-t", state["done"], "--remove")  # sends event=stopped
            self.expect_counts(
                url,
                t.info_hash,
                {"complete": 1, "downloaded": 1, "incomplete": 0},
                "after Transmission removed the torrent (event=stopped)",
            )

        try:
            self.run_check("transmission-" + proto, download)
            self.run_check("transmission-%s-counts" % proto, counts)
        finally:
            if "p" in state:
                try:
                    self.tr_remote(state["rpc"], "--exit", timeout=5)
                except (tp.ProbeError, OSError, subprocess.SubprocessError):
                    pass
                self.reap(state["p"])
            self.close_sessions()

    # -- check 5: IPv6 with libtorrent

    def check_ipv6(self, proto, url):
        def run():
            t = self.torrent("v6-" + proto, url)
            seeder, _ = self.start_seeder(t, host="::1")
            leech = self.new_session("leech-" + t.name, host="::1")
            d = os.path.join(self.work, t.name, "leech")
            os.makedirs(d)
            h = leech.add(t, d)
            leech.wait_seeding(h, DOWNLOAD_TIMEOUT, "the libtorrent leecher on ::1 to complete")
            wait_until(
                "the downloaded file to equal the payload",
                10,
                lambda: t.matches(os.path.join(d, t.payload_name)),
            )
            self.expect_counts(
                url, t.info_hash, {"complete": 2, "downloaded": 1, "incomplete": 0}, "after the IPv6 download"
            )
            # Our own look at the wire format: the two libtorrent peers must come back as IPv6
            # entries (`peers6` over HTTP, 18-byte entries over UDP) and never as IPv4 ones.
            want = {("::1", seeder.port), ("::1", leech.port)}
            probe_id = tp.random_peer_id()
            if proto == "http":
                r = tp.http_announce(url, t.info_hash, probe_id, 9, left=1, event="started")
                got6, got4 = set(r["peers6"]), r["peers"]
                tp.http_announce(url, t.info_hash, probe_id, 9, left=1, event="stopped")
                if got4:
                    raise CheckFailed(
                        "IPv6 announce in a swarm of IPv6 peers only got IPv4 `peers` %s" % got4
                    )
                if not want <= got6:
                    raise CheckFailed(
                        "`peers6` is %s, expected it to hold %s (raw reply keys %s)"
                        % (sorted(got6), sorted(want), sorted(r["raw"]))
                    )
            else:
                with tp.UdpTracker(url) as u:
                    r = u.announce(t.info_hash, probe_id, 9, left=1, event="started")
                    u.announce(t.info_hash, probe_id, 9, left=1, event="stopped")
                body = len(r["raw"]) - 20
                if body % 18:
                    raise CheckFailed(
                        "UDP announce over IPv6: %d peer bytes, not a multiple of 18 (%s)"
                        % (body, r["raw"].hex())
                    )
                if not want <= set(r["peers"]):
                    raise CheckFailed(
                        "UDP IPv6 peers are %s, expected them to hold %s" % (sorted(r["peers"]), sorted(want))
                    )

        try:
            self.run_check("libtorrent-ipv6-" + proto, run)
        finally:
            self.close_sessions()

    # -- check 6: restart in the middle of a swarm

    def check_restart(self):
        """Before: per protocol a swarm of a libtorrent seeder and a libtorrent client that finished
        its download (downloaded = 1), and a UDP client holding a connection id. Then SIGTERM, start
        again (from the snapshot). After: the counts are still there, a newcomer is handed the old
        peers and downloads from them although none of them announced since, and the old
        connection id still works."""
        state = {"swarms": {}}
        urls = {"http": self.args.http4, "udp": self.args.udp4}

        def before():
            for proto, url in urls.items():
                t = self.torrent("restart-" + proto, url)
                seeder, _ = self.start_seeder(t)
                old = self.new_session("old-leech-" + t.name)
                d = os.path.join(self.work, t.name, "old-leech")
                os.makedirs(d)
                h = old.add(t, d)
                old.wait_seeding(h, DOWNLOAD_TIMEOUT, "the pre-restart leecher to complete")
                self.expect_counts(
                    url,
                    t.info_hash,
                    {"complete": 2, "downloaded": 1, "incomplete": 0},
                    "the swarm before the restart",
                )
                state["swarms"][proto] = (t, [seeder, old])
            # A UDP client that connected before the restart ...
            u = tp.UdpTracker(self.args.udp4)
            state["udp"] = u
            state["cid"] = u.connect()
            log("restart: connection id before the restart %016x" % state["cid"])
            for _, sessions in state["swarms"].values():
                for s in sessions:
                    s.drain()
                    s.announces_before_restart = s.announces
            code = self.tracker.stop()
            self.tracker.start()
            if code != 0:
                raise CheckFailed("tracker exited with status %s on SIGTERM, expected 0" % code)

        def no_reannounce(sessions):
            for s in sessions:
                s.drain()
                if s.announces != getattr(s, "announces_before_restart", s.announces):
                    raise CheckFailed(
                        "libtorrent %s announced again after the restart, so the check proves nothing"
                        % s.name
                    )

        def after(proto):
            if not self.tracker.alive():
                raise CheckFailed("the tracker is not running after the restart")
            t, sessions = state["swarms"][proto]
            # Nobody announced since the restart (their interval is the tracker's, many minutes):
            # all the tracker knows about them comes from the snapshot.
            self.expect_counts(
                t.tracker_url,
                t.info_hash,
                {"complete": 2, "downloaded": 1, "incomplete": 0},
                "the pre-restart swarm in the scrape after the restart",
            )
            for s in sessions:
                self.expect_listed(
                    t.tracker_url, t, s.port, "after the restart, pre-restart peer %s" % s.name
                )
            new = self.new_session("new-leech-" + t.name)
            d = os.path.join(self.work, t.name, "new-leech")
            os.makedirs(d)
            h = new.add(t, d)
            new.wait_seeding(h, DOWNLOAD_TIMEOUT, "a leecher that joined after the restart to complete")
            wait_until(
                "the downloaded file to equal the payload",
                10,
                lambda: t.matches(os.path.join(d, t.payload_name)),
            )
            self.expect_counts(
                t.tracker_url,
                t.info_hash,
                {"complete": 3, "downloaded": 2, "incomplete": 0},
                "after the post-restart download",
            )
            no_reannounce(sessions)

        def connection_id():
            if not self.tracker.alive():
                raise CheckFailed("the tracker is not running after the restart")
            t, sessions = state["swarms"]["udp"]
            u = state["udp"]
            probe_id = tp.random_peer_id()
            try:
                r = u.announce(t.info_hash, probe_id, 9, left=1, event="started", connection_id=state["cid"])
                u.announce(t.info_hash, probe_id, 9, left=1, event="stopped", connection_id=state["cid"])
            except tp.ProbeError as e:
                raise CheckFailed(
                    "announce with the pre-restart connection id %016x: %s" % (state["cid"], e)
                ) from None
            want = {("127.0.0.1", s.port) for s in sessions}
            if not want <= set(r["peers"]):
                raise CheckFailed(
                    "announce with the old connection id got peers %s, expected %s"
                    % (r["peers"], sorted(want))
                )
            try:
                u.scrape([t.info_hash], connection_id=state["cid"])
            except tp.ProbeError as e:
                raise CheckFailed(
                    "scrape with the pre-restart connection id %016x: %s" % (state["cid"], e)
                ) from None

        try:
            self.run_check("restart-sigterm-and-start", before)
            self.run_check("restart-udp-connection-id", connection_id)
            self.run_check("restart-http", after, "http")
            self.run_check("restart-udp", after, "udp")
        finally:
            if "udp" in state:
                state["udp"].close()
            self.close_sessions()

    # -- the whole suite

    def client_versions(self):
        v = {"libtorrent": lt.__version__}
        for name, argv in (
            ("aria2", ["aria2c", "--version"]),
            ("transmission-daemon", ["transmission-daemon", "--version"]),
        ):
            try:
                r = subprocess.run(argv, capture_output=True, timeout=10)
                v[name] = (r.stdout + r.stderr).decode(errors="replace").splitlines()[0].strip()
            except (OSError, subprocess.SubprocessError, IndexError) as e:
                v[name] = "unknown (%s)" % e
        return v

    def run(self):
        self.versions = self.client_versions()
        print(
            "clients: "
            + "; ".join(
                "%s" % v if k != "libtorrent" else "libtorrent %s" % v for k, v in self.versions.items()
            ),
            flush=True,
        )
        only = set(self.args.only.split(",")) if self.args.only else None

        def want(group):
            return only is None or group in only

        started = self.run_check("tracker-start", self.tracker.start)
        if started:
            protos = (("http", self.args.http4), ("udp", self.args.udp4))
            for proto, url in protos:
                if want("libtorrent"):
                    self.check_libtorrent(proto, url)
            for proto, url in protos:
                if want("aria2"):
                    self.check_aria2(proto, url)
            for proto, url in protos:
                if want("transmission"):
                    self.check_transmission(proto, url)
            if want("ipv6"):
                self.check_ipv6("http", self.args.http6)
                self.check_ipv6("udp", self.args.udp6)
            if want("restart"):
                self.check_restart()
            if want("cluster") and self.args.redis_port:
                cluster_check.check_cluster(self, sys.modules[__name__])

            def stop():
                code = self.tracker.stop()
                if code != 0:
                    raise CheckFailed("tracker exited with status %s on SIGTERM, expected 0" % code)

            self.run_check("tracker-stop", stop)
        passed = sum(1 for r in self.results if r[1])
        failed = len(self.results) - passed
        if failed:
            tail = self.tracker.tail()
            if tail:
                print(
                    "---- last lines of the tracker log (%s):\n%s----" % (self.tracker.log_path, tail),
                    flush=True,
                )
        if self.args.summary:
            with open(self.args.summary, "w") as f:
                json.dump(
                    {
                        "versions": self.versions,
                        "results": [
                            {"name": n, "ok": o, "seconds": round(s, 1), "reason": w}
                            for n, o, s, w in self.results
                        ],
                    },
                    f,
                    indent=1,
                )
        print("%d passed, %d failed" % (passed, failed), flush=True)
        return 0 if failed == 0 else 1


def main():
    global LOG
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", required=True, help="scratch directory (the caller removes it)")
    ap.add_argument(
        "--tracker-cmd", required=True, help="shell command that runs the tracker in the foreground"
    )
    ap.add_argument("--http4", required=True, help="http://127.0.0.1:PORT/announce")
    ap.add_argument("--udp4", required=True, help="udp://127.0.0.1:PORT/announce")
    ap.add_argument("--http6", required=True, help="http://[::1]:PORT/announce")
    ap.add_argument("--udp6", required=True, help="udp://[::1]:PORT/announce")
    ap.add_argument("--wait-v6", action="store_true", help="also wait for the ::1 listeners at start")
    ap.add_argument(
        "--only",
        default="",
        help="comma list of check groups: libtorrent,aria2,transmission,ipv6,restart,cluster",
    )
    # The cluster group (two nodes sharing swarms through Redis); skipped without --redis-port.
    ap.add_argument("--redis-server", default="redis-server", help="the redis-server program")
    ap.add_argument("--redis-port", type=int, default=0, help="free loopback port for redis-server")
    for node in ("a", "b"):
        ap.add_argument("--node-%s-cmd" % node, default="", help="shell command running node %s" % node)
        ap.add_argument("--node-%s-http" % node, default="", help="node %s's HTTP announce URL" % node)
        ap.add_argument("--node-%s-udp" % node, default="", help="node %s's UDP announce URL" % node)
    ap.add_argument("--summary", default="", help="write results and versions as JSON here")
    args = ap.parse_args()
    LOG = open(os.path.join(args.work, "interop.log"), "a")
    suite = Suite(args)

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        return suite.run()
    finally:
        suite.cleanup()
        try:
            suite.tracker.stop(timeout=10)
        except CheckFailed:
            pass


if __name__ == "__main__":
    sys.exit(main())
