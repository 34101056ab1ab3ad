#!/usr/bin/env python3
"""The overhead of `gate post` with each state store, in one run: bash bench/store.sh

Starts a local fake Mastodon (this file, standard library only) and a real PostgreSQL
(Debian's binaries, a fresh cluster in a temporary folder on 127.0.0.1, run as `nobody` when
this runs as root), signs one account in (the token in the kernel keyring of this session),
then times whole `gate post --yes` processes, each with a new text, alternating between the
SQLite store (a state folder) and the PostgreSQL store (`GATE_STATE_URL`), so both see the
same machine at the same moment. Every process judges, claims, sends to the fake, records
`sent` and appends its audit entry. Prints the medians and what PostgreSQL adds.

Knobs (environment): GATE (the binary, default target/release/gate), RUNS (posts per store,
default 40), WARMUP (untimed posts per store first, default 3).
"""

import http.server
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

GATE = os.environ.get("GATE", "target/release/gate")
RUNS = int(os.environ.get("RUNS", "40"))
WARMUP = int(os.environ.get("WARMUP", "3"))
TOKEN = "bench-token-not-a-secret"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Fake(http.server.BaseHTTPRequestHandler):
    """The few Mastodon endpoints `gate auth login --with-token` and `gate post` call."""

    count = 0
    lock = threading.Lock()

    def log_message(self, *args):
        pass

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path.startswith("/api/v1/accounts/verify_credentials"):
            return self.reply(200, {"id": "1", "username": "brand", "acct": "brand"})
        self.reply(404, {"error": "not here"})

    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        self.rfile.read(length)
        if self.headers.get("authorization") != f"Bearer {TOKEN}":
            return self.reply(401, {"error": "The access token is invalid"})
        if self.path == "/api/v1/statuses":
            with Fake.lock:
                Fake.count += 1
                n = Fake.count
            host = self.headers.get("host")
            return self.reply(
                200,
                {
                    "id": str(n),
                    "url": f"http://{host}/@brand/{n}",
                    "created_at": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
                    "content": "<p>bench</p>",
                },
            )
        self.reply(404, {"error": "not here"})


def postgres(root):
    """A fresh cluster under `root`; returns (url, stop)."""
    bins = sorted(d for d in os.listdir("/usr/lib/postgresql") if os.path.exists(f"/usr/lib/postgresql/{d}/bin/initdb"))
    if not bins:
        sys.exit("bench/store.py: PostgreSQL is not installed (apt-get install postgresql)")
    bin_dir = f"/usr/lib/postgresql/{bins[-1]}/bin"
    as_user = ["runuser", "-u", "nobody", "--"] if os.geteuid() == 0 else []
    if as_user:
        subprocess.run(["chown", "-R", "nobody", root], check=True)
    data = os.path.join(root, "data")
    port = free_port()
    subprocess.run(as_user + [f"{bin_dir}/initdb", "-D", data, "-U", "gate", "--auth=trust", "-E", "UTF8", "--no-sync"],
                   check=True, stdout=subprocess.DEVNULL)
    options = f"-k {root} -c listen_addresses=127.0.0.1 -p {port}"
    subprocess.run(as_user + [f"{bin_dir}/pg_ctl", "-D", data, "-o", options, "-l", os.path.join(root, "log"), "-w", "start"],
                   check=True, stdout=subprocess.DEVNULL)

    def stop():
        subprocess.run(as_user + [f"{bin_dir}/pg_ctl", "-D", data, "stop", "-m", "fast"], stdout=subprocess.DEVNULL)

    return f"postgres://gate@127.0.0.1:{port}/postgres?sslmode=disable", stop


def main():
    if not os.path.exists(GATE):
        sys.exit(f"bench/store.py: no gate binary at {GATE} (cargo build --release)")
    work = tempfile.mkdtemp(prefix="gate-bench-store-")
    os.chmod(work, 0o755)
    pg_root = os.path.join(work, "pg")
    os.mkdir(pg_root)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Fake)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url, stop = postgres(pg_root)
    try:
        policy = os.path.join(work, "gate.toml")
        with open(policy, "w") as f:
            f.write(
                'version = 1\ntimezone = "UTC"\n\n[accounts.brand]\nplatform = "mastodon"\n'
                f'server = "http://127.0.0.1:{server.server_port}"\n\n'
                '[banned_terms]\ndeny = ["layoffs"]\n\n[limits]\nmax_posts_per_hour = 100000\n'
            )
        base = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.path.join(work, "home"),
            "GATE_POLICY": policy,
            "GATE_KEYCHAIN": "keyutils",
            "GATE_TEST_NO_ANCHOR": "1",
            "XDG_RUNTIME_DIR": os.path.join(work, "run"),
            "USER": "bench",
            "NO_COLOR": "1",
        }
        os.makedirs(base["XDG_RUNTIME_DIR"], mode=0o700)
        stores = {
            "sqlite": dict(base, GATE_HOME=os.path.join(work, "sqlite")),
            "postgres": dict(base, GATE_HOME=os.path.join(work, "pgstate"), GATE_STATE_URL=url),
        }
        login = subprocess.run([GATE, "auth", "login", "brand", "--with-token"], input=TOKEN, text=True,
                               env=stores["sqlite"], capture_output=True)
        if login.returncode != 0:
            sys.exit(f"bench/store.py: cannot sign in: {login.stderr}")
        times = {name: [] for name in stores}
        for i in range(WARMUP + RUNS):
            for name, env in stores.items():
                start = time.perf_counter()
                run = subprocess.run([GATE, "post", "--yes", f"Bench post {i} via {name}"], env=env,
                                     stdin=subprocess.DEVNULL, capture_output=True, text=True)
                elapsed = time.perf_counter() - start
                if run.returncode != 0:
                    sys.exit(f"bench/store.py: gate post ({name}) exited {run.returncode}: {run.stderr}")
                if i >= WARMUP:
                    times[name].append(elapsed * 1000)
        sent = Fake.count
        expected = (WARMUP + RUNS) * len(stores)
        if sent != expected:
            sys.exit(f"bench/store.py: the fake received {sent} posts, expected {expected}")
        med = {name: statistics.median(t) for name, t in times.items()}
        print(f"gate post, whole process, {RUNS} posts per store (after {WARMUP} warm-up), alternating, same run")
        print("| store | median ms | p10 ms | p90 ms |")
        print("|---|---|---|---|")
        for name, t in times.items():
            q = statistics.quantiles(t, n=10)
            print(f"| {name} | {med[name]:.1f} | {q[0]:.1f} | {q[-1]:.1f} |")
        print(f"PostgreSQL adds {med['postgres'] - med['sqlite']:+.1f} ms per delivery (median); goal: at most 10 ms")
    finally:
        stop()
        server.shutdown()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
