#!/usr/bin/env python3
# TLS front for the test origin: the HTTPS origin of the specs.
#
#   python3 tls_front.py --cert CERT --key KEY --backend PORT [--host ADDR]
#                        [--max-tls 1.1|1.2] [--client-ca CAFILE] [--close-notify]
#
# Binds ADDR:0 (default 127.0.0.1), prints the port on stdout, and for each
# connection completes a TLS handshake (ALPN http/1.1) and relays the
# decrypted bytes to 127.0.0.1:PORT (origin.lua) and back, half-closes
# included. So every route of origin.lua is also served over HTTPS, and the
# origin's record file shows what the proxy sent after decrypting.
# --max-tls 1.1 makes it an old server (TLS 1.0 and 1.1 only), 1.2 one
# without TLS 1.3; --client-ca
# makes it ask for a client certificate signed by CAFILE, and require one.
# When the origin ends its side, the front ends its TLS stream with a bare
# TCP half-close, no close_notify, as many servers do (to a client that
# cannot tell it from a cut); --close-notify makes it send close_notify
# first, as RFC 8446 6.1 asks.
# Standard library only.
import argparse
import os
import socket
import ssl
import sys
import threading

MAX_LIFETIME = 900


def pump(src, dst, on_eof):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except (OSError, ssl.SSLError):
        pass
    on_eof()


def serve(conn, ctx, backend, close_notify):
    try:
        conn.settimeout(30)
        tls = ctx.wrap_socket(conn, server_side=True)
        tls.settimeout(None)
    except (OSError, ssl.SSLError):
        conn.close()
        return
    try:
        up = socket.create_connection(("127.0.0.1", backend))
    except OSError:
        tls.close()
        return

    def up_eof():
        try:
            up.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def down_eof():
        try:
            tls.shutdown(socket.SHUT_WR)
        except (OSError, ssl.SSLError, ValueError):
            pass

    def down_eof_notify():
        # One SSL object must not be used by two threads at once: the
        # reader is stopped first (a read shutdown wakes its recv with an
        # EOF, which the context takes as the end), then close_notify goes
        # out from here, then the FIN.
        try:
            socket.socket.shutdown(tls, socket.SHUT_RD)
        except OSError:
            pass
        t.join()
        try:
            tls.unwrap().shutdown(socket.SHUT_WR)
        except (OSError, ssl.SSLError, ValueError):
            pass

    t = threading.Thread(target=pump, args=(tls, up, up_eof), daemon=True)
    t.start()
    pump(up, tls, down_eof_notify if close_notify else down_eof)
    t.join()
    for s in (tls, up):
        try:
            s.close()
        except OSError:
            pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--backend", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--max-tls", choices=["1.1", "1.2"])
    ap.add_argument("--client-ca")
    ap.add_argument("--close-notify", action="store_true")
    a = ap.parse_args()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    if a.max_tls == "1.2":
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    elif a.max_tls:
        # OpenSSL refuses these versions at its default security level.
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    if a.client_ca:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(a.client_ca)
    if a.close_notify:
        # The read shutdown's EOF ends the reader without making the
        # connection fatal, so that close_notify can still be sent.
        ctx.options |= ssl.OP_IGNORE_UNEXPECTED_EOF
    ctx.set_alpn_protocols(["http/1.1"])
    fam = socket.AF_INET6 if ":" in a.host else socket.AF_INET
    srv = socket.socket(fam, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((a.host, 0))
    srv.listen(128)
    print(srv.getsockname()[1], flush=True)
    threading.Timer(MAX_LIFETIME, lambda: os._exit(0)).start()
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve, args=(conn, ctx, a.backend, a.close_notify), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
