#!/usr/bin/env python3
# An HTTPS (or, without --cert, plain HTTP) origin with a WebSocket echo
# that speaks permessage-deflate (RFC 7692), for a real browser's WebSocket
# through the proxy.
#
#   python3 ws_origin.py [--cert CERT --key KEY]
#
# Binds 127.0.0.1:0 and prints the port on stdout. Serves:
#   GET /page  a page whose script opens wss:// (ws://) <its host>/echo, sends
#              "hello through luaproxy" twice, writes each echo into the
#              page, and once both came back closes with 1000 "done"; an
#              image on it (GET /wait) is answered only once a close came
#              (or after 30 s), so the page's load event, and a browser's
#              --dump-dom, wait for the WebSocket to be done
#   GET /echo  the WebSocket: takes permessage-deflate when offered (both
#              sides keep their compression context across messages),
#              answers each text message with "echo: " and the text,
#              compressed when the extension was agreed, and answers a
#              close with a close
# Prints "deflate" when a client offered the extension, and "close CODE
# REASON" when a close came, each on a line of stdout. Standard library
# only.
import argparse
import base64
import hashlib
import os
import socket
import ssl
import struct
import sys
import threading
import zlib

MAX_LIFETIME = 900
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 1.3
closed = threading.Event()

PAGE = b"""<!doctype html>
<title>ws</title>
<p id="log"></p>
<img src="/wait" alt="">
<script>
const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/echo");
const log = document.getElementById("log");
let got = 0;
ws.onopen = () => {
  ws.send("hello through luaproxy");
  ws.send("hello through luaproxy");
};
ws.onmessage = (e) => {
  log.textContent += "[" + e.data + "]";
  if (++got === 2) ws.close(1000, "done");
};
</script>
"""


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def read_exact(conn, n):
    data = b""
    while len(data) < n:
        part = conn.recv(n - len(data))
        if not part:
            raise EOFError
        data += part
    return data


def read_head(conn):
    head = b""
    while b"\r\n\r\n" not in head:
        part = conn.recv(1)
        if not part:
            raise EOFError
        head += part
        if len(head) > 65536:
            raise EOFError
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    fields = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            fields[name.strip().lower()] = value.strip()
    return method, path, fields


def read_frame(conn):
    b0, b1 = read_exact(conn, 2)
    length = b1 & 0x7F
    if length == 126:
        length = struct.unpack("!H", read_exact(conn, 2))[0]
    elif length == 127:
        length = struct.unpack("!Q", read_exact(conn, 8))[0]
    mask = read_exact(conn, 4) if b1 & 0x80 else b"\0\0\0\0"
    payload = bytearray(read_exact(conn, length))
    for i in range(length):
        payload[i] ^= mask[i % 4]
    return b0 & 0x80, b0 & 0x40, b0 & 0x0F, bytes(payload)


def send_frame(conn, opcode, payload, rsv1=False):
    b0 = 0x80 | (0x40 if rsv1 else 0) | opcode
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", b0, n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, 126, n)
    else:
        head = struct.pack("!BBQ", b0, 127, n)
    conn.sendall(head + payload)


def websocket(conn, fields):
    key = fields.get("sec-websocket-key", "")
    accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
    deflate = "permessage-deflate" in fields.get("sec-websocket-extensions", "")
    extra = "Sec-WebSocket-Extensions: permessage-deflate\r\n" if deflate else ""
    if deflate:
        say("deflate")
    conn.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + "\r\n" + extra +
                  "\r\n").encode())
    inflater = zlib.decompressobj(-15)
    deflater = zlib.compressobj(6, zlib.DEFLATED, -15)
    message, compressed = b"", False
    while True:
        fin, rsv1, opcode, payload = read_frame(conn)
        if opcode == 8:
            code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 0
            say("close %d %s" % (code, payload[2:].decode("utf-8", "replace")))
            send_frame(conn, 8, payload)
            closed.set()
            return
        if opcode in (9, 10):
            if opcode == 9:
                send_frame(conn, 10, payload)
            continue
        if opcode != 0:
            message, compressed = b"", bool(rsv1)
        message += payload
        if not fin:
            continue
        if compressed:
            message = inflater.decompress(message + b"\x00\x00\xff\xff")
        reply = b"echo: " + message
        if deflate:
            data = deflater.compress(reply) + deflater.flush(zlib.Z_SYNC_FLUSH)
            send_frame(conn, 1, data[:-4], rsv1=True)
        else:
            send_frame(conn, 1, reply)


def serve(conn, ctx):
    try:
        conn.settimeout(30)
        tls = ctx.wrap_socket(conn, server_side=True) if ctx else conn
        while True:
            method, path, fields = read_head(tls)
            if path == "/echo" and "websocket" in fields.get("upgrade", "").lower():
                websocket(tls, fields)
                break
            if path == "/wait":
                closed.wait(30)
            body = PAGE if path == "/page" else b"not found\n"
            status = "200 OK" if path == "/page" else "404 Not Found"
            tls.sendall(("HTTP/1.1 %s\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n"
                         % (status, len(body))).encode() + body)
    except (OSError, ssl.SSLError, EOFError, ValueError, zlib.error):
        pass
    finally:
        conn.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cert")
    ap.add_argument("--key")
    args = ap.parse_args()
    ctx = None
    if args.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
        ctx.set_alpn_protocols(["http/1.1"])
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    say(str(srv.getsockname()[1]))
    # Never outlive a test run that forgot to stop us.
    threading.Timer(MAX_LIFETIME, lambda: os._exit(0)).start()
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve, args=(conn, ctx), daemon=True).start()


if __name__ == "__main__":
    main()
