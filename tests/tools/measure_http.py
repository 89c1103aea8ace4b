#!/usr/bin/env python3
"""Measures the ybposd HTTP/WebSocket transport against a running demo:
sequential round trips over POST and WebSocket, memory with 250 subscribed
WebSockets (and again, to see it does not grow), event fan-out, the
connection cap. Standard library only; not part of CI.

    cargo build --release --bin ybposd
    ./target/release/ybposd --demo        # prints the HTTP address and token file
    python3 tests/tools/measure_http.py 127.0.0.1:PORT "$(cat TOKEN_FILE)"
"""
import base64, http.client, json, os, socket, struct, sys, time

addr, token = sys.argv[1], sys.argv[2]
host, port = addr.rsplit(":", 1)
port = int(port)
BODY = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "system.info"})
H = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def metric(name):
    c = http.client.HTTPConnection(host, port)
    c.request("GET", "/metrics", headers=H)
    t = c.getresponse().read().decode()
    c.close()
    for l in t.splitlines():
        if l.startswith(name + " ") or l.startswith(name + "{"):
            return float(l.rsplit(" ", 1)[1])


def post_bench(n):
    c = http.client.HTTPConnection(host, port)
    lat = []
    t0 = time.perf_counter()
    for _ in range(n):
        a = time.perf_counter()
        c.request("POST", "/v1/rpc", body=BODY, headers=H)
        r = c.getresponse()
        r.read()
        assert r.status == 200
        lat.append(time.perf_counter() - a)
    dt = time.perf_counter() - t0
    c.close()
    return n / dt, pct(lat, 0.5) * 1e3, pct(lat, 0.99) * 1e3


def ws_open():
    s = socket.create_connection((host, port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET /v1/ws?token={token} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(4096)
        if not d:
            raise RuntimeError("closed during handshake")
        buf += d
    status = int(buf.split(b" ")[1])
    if status != 101:
        s.close()
        return None, status
    return s, 101


def ws_send(s, text):
    data = text.encode()
    mask = os.urandom(4)
    n = len(data)
    head = bytes([0x81])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    s.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))


def recv_exact(s, n):
    b = b""
    while len(b) < n:
        d = s.recv(n - len(b))
        if not d:
            raise RuntimeError("closed")
        b += d
    return b


def ws_recv(s):
    h = recv_exact(s, 2)
    n = h[1] & 0x7F
    if n == 126:
        n = struct.unpack(">H", recv_exact(s, 2))[0]
    elif n == 127:
        n = struct.unpack(">Q", recv_exact(s, 8))[0]
    return h[0] & 0x0F, recv_exact(s, n)


def ws_bench(n):
    s, _ = ws_open()
    lat = []
    t0 = time.perf_counter()
    for i in range(n):
        a = time.perf_counter()
        ws_send(s, json.dumps({"jsonrpc": "2.0", "id": i, "method": "system.info"}))
        op, p = ws_recv(s)
        assert op == 1
        lat.append(time.perf_counter() - a)
    dt = time.perf_counter() - t0
    s.close()
    return n / dt, pct(lat, 0.5) * 1e3, pct(lat, 0.99) * 1e3


post_bench(200)
print("POST /v1/rpc system.info keep-alive, 5000 sequential: %.0f req/s, p50 %.3f ms, p99 %.3f ms" % post_bench(5000))
print("WS system.info, 5000 sequential: %.0f req/s, p50 %.3f ms, p99 %.3f ms" % ws_bench(5000))

rss0 = metric("process_resident_memory_bytes")
socks = []
for i in range(250):
    s, st = ws_open()
    ws_send(s, json.dumps({"jsonrpc": "2.0", "id": 1, "method": "events.subscribe", "params": {"topics": ["scan"]}}))
    ws_recv(s)
    socks.append(s)
rss1 = metric("process_resident_memory_bytes")
print("RSS before %.1f MiB, with 250 subscribed WebSockets %.1f MiB (%.1f KiB each)" %
      (rss0 / 2**20, rss1 / 2**20, (rss1 - rss0) / 250 / 1024))
# One scan fans out to all 250.
t0 = time.perf_counter()
c = http.client.HTTPConnection(host, port)
c.request("POST", "/v1/rpc", body=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "demo.scan", "params": {"kind": "wechat"}}), headers=H)
c.getresponse().read()
c.close()
for s in socks:
    op, p = ws_recv(s)
    assert b'"scan"' in p
print("one scan event delivered to 250 WebSocket subscribers in %.1f ms" % ((time.perf_counter() - t0) * 1e3))
over = 0
extra = []
for i in range(10):
    s, st = ws_open()
    if s is None:
        over += 1
    else:
        extra.append(s)
print("past the cap (256, 250 WS held): %d of 10 further upgrades refused with 503" % over)
for s in socks + extra:
    s.close()
time.sleep(1)
c = http.client.HTTPConnection(host, port)
c.request("GET", "/metrics", headers=H)
t = c.getresponse().read().decode()
print("after closing all:", [l for l in t.splitlines() if l.startswith("ybpos_api_connections_open")])
print("RSS after closing all %.1f MiB" % (metric("process_resident_memory_bytes") / 2**20))
