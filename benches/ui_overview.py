#!/usr/bin/env python3
"""The web UI's overview against a real gateway and Docker engine with 100 funkos x 3 instances.

Makes 100 images `faaso-uibench<i>:latest` (tags of one local image) and 3 containers of each
(created, not started: the page's work is the same for any state), starts the release gateway
with a password, logs in, and fetches `/admin/` repeatedly. Reports the gateway's own
`Server-Timing` (request to rendered page, no Docker call on this path) and the wall time the
client saw, then removes what it made.

    cargo build --release -p faaso-gateway
    python3 benches/ui_overview.py --image testfunko:bench [--requests 50]
"""

import argparse
import http.client
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

FUNKOS = 100
INSTANCES = 3


def sh(*args, check=True):
    return subprocess.run(args, check=check, capture_output=True, text=True).stdout.strip()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image", required=True, help="a local image to tag as every funko")
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--gateway", default="target/release/faaso-gateway")
    args = parser.parse_args()

    names = [f"uibench{i}" for i in range(FUNKOS)]
    containers = []
    tmp = tempfile.mkdtemp()
    port = 18700
    gateway = None
    try:
        sh("docker", "network", "inspect", "faaso-net", check=False)
        for name in names:
            sh("docker", "tag", args.image, f"faaso-{name}:latest")
            for j in range(INSTANCES):
                container = f"faaso-{name}-b{j:05d}"
                sh("docker", "create", "--name", container, "--label", "faaso.managed=true",
                   f"faaso-{name}:latest")
                containers.append(container)
        config = os.path.join(tmp, "faaso.yml")
        with open(config, "w") as f:
            f.write(f"listen: 127.0.0.1:{port}\nmetrics_listen: 127.0.0.1:{port + 1}\n"
                    f"state_dir: {tmp}/state\nsecrets_dir: {tmp}/secrets\n"
                    f"pid_file: {tmp}/pid\nupgrade_sock: {tmp}/sock\npassword: bench\n"
                    "access_log: false\nlog_level: warn\n")
        gateway = subprocess.Popen([args.gateway, "--config", config])
        for _ in range(100):
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/readyz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/admin/login")
        response = conn.getresponse()
        login_cookie = response.getheader("Set-Cookie").split(";")[0]
        token = re.search(r'name="token" value="([0-9a-f]+)"', response.read().decode()).group(1)
        body = urllib.parse.urlencode({"token": token, "password": "bench"})
        conn.request("POST", "/admin/login", body,
                     {"Cookie": login_cookie, "Content-Type": "application/x-www-form-urlencoded"})
        response = conn.getresponse()
        response.read()
        session = [c for c in response.headers.get_all("Set-Cookie")
                   if c.startswith("faaso_session=")][0].split(";")[0]
        server, wall, size = [], [], 0
        for _ in range(args.requests):
            started = time.perf_counter()
            conn.request("GET", "/admin/", headers={"Cookie": session})
            response = conn.getresponse()
            page = response.read()
            wall.append((time.perf_counter() - started) * 1000)
            timing = response.getheader("Server-Timing")
            server.append(float(re.search(r"dur=([0-9.]+)", timing).group(1)))
            size = len(page)
            assert page.count(b"<tr data-funko=") >= FUNKOS, "every funko is listed"

        def p(values, q):
            return sorted(values)[min(len(values) - 1, int(q * len(values)))]

        print(f"overview, {FUNKOS} funkos x {INSTANCES} instances, {size // 1024} KiB page, "
              f"{args.requests} requests:")
        print(f"  server time p50 {statistics.median(server):.1f} ms, p95 {p(server, 0.95):.1f} ms")
        print(f"  client wall p50 {statistics.median(wall):.1f} ms, p95 {p(wall, 0.95):.1f} ms")
    finally:
        if gateway:
            gateway.terminate()
            gateway.wait()
        for container in containers:
            sh("docker", "rm", "-f", container, check=False)
        for name in names:
            sh("docker", "rmi", f"faaso-{name}:latest", check=False)


if __name__ == "__main__":
    sys.exit(main())
