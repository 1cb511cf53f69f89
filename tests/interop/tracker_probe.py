#!/usr/bin/env python3
"""Tiny BitTorrent tracker client for the interop suite (standard library only, any python3).

Speaks just enough of BEP 3 / BEP 23 / BEP 7 (HTTP announce and scrape, compact `peers` and
`peers6`) and BEP 15 (UDP connect, announce, scrape) to check what a tracker answers, independently
of the real clients under test. Every call is bounded by a timeout.

Also usable from the shell:
    tracker_probe.py free-ports N              N ports free for TCP and UDP on 127.0.0.1 and ::1
    tracker_probe.py wait-ready HTTP_URL UDP_URL [UDP_URL...] [--timeout S]
    tracker_probe.py scrape URL INFO_HASH_HEX  print complete/downloaded/incomplete as JSON
"""

import ipaddress
import json
import os
import socket
import struct
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

UDP_PROTOCOL_ID = 0x41727101980
ACTION_CONNECT, ACTION_ANNOUNCE, ACTION_SCRAPE, ACTION_ERROR = 0, 1, 2, 3
EVENTS_UDP = {None: 0, "": 0, "completed": 1, "started": 2, "stopped": 3}


class ProbeError(Exception):
    """A tracker answered something this probe cannot accept (or did not answer in time)."""


# ---------------------------------------------------------------- bencode


def bdecode(data):
    """Decode one bencoded value that must span all of `data`. Dict keys stay bytes."""

    def parse(i):
        c = data[i : i + 1]
        if c == b"i":
            end = data.index(b"e", i)
            return int(data[i + 1 : end]), end + 1
        if c == b"l":
            i += 1
            out = []
            while data[i : i + 1] != b"e":
                v, i = parse(i)
                out.append(v)
            return out, i + 1
        if c == b"d":
            i += 1
            out = {}
            while data[i : i + 1] != b"e":
                k, i = parse(i)
                if not isinstance(k, bytes):
                    raise ProbeError("bencode: dict key is not a string")
                v, i = parse(i)
                out[k] = v
            return out, i + 1
        if c.isdigit():
            colon = data.index(b":", i)
            n = int(data[i:colon])
            start = colon + 1
            if start + n > len(data):
                raise ProbeError("bencode: string runs past the end")
            return data[start : start + n], start + n
        raise ProbeError("bencode: unexpected byte %r at %d" % (c, i))

    try:
        value, end = parse(0)
    except (ValueError, IndexError) as e:
        raise ProbeError("bencode: %s in %r" % (e, data[:200])) from None
    if end != len(data):
        raise ProbeError("bencode: %d trailing bytes in %r" % (len(data) - end, data[:200]))
    return value


# ---------------------------------------------------------------- helpers


def parse_compact(blob, width):
    """Split compact peers (6 bytes IPv4 or 18 bytes IPv6 per entry) into (ip_str, port)."""
    if len(blob) % width:
        raise ProbeError("compact peers of %d bytes is not a multiple of %d" % (len(blob), width))
    out = []
    for off in range(0, len(blob), width):
        ip = ipaddress.ip_address(blob[off : off + width - 2])
        (port,) = struct.unpack("!H", blob[off + width - 2 : off + width])
        out.append((str(ip), port))
    return out


def random_peer_id(prefix=b"-PR0001-"):
    return prefix + os.urandom(20 - len(prefix))


def scrape_url_for(announce_url):
    """BEP 48 convention: replace the last path segment `announce` by `scrape`."""
    parts = urllib.parse.urlsplit(announce_url)
    head, _, last = parts.path.rpartition("/")
    if not last.startswith("announce"):
        raise ProbeError("cannot derive a scrape URL from %s" % announce_url)
    path = head + "/scrape" + last[len("announce") :]
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def _udp_target(url):
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "udp":
        raise ProbeError("not a udp:// URL: %s" % url)
    host = parts.hostname
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return family, (host, parts.port)


# ---------------------------------------------------------------- HTTP


def _http_get(url, timeout):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            status, body = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        raise ProbeError("HTTP %d from %s: %r" % (e.code, url, e.read()[:200])) from None
    except (urllib.error.URLError, OSError) as e:
        raise ProbeError("HTTP request to %s failed: %s" % (url, e)) from None
    if status != 200:
        raise ProbeError("HTTP %d from %s" % (status, url))
    return body


