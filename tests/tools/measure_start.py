#!/usr/bin/env python3
"""Measures ybposd's start and idle cost as systemd sees it: time from exec
to READY=1 with an empty journal and with 1,000 unresolved records (state
`sent`, as after a power cut with sales in flight), and idle wake-ups per
second (context switches of all its threads), with the watchdog on
(WATCHDOG_USEC=30 s, as the unit's WatchdogSec=30) and off. A gateway
simulator and a pty scanner stand in for the real ones. Standard library
only; not part of CI.

    cargo build --release --no-default-features -p ybpos-daemon
    cargo build --release -p settlement-sim
    python3 tests/tools/measure_start.py target/release/ybposd target/release/ybpos-gateway-sim [IDLE_SECS]
"""
import datetime, os, socket, sqlite3, statistics, subprocess, sys, tempfile, time

ybposd, sim = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
IDLE = float(sys.argv[3]) if len(sys.argv) > 3 else 60.0
CODE = "P42130200001"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start_sim():
    port = free_port()
    p = subprocess.Popen([sim, "--listen", f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return p, port
        except OSError:
            time.sleep(0.05)
    raise SystemExit("the simulator did not start")


def config(d, port, pty):
    path = os.path.join(d, "ybpos.toml")
    with open(path, "w") as f:
        f.write(f"""[terminal]
fixmedins_code  = "{CODE}"
fixmedins_name  = "测量药房"
mdtrtarea_admvs = "421381"
opter           = "m1"

[gateway]
url = "http://127.0.0.1:{port}/fsi/api"
auth = "none"

[[scanner]]
id = "counter"
transport = "serial"
path = "{pty}"
suffix = "\\r"

[api]
socket = "api.sock"
http_listen = "127.0.0.1:0"
token_file = "api-token"

[journal]
path = "journal.db"
""")
    return path


def run_until_ready(cfg, env_extra, d):
    """Starts ybposd with a NOTIFY_SOCKET; returns (process, seconds to READY=1, notify socket)."""
    ns = os.path.join(d, "notify.sock")
    if os.path.exists(ns):
        os.unlink(ns)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(ns)
    sock.settimeout(120)
    env = dict(os.environ, NOTIFY_SOCKET=ns, RUST_LOG="warn", **env_extra)
    t0 = time.monotonic()
    # WATCHDOG_PID must be ybposd's own pid, as systemd sets it: the shell
    # execs ybposd, keeping its pid.
    p = subprocess.Popen(["sh", "-c", 'WATCHDOG_PID=$$ exec "$0" --config "$1"', ybposd, cfg],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while True:
        msg = sock.recv(4096).decode()
        if "READY=1" in msg.split("\n"):
            return p, time.monotonic() - t0, sock


def drain(sock):
    """Everything the daemon sent to the notify socket so far."""
    out = []
    while True:
        try:
            out.append(sock.recv(4096).decode())
        except BlockingIOError:
            return "\n".join(out)


def stop(p):
    p.terminate()
    p.wait(30)


def ctxt(pid):
    n = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{t}/status") as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        n += int(line.split()[1])
        except FileNotFoundError:
            pass
    return n


def unresolved_journal(d, n):
    """Adds n records in state `sent` (a request that may have reached the gateway)."""
    db = sqlite3.connect(os.path.join(d, "journal.db"))
    at = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1)
    ts = at.strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    stamp = (at + datetime.timedelta(hours=8)).strftime("%Y%m%d%H%M%S")
    with db:
        for i in range(n):
            db.execute(
                "INSERT INTO txn (txn_id, client_ref, infno, request_hash, input, insuplc_admdvs, psn_no, "
                "mdtrt_cert_type, msgid, request, state, attempts, sent_at, created_at, updated_at) "
                "VALUES (?, ?, '2102', 'h', '{\"druginfo\":{}}', '421381', '42000000000000000001', '02', ?, NULL, 'sent', 1, ?, ?, ?)",
                (f"txn_m{i:05}", f"m-{i}", f"{CODE}{stamp}{i:04}", ts, ts, ts),
            )
    db.close()


def main():
    simp, port = start_sim()
    master, slave = os.openpty()
    pty = os.ttyname(slave)
    wd = {"WATCHDOG_USEC": "30000000"}
    try:
        ready_empty, ready_1000 = [], []
        for _ in range(3):
            with tempfile.TemporaryDirectory() as d:
                cfg = config(d, port, pty)
                p, t, s = run_until_ready(cfg, wd, d)
                ready_empty.append(t)
                stop(p)
                s.close()
                unresolved_journal(d, 1000)
                p, t, s = run_until_ready(cfg, wd, d)
                ready_1000.append(t)
                stop(p)
                s.close()
        print(f"time to READY, empty journal: median {statistics.median(ready_empty)*1000:.0f} ms "
              f"({', '.join(f'{x*1000:.0f}' for x in ready_empty)})")
        print(f"time to READY, 1000 unresolved records: median {statistics.median(ready_1000)*1000:.0f} ms "
              f"({', '.join(f'{x*1000:.0f}' for x in ready_1000)})")
        for label, env in (("watchdog on (WATCHDOG_USEC=30 s)", wd), ("no watchdog (not under systemd)", {})):
            with tempfile.TemporaryDirectory() as d:
                cfg = config(d, port, pty)
                p, _, s = run_until_ready(cfg, env, d)
                time.sleep(5)  # sign-in, scanner open, first status
                s.setblocking(False)
                drain(s)
                a = ctxt(p.pid)
                time.sleep(IDLE)
                b = ctxt(p.pid)
                pings = drain(s).count("WATCHDOG=1")
                threads = len(os.listdir(f"/proc/{p.pid}/task"))
                print(f"idle wake-ups, {label}: {(b - a) / IDLE:.2f}/s over {IDLE:.0f} s "
                      f"({b - a} context switches, {threads} threads, {pings} WATCHDOG=1 sent)")
                stop(p)
                s.close()
    finally:
        simp.terminate()


main()
