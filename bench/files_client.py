#!/usr/bin/env python3
"""The load generator of bench/files.sh (standard library only).

Every mode logs in to the msg server as an opt-in client (HELLO 1,
SEND_CLIENT_ID), asks its upload slots with FILE_SLOT as a client does,
and talks HTTP/1.1 to the files location over plain sockets.  Every mode
repeats its measure --runs times (fresh slots and fresh bytes each run for
uploads) and prints one "RUN ..." line a run and one "RESULT ..." line
with the medians.  nginx's CPU: utime + stime of the --pids (its workers,
threads included: /proc/<pid>/task/*/schedstat) around the timed part; the
client's own CPU (os.times) too: the box is shared with the load
generator.

  files_client.py upload --msg H:P --id ID --size BYTES -n N -c C
      N uploads of BYTES random bytes (os.urandom, made and hashed before
      the clock starts), C at a time, each PUT on a new connection
      (Connection: close); each must answer 201 with the SHA-256 of its
      bytes.  --keep FILE writes the GET URL of the last run's uploads.
      Before each run's clock starts, sync(2) (--sync 0: not), so that
      no run pays for the writeback of the previous ones.

  files_client.py get --url URL -n N -c C [--range LEN]
      N GETs of URL over C keep-alive connections (N/C each), each read
      whole and its length checked; with --range, "Range: bytes=O-(O+LEN-1)"
      at random offsets O (206, LEN bytes).

  files_client.py probe --msg H:P --id ID --type T FILE...
      for each FILE (distinct media of one kind, type T): a PUT of a
      plain upload of the same size (random bytes, application/
      octet-stream) and a PUT of the file, one after the other on an idle
      server, each timed from its connect to the 201; the probe's time is
      the difference (the media file is hashed the same way, then probed,
      then answered).  The file's info must have the probe's fields
      (container, no probe_error).
"""

import argparse
import hashlib
import json
import os
import random
import socket
import statistics
import sys
import threading
import time
import urllib.parse

import fc_msg

TIMEOUT = 60.0          # any one request, connect or read


# --- the msg server (bench/fc_msg.py) --------------------------------------

class Msg(fc_msg.Msg):
    """logged in as ident (opt-in), asks upload slots"""

    def __init__(self, hostport, ident):
        super().__init__(hostport, TIMEOUT)
        self.login(ident)

    def slot(self, name, size, ctype):
        self.send("FILE_SLOT", name, size, ctype)
        _, args = self.expect("FILE_SLOT")
        return {"id": args[0], "put": args[1], "get": args[2]}


# --- HTTP/1.1 --------------------------------------------------------------

def split_url(url):
    u = urllib.parse.urlsplit(url)
    path = u.path + ("?" + u.query if u.query else "")
    return u.hostname, u.port or 80, path


def read_head(s, buf):
    """(status, headers, rest of buf) of the next response on s"""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            raise RuntimeError("connection closed before the headers")
        buf += d
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    h = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        h[k.strip().lower()] = v.strip()
    return status, h, rest


def read_body(s, rest, n, keep, scratch):
    """n bytes of body (rest first): the bytes if keep, else their count"""
    if keep:
        body = bytearray(rest)
        while len(body) < n:
            d = s.recv(min(1 << 20, n - len(body)))
            if not d:
                raise RuntimeError("connection closed in the body")
            body += d
        return bytes(body[:n])
    got = len(rest)
    mv = memoryview(scratch)
    while got < n:
        k = s.recv_into(mv, min(len(scratch), n - got))
        if not k:
            raise RuntimeError("connection closed in the body")
        got += k
    return got


def put(url, body, ctype):
    """PUT on a new connection: (status, JSON answer, seconds)"""
    host, port, path = split_url(url)
    t0 = time.monotonic()
    s = socket.create_connection((host, port), timeout=TIMEOUT)
    try:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(("PUT %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: %s\r\n"
                   "Content-Length: %d\r\nConnection: close\r\n\r\n"
                   % (path, host, port, ctype, len(body))).encode())
        s.sendall(memoryview(body))
        status, h, rest = read_head(s, b"")
        n = int(h.get("content-length", "0"))
        ans = read_body(s, rest, n, True, None)
    finally:
        s.close()
    t1 = time.monotonic()
    try:
        j = json.loads(ans)
    except ValueError:
        j = {"raw": ans[:300].decode("latin-1")}
    return status, j, t1 - t0


