#!/usr/bin/env python3
# An intercepted client that makes one request and then stays idle on its
# kept-alive connection, to see how the proxy ends it.
#
#   python3 idle_tls.py PROXY_PORT HOST PORT CAFILE PATH WAIT
#
# Sends CONNECT HOST:PORT, does the TLS handshake trusting only CAFILE (so
# the certificate must be one the proxy's CA issued), sends GET PATH with
# keep-alive and reads the response, then prints "response: STATUS".
# Then it waits, up to WAIT seconds, for the connection to end and prints
# how it ended:
#   "end: close_notify"  the proxy ended TLS cleanly (close_notify, then EOF)
#   "end: bare eof"      the socket closed with no close_notify first
#   "end: reset"         the connection was reset
#   "end: still open"    nothing happened within WAIT seconds
# Exits non-zero on any other failure. Standard library only.
import socket
import ssl
import sys


def read_response(tls):
    data = b""
    while b"\r\n\r\n" not in data:
        more = tls.recv(65536)
        if not more:
            sys.exit("closed before the response head: %r" % data)
        data += more
    head, body = data.split(b"\r\n\r\n", 1)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        more = tls.recv(65536)
        if not more:
            sys.exit("closed inside the response body")
        body += more
    return int(head.split(b" ")[1])


def main():
    proxy_port, host, port, cafile, path, wait = sys.argv[1:7]
    sock = socket.create_connection(("127.0.0.1", int(proxy_port)), timeout=10)
    sock.sendall(("CONNECT %s:%s HTTP/1.1\r\nHost: %s:%s\r\n\r\n"
                  % (host, port, host, port)).encode())
    data = b""
    while b"\r\n\r\n" not in data:
        more = sock.recv(1)  # byte by byte: nothing past the head is ours
        if not more:
            sys.exit("closed before the answer to CONNECT: %r" % data)
        data += more
    if not data.startswith(b"HTTP/1.1 200"):
        sys.exit("CONNECT answered: %r" % data)

    ctx = ssl.create_default_context(cafile=cafile)
    # A bare EOF must raise, not read as b"" like a close_notify.
    tls = ctx.wrap_socket(sock, server_hostname=host, suppress_ragged_eofs=False)
    tls.sendall(("GET %s HTTP/1.1\r\nHost: %s:%s\r\n\r\n" % (path, host, port)).encode())
    print("response: %d" % read_response(tls), flush=True)

    tls.settimeout(float(wait))
    try:
        more = tls.recv(65536)
        if more:
            sys.exit("unexpected bytes while idle: %r" % more)
        how = "close_notify"  # recv gives b"" only after a close_notify
    except ssl.SSLEOFError:
        how = "bare eof"
    except ConnectionResetError:
        how = "reset"
    except socket.timeout:
        how = "still open"
    print("end: %s" % how, flush=True)


main()
