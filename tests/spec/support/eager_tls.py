#!/usr/bin/env python3
# A client that sends its TLS ClientHello right behind its CONNECT, in the
# same write, without waiting for the proxy's 200.
#
#   python3 eager_tls.py PROXY_PORT HOST PORT CAFILE PATH
#
# Then it reads the 200, finishes the handshake (trusting only CAFILE, so
# an intercepted tunnel must show the proxy CA's certificate, a passed
# through one the origin's), sends GET PATH and prints the response.
# Prints "issuer: CN" of the certificate it got first. Exits non-zero on
# any failure. Standard library only.
import socket
import ssl
import sys


def main():
    proxy_port, host, port, cafile, path = sys.argv[1:6]
    ctx = ssl.create_default_context(cafile=cafile)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname=host)
    sock = socket.create_connection(("127.0.0.1", int(proxy_port)), timeout=10)

    def handshake_step():
        try:
            tls.do_handshake()
            return True
        except ssl.SSLWantReadError:
            return False

    handshake_step()  # the ClientHello, into outgoing
    head = "CONNECT %s:%s HTTP/1.1\r\nHost: %s:%s\r\n\r\n" % (host, port, host, port)
    sock.sendall(head.encode() + outgoing.read())

    data = b""
    while b"\r\n\r\n" not in data:
        more = sock.recv(65536)
        if not more:
            sys.exit("closed before the answer to CONNECT: %r" % data)
        data += more
    answer, rest = data.split(b"\r\n\r\n", 1)
    if not answer.startswith(b"HTTP/1.1 200"):
        sys.exit("CONNECT answered: %r" % answer)
    incoming.write(rest)
    while not handshake_step():
        out = outgoing.read()
        if out:
            sock.sendall(out)
        more = sock.recv(65536)
        if not more:
            sys.exit("closed during the handshake")
        incoming.write(more)
    sock.sendall(outgoing.read())
    issuer = dict(x[0] for x in tls.getpeercert()["issuer"])
    print("issuer: %s" % issuer.get("commonName", "?"))

    tls.write(("GET %s HTTP/1.1\r\nHost: %s:%s\r\nConnection: close\r\n\r\n"
               % (path, host, port)).encode())
    sock.sendall(outgoing.read())
    response = b""
    while True:
        try:
            chunk = tls.read(65536)
            if not chunk:
                break
            response += chunk
            continue
        except ssl.SSLWantReadError:
            pass
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            break
        more = sock.recv(65536)
        if not more:
            break
        incoming.write(more)
    sys.stdout.write(response.decode("latin-1"))


main()