def get_json(url):
    host, port, path = split_url(url)
    s = socket.create_connection((host, port), timeout=TIMEOUT)
    try:
        s.sendall(("GET %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close"
                   "\r\n\r\n" % (path, host, port)).encode())
        status, h, rest = read_head(s, b"")
        body = read_body(s, rest, int(h.get("content-length", "0")), True,
                         None)
    finally:
        s.close()
    return status, json.loads(body)


# --- figures ---------------------------------------------------------------

TCK = os.sysconf("SC_CLK_TCK")


def cpu(pids):
    """seconds of CPU of the processes, all their threads: the sum of the
    threads' /proc/<pid>/task/<tid>/schedstat (nanoseconds on a CPU; the
    thread pool's threads live as long as their worker), or utime + stime
    of /proc/<pid>/stat (clock ticks, 10 ms) without schedstat"""
    t = 0.0
    for p in pids:
        try:
            ns = 0
            for tid in os.listdir("/proc/%s/task" % p):
                with open("/proc/%s/task/%s/schedstat" % (p, tid)) as f:
                    ns += int(f.read().split()[0])
            t += ns / 1e9
            continue
        except (OSError, ValueError, IndexError):
            pass
        try:
            with open("/proc/%s/stat" % p) as f:
                st = f.read().rsplit(")", 1)[1].split()
            t += (int(st[11]) + int(st[12])) / TCK     # utime, stime
        except OSError:
            pass
    return t


def sys_cpu(pids):
    """seconds of the processes' CPU in the kernel (stime, 10 ms ticks)"""
    t = 0
    for p in pids:
        try:
            with open("/proc/%s/stat" % p) as f:
                t += int(f.read().rsplit(")", 1)[1].split()[12])
        except OSError:
            pass
    return t / TCK


def own_cpu():
    t = os.times()
    return t.user + t.system


def pct(xs, p):
    s = sorted(xs)
    return s[int(p * (len(s) - 1) + 0.5)]


def kv(d):
    return " ".join("%s=%s" % (k, v) for k, v in d.items())


def median_line(kind, runs, keys):
    out = {"kind": kind, "runs": len(runs)}
    for k in keys:
        out[k] = fmt(statistics.median(r[k] for r in runs))
    return out


def fmt(x):
    if isinstance(x, float):
        return "%.3f" % x if abs(x) < 100 else "%.1f" % x
    return str(x)


