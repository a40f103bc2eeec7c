#!/usr/bin/env python3
"""Helpers of bench/media.sh (standard library only).

  media_client.py urls --server HOST:PORT --id ID --topic NAME -n N [--play]
      logs in to a msg server (HELLO 1, SEND_CLIENT_ID), makes the topic
      (CREATE_TOPIC; TOPIC_EXISTS is fine) and asks MEDIA_PUBLISH
      topic:NAME N times; prints "<stream> <rtmp url>" a line, and with
      --play "<stream> <rtmp url> <hls url>" (MEDIA_PLAY of each stream:
      the HLS URL with a play token; its token plays over RTMP too).

  media_client.py hls --url URL -v V [--at EPOCH] --warmup W --window T
      V HLS viewers of one playlist in one process (asyncio), each on its
      own keep-alive HTTP/1.1 connection: every second (each viewer at its
      own offset) it fetches the playlist, then every segment newer than
      the last one it fetched (a new viewer starts at the newest).  The
      figures of T seconds are counted from EPOCH + W (Unix time; EPOCH is
      now unless given, so that several processes and the caller share
      one window); the viewers go on for --grace s (2) after the window,
      then it prints one "HLS key=value ..." line and exits.  Every
      request has a 10 s time-out; the run ends by W + T + 20 s after
      EPOCH whatever happens.

The figures of the window: playlists, segments and bytes fetched; answers
by status (200, 403, 404, other), errors (time-outs, closed connections);
segments missed (gone from the playlist before the viewer fetched them);
produced (the newest segment number at the end less the one at the start,
as the viewers saw them); behind (viewers more than one segment behind the
newest at the end, or that missed any), and the worst lag in segments.
"""

import argparse
import asyncio
import random
import sys
import time
import urllib.parse

from fc_msg import Msg


# --- the msg server: MEDIA_PUBLISH and MEDIA_PLAY (bench/fc_msg.py) --------

def urls(a):
    m = Msg(a.server)
    m.login(a.id)
    m.send("CREATE_TOPIC", a.topic)
    m.expect("TOPIC_CREATED", "TOPIC_EXISTS")

    out = []
    for _ in range(a.n):
        m.send("MEDIA_PUBLISH", "topic:" + a.topic)
        _, args = m.expect("MEDIA_PUBLISH")
        stream, rtmp = args[1], args[2]
        line = [stream, rtmp]
        if a.play:
            m.send("MEDIA_PLAY", stream)
            _, pargs = m.expect("MEDIA_PLAY")
            line.append(pargs[1])
        out.append(" ".join(line))

    print("\n".join(out))
    return 0


# --- HLS viewers ------------------------------------------------------------

REQ_TIMEOUT = 10.0


class Stats:
    def __init__(self):
        self.playlists = self.segments = self.bytes = 0
        self.s200 = self.s403 = self.s404 = self.sother = 0
        self.errors = self.missed = 0


