"""Opens N keep-alive connections to host:port, sends one request on each
(with the given Cookie header, if any), reads each answer in full, prints
"ready" and keeps every connection open and idle until stdin closes.
Used by benches/load.sh to measure the memory an idle connection costs."""

import resource
import socket
import sys


def read_answer(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise SystemExit("connection closed before an answer")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = head.split(b" ", 2)[1]
    if not status.startswith(b"2"):
        raise SystemExit(f"answer {status.decode()} instead of 2xx")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            raise SystemExit("connection closed in the middle of an answer")
        body += chunk


def main():
    host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    cookie = sys.argv[4] if len(sys.argv) > 4 else ""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    request = f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\n"
    if cookie:
        request += f"Cookie: {cookie}\r\n"
    request = (request + "\r\n").encode()
    socks = []
    for _ in range(count):
        s = socket.create_connection((host, port))
        s.sendall(request)
        socks.append(s)
        if len(socks) % 500 == 0:
            for t in socks[-500:]:
                read_answer(t)
    for t in socks[len(socks) - len(socks) % 500:]:
        read_answer(t)
    print("ready", flush=True)
    sys.stdin.read()


main()
