"""The msg server's wire protocol for the bench's load generators
(bench/files_client.py, bench/media_client.py; standard library only).

A frame is a 4-byte big-endian length and that many bytes of JSON,
{"CmdName": ..., "Args": [...]} and a newline (docs/protocol.md).

  frame(cmd, *args)          the bytes of one frame (the args as strings)
  Msg(hostport, timeout)     a connection to a msg server:
    .send(cmd, *args)        one frame
    .recv()                  the next frame: (cmd, args)
    .expect(*cmds)           the next frame that is one of cmds: (cmd,
                             args); others (notices like MEDIA_LIVE) are
                             skipped; an ERROR frame is fatal unless its
                             code is one of cmds (then (code, the rest))
    .login(ident)            HELLO 1 (opt-in), SEND_CLIENT_ID ident,
                             LOGIN_OK
"""

import json
import socket
import struct


def frame(cmd, *args):
    body = json.dumps({"CmdName": cmd, "Args": [str(a) for a in args]})
    body = (body + "\n").encode()
    return struct.pack(">I", len(body)) + body


class Msg:
    def __init__(self, hostport, timeout=10.0):
        host, port = hostport.rsplit(":", 1)
        self.s = socket.create_connection((host, int(port)), timeout=timeout)
        self.buf = b""

    def send(self, cmd, *args):
        self.s.sendall(frame(cmd, *args))

    def recv(self):
        while True:
            if len(self.buf) >= 4:
                n = struct.unpack(">I", self.buf[:4])[0]
                if len(self.buf) >= 4 + n:
                    body = self.buf[4:4 + n]
                    self.buf = self.buf[4 + n:]
                    m = json.loads(body)
                    return m["CmdName"], m.get("Args") or []
            d = self.s.recv(65536)
            if not d:
                raise RuntimeError("the msg server closed the connection")
            self.buf += d

    def expect(self, *cmds):
        for _ in range(1000):
            cmd, args = self.recv()
            if cmd in cmds:
                return cmd, args
            if cmd == "ERROR" and args and args[0] in cmds:
                return args[0], args[1:]
            if cmd == "ERROR":
                raise RuntimeError("ERROR %s" % " ".join(args))
        raise RuntimeError("no %s in 1000 frames" % "/".join(cmds))

    def login(self, ident):
        self.send("HELLO", 1)
        self.expect("HELLO")
        self.send("SEND_CLIENT_ID", ident)
        self.expect("LOGIN_OK")