def http_announce(url, info_hash, peer_id, port, left, event=None, numwant=50, timeout=5.0, extra=None):
    """One HTTP announce. Returns a dict: interval, complete, incomplete, peers [(ip, port)],
    peers6 [(ip, port)], raw (the decoded dict). Raises ProbeError on a failure reason."""
    q = [
        ("info_hash", info_hash),
        ("peer_id", peer_id),
        ("port", str(port)),
        ("uploaded", "0"),
        ("downloaded", "0"),
        ("left", str(left)),
        ("compact", "1"),
        ("numwant", str(numwant)),
    ]
    if event:
        q.append(("event", event))
    for k, v in (extra or {}).items():
        q.append((k, v))
    qs = "&".join(
        "%s=%s" % (k, urllib.parse.quote_from_bytes(v if isinstance(v, bytes) else v.encode(), safe=""))
        for k, v in q
    )
    sep = "&" if "?" in url else "?"
    d = bdecode(_http_get(url + sep + qs, timeout))
    if not isinstance(d, dict):
        raise ProbeError("announce reply is not a dict: %r" % (d,))
    if b"failure reason" in d:
        raise ProbeError("failure reason: %r" % d[b"failure reason"])
    peers = d.get(b"peers", b"")
    if isinstance(peers, list):  # non-compact reply (BEP 3 dicts)
        peers4 = [(p[b"ip"].decode(), p[b"port"]) for p in peers]
    else:
        peers4 = parse_compact(peers, 6)
    return {
        "interval": d.get(b"interval"),
        "complete": d.get(b"complete"),
        "incomplete": d.get(b"incomplete"),
        "peers": peers4,
        "peers6": parse_compact(d.get(b"peers6", b""), 18),
        "raw": d,
    }


def http_scrape(announce_url, info_hashes, timeout=5.0):
    """HTTP scrape of several info hashes. Returns {info_hash: {complete, downloaded, incomplete}};
    hashes the tracker does not list are absent."""
    url = scrape_url_for(announce_url)
    qs = "&".join("info_hash=" + urllib.parse.quote_from_bytes(h, safe="") for h in info_hashes)
    sep = "&" if "?" in url else "?"
    d = bdecode(_http_get(url + sep + qs, timeout))
    if b"failure reason" in d:
        raise ProbeError("scrape failure reason: %r" % d[b"failure reason"])
    files = d.get(b"files")
    if not isinstance(files, dict):
        raise ProbeError("scrape reply without a files dict: %r" % (d,))
    out = {}
    for h, v in files.items():
        out[h] = {k: v.get(k.encode()) for k in ("complete", "downloaded", "incomplete")}
    return out


# ---------------------------------------------------------------- UDP (BEP 15)


class UdpTracker:
    """One UDP socket talking to one tracker address. Keeps the last connection id."""

    def __init__(self, url, timeout=2.0, tries=3):
        self.family, self.addr = _udp_target(url)
        self.timeout, self.tries = timeout, tries
        self.sock = socket.socket(self.family, socket.SOCK_DGRAM)
        self.sock.bind(("::1" if self.family == socket.AF_INET6 else "127.0.0.1", 0))
        self.connection_id = None

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _roundtrip(self, packet, transaction_id):
        last = None
        for _ in range(self.tries):
            self.sock.sendto(packet, self.addr)
            deadline = time.monotonic() + self.timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    last = "no reply within %.1fs" % self.timeout
                    break
                self.sock.settimeout(left)
                try:
                    data, _src = self.sock.recvfrom(65536)
                except socket.timeout:
                    continue
                except OSError as e:  # e.g. ICMP port unreachable
                    last = str(e)
                    time.sleep(0.2)
                    break
                if len(data) >= 8 and struct.unpack("!I", data[4:8])[0] == transaction_id:
                    return data
        raise ProbeError("UDP %s:%s: %s" % (self.addr[0], self.addr[1], last))

    def _check(self, data, want_action, min_len):
        action = struct.unpack("!I", data[:4])[0]
        if action == ACTION_ERROR:
            raise ProbeError("UDP error reply: %r" % data[8:])
        if action != want_action:
            raise ProbeError("UDP action %d, expected %d: %s" % (action, want_action, data.hex()))
        if len(data) < min_len:
            raise ProbeError("UDP reply of %d bytes, expected at least %d" % (len(data), min_len))

    def connect(self):
        tid = struct.unpack("!I", os.urandom(4))[0]
        data = self._roundtrip(struct.pack("!QII", UDP_PROTOCOL_ID, ACTION_CONNECT, tid), tid)
        self._check(data, ACTION_CONNECT, 16)
        self.connection_id = struct.unpack("!Q", data[8:16])[0]
        return self.connection_id

    def announce(self, info_hash, peer_id, port, left, event=None, numwant=50, connection_id=None, key=0):
        """Returns a dict: action, interval, leechers, seeders, peers [(ip, port)], width, raw.
        Raises ProbeError on an error reply."""
        cid = self.connection_id if connection_id is None else connection_id
        if cid is None:
            cid = self.connect()
        tid = struct.unpack("!I", os.urandom(4))[0]
        pkt = struct.pack(
            "!QII20s20sQQQIIIiH",
            cid,
            ACTION_ANNOUNCE,
            tid,
            info_hash,
            peer_id,
            0,
            left,
            0,
            EVENTS_UDP[event],
            0,
            key,
            numwant,
            port,
        )
        data = self._roundtrip(pkt, tid)
        self._check(data, ACTION_ANNOUNCE, 20)
        interval, leechers, seeders = struct.unpack("!III", data[8:20])
        width = 18 if self.family == socket.AF_INET6 else 6
        return {
            "action": ACTION_ANNOUNCE,
            "interval": interval,
            "leechers": leechers,
            "seeders": seeders,
            "peers": parse_compact(data[20:], width),
            "width": width,
            "raw": data,
        }

    def scrape(self, info_hashes, connection_id=None):
        """Returns {info_hash: {complete, downloaded, incomplete}} in request order."""
        cid = self.connection_id if connection_id is None else connection_id
        if cid is None:
            cid = self.connect()
        tid = struct.unpack("!I", os.urandom(4))[0]
        data = self._roundtrip(struct.pack("!QII", cid, ACTION_SCRAPE, tid) + b"".join(info_hashes), tid)
        self._check(data, ACTION_SCRAPE, 8 + 12 * len(info_hashes))
        out = {}
        for i, h in enumerate(info_hashes):
            seeders, completed, leechers = struct.unpack("!III", data[8 + 12 * i : 20 + 12 * i])
            out[h] = {"complete": seeders, "downloaded": completed, "incomplete": leechers}
        return out