class Viewer:
    def __init__(self, url, stats, clock):
        u = urllib.parse.urlsplit(url)
        self.host = u.hostname
        self.port = u.port or 80
        self.path = u.path
        self.base = u.path.rsplit("/", 1)[0] + "/"
        self.stats = stats
        self.clock = clock      # clock() is True inside the window
        self.r = self.w = None
        self.last = None        # the number of the last segment fetched
        self.newest = None      # the newest in the last playlist
        self.missed = 0
        self.first_newest = None  # the newest at the window's start

    async def connect(self):
        self.r, self.w = await asyncio.open_connection(self.host, self.port)

    def close(self):
        if self.w is not None:
            self.w.close()
        self.r = self.w = None

    async def get(self, path):
        """(status, body); reconnects when the server closed"""
        for attempt in range(2):
            if self.w is None:
                await self.connect()
            try:
                self.w.write(("GET %s HTTP/1.1\r\nHost: %s:%d\r\n\r\n"
                              % (path, self.host, self.port)).encode())
                head = await self.r.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                self.close()
                if attempt == 0:
                    continue
                raise
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            length = 0
            close = False
            for h in lines[1:]:
                k, _, v = h.partition(":")
                k = k.strip().lower()
                if k == "content-length":
                    length = int(v)
                elif k == "connection" and v.strip().lower() == "close":
                    close = True
            body = await self.r.readexactly(length) if length else b""
            if close:
                self.close()
            return status, body
        raise ConnectionError("unreachable")

    def count(self, status, nbytes, kind):
        if not self.clock():
            return
        s = self.stats
        if status == 200:
            s.s200 += 1
            s.bytes += nbytes
            if kind == "m3u8":
                s.playlists += 1
            else:
                s.segments += 1
        elif status == 403:
            s.s403 += 1
        elif status == 404:
            s.s404 += 1
        else:
            s.sother += 1

    async def tick(self):
        status, body = await asyncio.wait_for(self.get(self.path),
                                              REQ_TIMEOUT)
        self.count(status, len(body), "m3u8")
        if status != 200:
            return

        seq = 0
        segs = []
        for line in body.decode("latin-1").splitlines():
            if line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
                seq = int(line.split(":", 1)[1])
            elif line and not line.startswith("#"):
                segs.append(line)
        if not segs:
            return

        # the segments are numbered seq, seq + 1, ... in the playlist
        newest = seq + len(segs) - 1
        self.newest = newest
        if self.clock() and self.first_newest is None:
            self.first_newest = newest

        if self.last is None:
            self.last = newest - 1          # start at the newest
        elif self.last + 1 < seq:
            if self.clock():
                self.missed += seq - self.last - 1
                self.stats.missed += seq - self.last - 1
            self.last = seq - 1

        for i in range(self.last + 1 - seq, len(segs)):
            uri = segs[i]
            path = uri if uri.startswith("/") else self.base + uri
            status, body = await asyncio.wait_for(self.get(path),
                                                  REQ_TIMEOUT)
            self.count(status, len(body), "ts")
            self.last = seq + i

    async def run(self, start, end, interval):
        t = start + random.random() * interval
        while True:
            now = time.monotonic()
            if t > now:
                await asyncio.sleep(t - now)
            if time.monotonic() >= end:
                break
            try:
                await self.tick()
            except (asyncio.TimeoutError, OSError, ValueError, IndexError,
                    asyncio.IncompleteReadError):
                if self.clock():
                    self.stats.errors += 1
                self.close()
            t += interval
            while t < time.monotonic() - interval:   # far behind: skip
                t += interval
        self.close()


async def hls_main(a):
    stats = Stats()
    at = a.at if a.at is not None else time.time()
    w0 = at + a.warmup                  # the window, in Unix time
    w1 = w0 + a.window

    def clock():
        return w0 <= time.time() < w1

    # the viewers pace themselves on the monotonic clock
    now = time.monotonic()
    start = now + max(0.0, at - time.time())
    end = now + (w1 + a.grace - time.time())

    viewers = [Viewer(a.url, stats, clock) for _ in range(a.viewers)]
    tasks = [asyncio.ensure_future(v.run(start, end, a.interval))
             for v in viewers]
    try:
        await asyncio.wait_for(asyncio.gather(*tasks),
                               max(1.0, w1 + 20 - time.time()))
    except asyncio.TimeoutError:
        pass

    newest = [v.newest for v in viewers if v.newest is not None]
    first = [v.first_newest for v in viewers if v.first_newest is not None]
    produced = (max(newest) - min(first)) if newest and first else 0
    lag = [max(newest) - v.last if v.last is not None else 999
           for v in viewers]
    behind = sum(1 for v, l in zip(viewers, lag) if l > 1 or v.missed)
    s = stats
    print("HLS viewers=%d window=%g playlists=%d segments=%d bytes=%d "
          "s200=%d s403=%d s404=%d sother=%d errors=%d missed=%d "
          "produced=%d behind=%d max_lag=%d"
          % (a.viewers, a.window, s.playlists, s.segments, s.bytes, s.s200,
             s.s403, s.s404, s.sother, s.errors, s.missed, produced, behind,
             max(lag) if lag else 0))
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    u = sub.add_parser("urls")
    u.add_argument("--server", required=True)
    u.add_argument("--id", required=True)
    u.add_argument("--topic", required=True)
    u.add_argument("-n", type=int, default=1)
    u.add_argument("--play", action="store_true")

    h = sub.add_parser("hls")
    h.add_argument("--url", required=True)
    h.add_argument("-v", "--viewers", type=int, default=1)
    h.add_argument("--at", type=float, default=None)
    h.add_argument("--warmup", type=float, default=3)
    h.add_argument("--window", type=float, default=10)
    h.add_argument("--interval", type=float, default=1)
    h.add_argument("--grace", type=float, default=2)

    a = p.parse_args()
    if a.cmd == "urls":
        return urls(a)
    return asyncio.run(hls_main(a))


if __name__ == "__main__":
    sys.exit(main())