def parallel(c, jobs, fn):
    """run fn(job) for the jobs on c threads; the first exception wins"""
    lock = threading.Lock()
    it = iter(jobs)
    err = []

    def worker():
        while True:
            with lock:
                if err:
                    return
                job = next(it, None)
            if job is None:
                return
            try:
                fn(job)
            except Exception as e:      # noqa: BLE001 (reported below)
                with lock:
                    err.append(e)
                return

    ts = [threading.Thread(target=worker) for _ in range(c)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if err:
        raise err[0]


# --- modes -----------------------------------------------------------------

def upload(a):
    m = Msg(a.msg, a.id)
    pids = a.pids.split(",") if a.pids else []
    runs = []
    ctype = "application/octet-stream"
    for run in range(1, a.runs + 1):
        files = []
        for i in range(a.n):
            body = os.urandom(a.size)
            sl = m.slot("bench-%d-%d.bin" % (run, i), a.size, ctype)
            sl["body"] = body
            sl["sha"] = hashlib.sha256(body).hexdigest()
            files.append(sl)
        lat = []
        lock = threading.Lock()
        if a.sync:
            # the previous runs' files written back first: without it the
            # kernel's writeback of GBs of dirty pages lands in later runs
            os.sync()

        def one(f):
            status, j, secs = put(f["put"], f["body"], ctype)
            if status != 201 or j.get("sha256") != f["sha"]:
                raise RuntimeError("PUT %s: %d %s" % (f["put"], status, j))
            with lock:
                lat.append(secs)

        k0, c0, o0 = sys_cpu(pids), cpu(pids), own_cpu()
        t0 = time.monotonic()
        parallel(a.c, files, one)
        t1 = time.monotonic()
        c1, o1, k1 = cpu(pids), own_cpu(), sys_cpu(pids)
        mb = a.n * a.size / 1e6
        r = {"secs": t1 - t0, "mb_s": mb / (t1 - t0),
             "files_s": a.n / (t1 - t0),
             "put_ms_p50": 1000 * pct(lat, 0.5),
             "put_ms_p90": 1000 * pct(lat, 0.9),
             "nginx_cpu_s": c1 - c0,
             "nginx_cpu_ms_mb": 1000 * (c1 - c0) / mb,
             "nginx_sys_s": k1 - k0,
             "client_cpu_s": o1 - o0}
        runs.append(r)
        print("RUN kind=%s run=%d n=%d size=%d c=%d %s" % (
            a.kind, run, a.n, a.size, a.c,
            kv({k: fmt(v) for k, v in r.items()})), flush=True)
        if a.keep:
            with open(a.keep, "w") as out:
                for f in files:
                    out.write("%s %d %s\n" % (f["get"], a.size, f["sha"]))
        for f in files:
            del f["body"]
    res = median_line(a.kind, runs, runs[0].keys())
    res.update(n=a.n, size=a.size, c=a.c)
    print("RESULT " + kv(res), flush=True)
    return 0


def get(a):
    pids = a.pids.split(",") if a.pids else []
    host, port, path = split_url(a.url)
    runs = []
    per = [a.n // a.c + (1 if i < a.n % a.c else 0) for i in range(a.c)]
    for run in range(1, a.runs + 1):
        total = [0] * a.c
        lats = [[] for _ in range(a.c)]

        def conn(k):
            scratch = bytearray(1 << 20)
            rnd = random.Random(run * 1000 + k)
            s = socket.create_connection((host, port), timeout=TIMEOUT)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            buf = b""
            try:
                for _ in range(per[k]):
                    hdr = ""
                    want, code = a.size, 200
                    if a.range:
                        o = rnd.randrange(0, a.size - a.range + 1)
                        hdr = "Range: bytes=%d-%d\r\n" % (o, o + a.range - 1)
                        want, code = a.range, 206
                    t0 = time.monotonic()
                    s.sendall(("GET %s HTTP/1.1\r\nHost: %s:%d\r\n%s\r\n"
                               % (path, host, port, hdr)).encode())
                    status, h, rest = read_head(s, buf)
                    n = int(h.get("content-length", "-1"))
                    if status != code or n != want:
                        raise RuntimeError("GET %s (%s): %d, %d bytes"
                                           % (a.url, hdr.strip(), status, n))
                    if len(rest) > n:       # (no pipelining: none left)
                        raise RuntimeError("more than the body")
                    total[k] += read_body(s, rest, n, False, scratch)
                    lats[k].append(time.monotonic() - t0)
                    buf = b""
            finally:
                s.close()

        c0, o0, t0 = cpu(pids), own_cpu(), time.monotonic()
        parallel(a.c, range(a.c), conn)
        t1, c1, o1 = time.monotonic(), cpu(pids), own_cpu()
        lat = [x for l in lats for x in l]
        mb = sum(total) / 1e6
        r = {"secs": t1 - t0, "mb_s": mb / (t1 - t0),
             "req_s": a.n / (t1 - t0),
             "ms_p50": 1000 * pct(lat, 0.5), "ms_p90": 1000 * pct(lat, 0.9),
             "nginx_cpu_s": c1 - c0,
             "nginx_cpu_ms_mb": 1000 * (c1 - c0) / mb if mb else 0.0,
             "nginx_cpu_us_req": 1e6 * (c1 - c0) / a.n,
             "client_cpu_s": o1 - o0}
        runs.append(r)
        print("RUN kind=%s run=%d n=%d c=%d %s" % (
            a.kind, run, a.n, a.c, kv({k: fmt(v) for k, v in r.items()})),
            flush=True)
    res = median_line(a.kind, runs, runs[0].keys())
    res.update(n=a.n, c=a.c, size=a.range or a.size)
    print("RESULT " + kv(res), flush=True)
    return 0


def probe(a):
    m = Msg(a.msg, a.id)
    pids = a.pids.split(",") if a.pids else []
    plain_ms, media_ms, diff_ms = [], [], []
    plain_cpu = media_cpu = 0.0
    fields = None
    for i, path in enumerate(a.files):
        with open(path, "rb") as f:
            data = f.read()
        plain = os.urandom(len(data))
        ps = m.slot("plain-%d.bin" % i, len(data), "application/octet-stream")
        ms = m.slot(os.path.basename(path), len(data), a.type)

        c0 = cpu(pids)
        st, j, tp = put(ps["put"], plain, "application/octet-stream")
        c1 = cpu(pids)
        if st != 201:
            raise RuntimeError("PUT plain: %d %s" % (st, j))
        st, j, tm = put(ms["put"], data, a.type)
        c2 = cpu(pids)
        if st != 201:
            raise RuntimeError("PUT %s: %d %s" % (path, st, j))
        plain_cpu += c1 - c0
        media_cpu += c2 - c1
        st, info = get_json(ms["get"] + "/info")
        if st != 200 or "container" not in info or "probe_error" in info:
            raise RuntimeError("%s: not probed: %d %s" % (path, st, info))
        fields = info
        plain_ms.append(1000 * tp)
        media_ms.append(1000 * tm)
        diff_ms.append(1000 * (tm - tp))
        print("RUN kind=%s file=%s size=%d plain_ms=%.3f media_ms=%.3f "
              "probe_ms=%.3f" % (a.kind, os.path.basename(path), len(data),
                                 1000 * tp, 1000 * tm, 1000 * (tm - tp)),
              flush=True)
    n = len(a.files)
    res = {"kind": a.kind, "files": n,
           "size": os.path.getsize(a.files[0]),
           "plain_ms_p50": fmt(statistics.median(plain_ms)),
           "media_ms_p50": fmt(statistics.median(media_ms)),
           "probe_ms_p50": fmt(statistics.median(diff_ms)),
           "probe_ms_min": fmt(min(diff_ms)),
           "probe_ms_max": fmt(max(diff_ms)),
           "nginx_cpu_ms_plain": fmt(1000 * plain_cpu / n),
           "nginx_cpu_ms_media": fmt(1000 * media_cpu / n),
           "container": fields.get("container", "").replace(" ", "_"),
           "codecs": ",".join(fields.get("codecs", [])),
           "dims": "%sx%s" % (fields.get("width", "-"),
                               fields.get("height", "-"))}
    print("RESULT " + kv(res), flush=True)
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="mode", required=True)

    u = sub.add_parser("upload")
    u.add_argument("--msg", required=True)
    u.add_argument("--id", required=True)
    u.add_argument("--size", type=int, required=True)
    u.add_argument("-n", type=int, required=True)
    u.add_argument("-c", type=int, default=1)
    u.add_argument("--keep")
    u.add_argument("--sync", type=int, default=1)
    u.set_defaults(fn=upload)

    g = sub.add_parser("get")
    g.add_argument("--url", required=True)
    g.add_argument("--size", type=int, required=True)
    g.add_argument("-n", type=int, required=True)
    g.add_argument("-c", type=int, default=1)
    g.add_argument("--range", type=int, default=0)
    g.set_defaults(fn=get)

    r = sub.add_parser("probe")
    r.add_argument("--msg", required=True)
    r.add_argument("--id", required=True)
    r.add_argument("--type", required=True)
    r.add_argument("files", nargs="+")
    r.set_defaults(fn=probe, runs=1)

    for s in (u, g, r):
        s.add_argument("--kind", default="-")
        s.add_argument("--pids", default="")
        if s is not r:
            s.add_argument("--runs", type=int, default=3)

    a = p.parse_args()
    return a.fn(a)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:      # noqa: BLE001
        print("files_client.py: %s" % e, file=sys.stderr)
        sys.exit(1)