# ---------------------------------------------------------------- protocol-neutral


def scrape(url, info_hash, timeout=5.0):
    """Scrape one info hash over the URL's own protocol; zeros if the tracker does not know it."""
    if url.startswith("udp://"):
        with UdpTracker(url, timeout=min(timeout, 2.0)) as t:
            return t.scrape([info_hash])[info_hash]
    files = http_scrape(url, [info_hash], timeout=timeout)
    return files.get(info_hash, {"complete": 0, "downloaded": 0, "incomplete": 0})


def announce(url, info_hash, peer_id, port, left, event=None, numwant=50):
    """Announce over the URL's own protocol. Returns (peers [(ip, port)], reply dict)."""
    if url.startswith("udp://"):
        with UdpTracker(url) as t:
            r = t.announce(info_hash, peer_id, port, left, event=event, numwant=numwant)
            return r["peers"], r
    r = http_announce(url, info_hash, peer_id, port, left, event=event, numwant=numwant)
    return r["peers"] + r["peers6"], r


def wait_ready(http_urls, udp_urls, timeout=30.0):
    """Poll until every URL answers (an HTTP scrape of a random hash, a UDP connect)."""
    deadline = time.monotonic() + timeout
    pending = list(http_urls) + list(udp_urls)
    last = {}
    while pending:
        for url in list(pending):
            try:
                if url.startswith("udp://"):
                    with UdpTracker(url, timeout=0.5, tries=1) as t:
                        t.connect()
                else:
                    http_scrape(url, [os.urandom(20)], timeout=1.0)
                pending.remove(url)
            except (ProbeError, OSError) as e:
                last[url] = str(e)
        if not pending:
            return
        if time.monotonic() > deadline:
            raise ProbeError("not ready after %.0fs: %s" % (timeout, {u: last.get(u) for u in pending}))
        time.sleep(0.2)


def free_ports(n):
    """n distinct ports that are free right now for TCP and UDP on 127.0.0.1 and (if present) ::1."""
    out = []
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > 200:
            raise ProbeError("could not find %d free ports" % n)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port in out or port < 1024:
            continue
        ok = True
        for fam, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
            for typ in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                try:
                    t = socket.socket(fam, typ)
                except OSError:
                    continue
                try:
                    t.bind((host, port))
                except OSError:
                    ok = False
                finally:
                    t.close()
        if ok:
            out.append(port)
    return out


def main(argv):
    if len(argv) >= 2 and argv[0] == "free-ports":
        print(" ".join(str(p) for p in free_ports(int(argv[1]))))
        return 0
    if argv and argv[0] == "wait-ready":
        args, timeout = argv[1:], 30.0
        if "--timeout" in args:
            i = args.index("--timeout")
            timeout = float(args[i + 1])
            del args[i : i + 2]
        try:
            wait_ready(
                [u for u in args if not u.startswith("udp://")],
                [u for u in args if u.startswith("udp://")],
                timeout,
            )
        except ProbeError as e:
            print("error: %s" % e, file=sys.stderr)
            return 1
        return 0
    if len(argv) == 3 and argv[0] == "scrape":
        try:
            print(json.dumps(scrape(argv[1], bytes.fromhex(argv[2]))))
        except ProbeError as e:
            print("error: %s" % e, file=sys.stderr)
            return 1
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
