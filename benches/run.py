#!/usr/bin/env python3
"""FaaSO benchmark harness: the gateway against nginx, HAProxy and Caddy, in one run.

One backend container (the test funko, built static and shipped FROM scratch) runs on
faaso-net. The gateway routes /funko/bench/ to it through Docker discovery; nginx, HAProxy
and Caddy proxy the same path to the same container with keep-alive to the backend; "direct"
hits the container itself (the ceiling); two bare Pingora proxies (one shared service, and
one service per core as the gateway is built) show Pingora's own floor. wrk drives each at 64
and 256 connections with a tiny response, and at 64 connections with 1 KiB and 64 KiB
responses. Printed: requests/s, p50, p99, errors, CPU time per request of the proxy's
processes (user + system, over the run, divided by the requests answered: the efficiency
figure that does not depend on sharing the cores with wrk and the backend), peak RSS, and the
gateway's ratio to each; also the gateway with access log and metrics off, and discovery
latency (docker start of a new instance → its first 200 through the gateway), and cold-start
latency (a request to a funko at zero, `scaling.min: 0`, → its response). With --baseline REV
the gateway built at git revision REV runs beside it (the cost of a change on the hot path). With
--rounds N every run is repeated N times, interleaved, and the median (by req/s) is kept.
Results also go to JSON.

Async calls (`--only async`): a gateway of their own takes POSTs to /async/funko/bench/ping
from wrk (each stored and synced before its 202): accepted calls per second and CPU time per
accepted call; and on an idle queue, the time from a 202 to the funko's start of work and to
its callback's arrival.

Private funko (`--only private`): a second test funko made private with `docker run -l
faaso.access=private`, called through the same gateway with its key in `X-Api-Key` (64
connections, tiny): its CPU time per request beside the public funko's.

Pipelined (`--only pipelined`): wrk sends 16 requests at a time on each of 64 connections
(HTTP/1.1 pipelining, as wrk's pipeline script does) to the gateway, nginx, HAProxy and Caddy:
req/s and CPU time per request.

HTTPS rows: a gateway with `tls_listen` and nginx (`listen ... ssl http2`) serve the same
self-signed ECDSA P-256 certificate in front of the same backend: HTTP/1.1 with keep-alive
(wrk), HTTP/2 (h2load, 10 streams per connection) and a new TLS handshake per request (wrk with
`Connection: close`), each with req/s and the proxy's CPU time per request.

Usage:  python3 benches/run.py [--duration S] [--connections 64,256] [--rounds N]
                               [--trials N] [--baseline REV] [--json PATH] [--smoke]
Needs Docker, wrk, h2load, openssl, nginx, haproxy and caddy (apt-get install wrk nghttp2-client
nginx-light haproxy caddy; installed when missing and running as root).
"""

import argparse
import http.client
import json
import os
import platform
import random
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NETWORK = "faaso-net"
PACKAGES = {"wrk": "wrk", "h2load": "nghttp2-client", "openssl": "openssl", "nginx": "nginx-light",
            "haproxy": "haproxy", "caddy": "caddy"}


def log(message):
    print(message, file=sys.stderr, flush=True)


def run(cmd, **kwargs):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kwargs).stdout


def suffix():
    return "".join(random.choice(string.ascii_lowercase + string.digits) for _ in range(6))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_tools():
    missing = [pkg for tool, pkg in PACKAGES.items() if shutil.which(tool) is None]
    if missing:
        if os.geteuid() != 0:
            sys.exit(f"missing tools; install them: apt-get install {' '.join(missing)}")
        log(f"installing {' '.join(missing)}")
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def build(target_dir):
    log("building the gateway (release) and the static test funko")
    subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "faaso-gateway", "--bin", "faaso-gateway",
                    "--example", "bare_pingora"], cwd=ROOT, check=True)
    triple = f"{platform.machine()}-unknown-linux-gnu"
    env = {**os.environ, "RUSTFLAGS": "-C target-feature=+crt-static"}
    env.pop("CARGO_ENCODED_RUSTFLAGS", None)
    subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "faaso-testfunko", "--target", triple,
                    "--target-dir", os.path.join(target_dir, "testfunko")], cwd=ROOT, check=True, env=env)
    exe = os.path.join(target_dir, "testfunko", triple, "release", "testfunko")
    with tempfile.TemporaryDirectory() as ctx:
        shutil.copy(exe, os.path.join(ctx, "testfunko"))
        with open(os.path.join(ctx, "Dockerfile"), "w") as f:
            f.write('FROM scratch\nCOPY testfunko /testfunko\nENTRYPOINT ["/testfunko"]\n')
        run(["docker", "build", "-q", "-t", "testfunko:bench", ctx])
    return (os.path.join(target_dir, "release", "faaso-gateway"),
            os.path.join(target_dir, "release", "examples", "bare_pingora"))


def docker_api(method, path):
    """A call to the Docker engine's API over its Unix socket (no CLI start-up in timings)."""
    sock_path = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock").removeprefix("unix://")
    conn = http.client.HTTPConnection("localhost")
    conn.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.sock.connect(sock_path)
    conn.request(method, path, headers={"Content-Length": "0"})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    if response.status >= 300:
        raise RuntimeError(f"docker {method} {path}: {response.status} {body!r}")
    return body


def container_ip(name):
    return run(["docker", "inspect", "-f", "{{(index .NetworkSettings.Networks \"" + NETWORK + "\").IPAddress}}",
                name]).strip()


def wait_http(url, timeout=20, headers=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            host, _, path = url.removeprefix("http://").partition("/")
            h, p = host.split(":")
            conn = http.client.HTTPConnection(h, int(p), timeout=2)
            conn.request("GET", "/" + path, headers=headers or {})
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer 200 within {timeout}s")


def peak_rss_mb(pids):
    """Peak resident memory (VmHWM) summed over the proxy's processes, in MB."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return round(total / 1024, 1)


def process_tree(pid):
    pids = [pid]
    try:
        out = run(["pgrep", "-P", str(pid)])
        for child in out.split():
            pids += process_tree(int(child))
    except subprocess.CalledProcessError:
        pass
    return pids


def cpu_seconds(pids):
    """User + system CPU seconds used so far by the processes (and their reaped children)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            # After the command: state is field 3; utime 14, stime 15 (1-based in proc(5)).
            total += int(fields[11]) + int(fields[12])
        except (FileNotFoundError, IndexError, ValueError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def parse_ms(value):
    units = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    for unit in ("us", "ms", "s"):
        if value.endswith(unit):
            return float(value[: -len(unit)]) * units[unit]
    return float(value)


def wrk(url, connections, duration, pids=None, extra=()):
    """One wrk run; with `pids`, also the CPU time those processes used per request."""
    before, client_before = cpu_seconds(pids) if pids else None, client_cpu_seconds()
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", *extra, url],
                         text=True, capture_output=True).stdout
    used = cpu_seconds(pids) - before if pids else None
    client_used = client_cpu_seconds() - client_before
    result = {"rps": 0.0, "p50_ms": None, "p99_ms": None, "errors": 0, "requests": 0,
              "cpu_us_per_request": None}
    for line in out.splitlines():
        parts = line.split()
        if line.startswith("Requests/sec:"):
            result["rps"] = float(parts[1])
        elif parts[:1] == ["50%"]:
            result["p50_ms"] = parse_ms(parts[1])
        elif parts[:1] == ["99%"]:
            result["p99_ms"] = parse_ms(parts[1])
        elif parts[:1] == ["Latency"] and len(parts) > 1 and parts[1] != "Distribution":
            result["mean_ms"] = parse_ms(parts[1])
        elif "requests in" in line:
            result["requests"] = int(parts[0])
        elif line.strip().startswith("Non-2xx"):
            result["errors"] += int(parts[-1])
            result.setdefault("error_kinds", {})["non-2xx"] = int(parts[-1])
        elif line.strip().startswith("Socket errors"):
            # "Socket errors: connect 0, read 12, write 0, timeout 0": kept by kind, so that a
            # run with errors says which.
            kinds = dict(zip(parts[2::2], (int(p.strip(",")) for p in parts[3::2])))
            result["errors"] += sum(kinds.values())
            result.setdefault("error_kinds", {}).update({k: v for k, v in kinds.items() if v})
    # wrk sometimes prints a 99th percentile of 0.00us under pipelining: not a figure.
    if result["p99_ms"] == 0 and result["p50_ms"]:
        result["p99_ms"] = None
    if used is not None and result["requests"]:
        result["cpu_us_per_request"] = round(used / result["requests"] * 1e6, 1)
    if result["requests"]:
        result["client_cpu_us_per_request"] = round(client_used / result["requests"] * 1e6, 1)
    return result


def client_cpu_seconds():
    """CPU time (user + system) of the load generators run so far (waited-for children)."""
    import resource
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Proxies:
    """The processes under test; everything is stopped on exit."""

    def __init__(self, work):
        self.work = work
        self.procs = {}
        self.containers = []
        self.images = []
        self.funkos = []

    def start(self, name, cmd, log_name=None):
        out = open(os.path.join(self.work, log_name or f"{name}.log"), "w")
        self.procs[name] = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        return self.procs[name]

    def stop(self):
        for proc in self.procs.values():
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        for funko in self.funkos:
            listed = subprocess.run(["docker", "ps", "-aq", "--filter", f"name=faaso-{funko}-"],
                                    capture_output=True, text=True).stdout.split()
            self.containers.extend(listed)
        for name in self.containers:
            subprocess.run(["docker", "rm", "-f", name], capture_output=True)
        for image in self.images:
            subprocess.run(["docker", "rmi", "-f", image], capture_output=True)


def h2load(url, connections, duration, pids=None):
    """One h2load run (HTTP/2, 10 streams per connection); CPU per request as with wrk."""
    before, client_before = cpu_seconds(pids) if pids else None, client_cpu_seconds()
    out = subprocess.run(["h2load", "-c", str(connections), "-m", "10", "-t", "1", "-D", str(duration), url],
                         text=True, capture_output=True).stdout
    used = cpu_seconds(pids) - before if pids else None
    client_used = client_cpu_seconds() - client_before
    result = {"rps": 0.0, "p50_ms": None, "p99_ms": None, "errors": 0, "requests": 0,
              "cpu_us_per_request": None, "mean_ms": None}
    for line in out.splitlines():
        parts = line.replace(",", "").split()
        if line.startswith("finished in"):
            result["rps"] = float(parts[3])
        elif line.startswith("requests:"):
            result["requests"] = int(parts[7])
            result["errors"] = int(parts[9]) + int(parts[11])
        elif line.startswith("time for request:"):
            result["mean_ms"] = parse_ms(parts[5])
    # wrk sometimes prints a 99th percentile of 0.00us under pipelining: not a figure.
    if result["p99_ms"] == 0 and result["p50_ms"]:
        result["p99_ms"] = None
    if used is not None and result["requests"]:
        result["cpu_us_per_request"] = round(used / result["requests"] * 1e6, 1)
    if result["requests"]:
        result["client_cpu_us_per_request"] = round(client_used / result["requests"] * 1e6, 1)
    return result


def write_certificate(work):
    """A self-signed ECDSA P-256 certificate for localhost, shared by every HTTPS target."""
    cert, key = os.path.join(work, "tls.crt"), os.path.join(work, "tls.key")
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-days", "2",
         "-keyout", key, "-out", cert])
    return cert, key


def write_anchor_configs(work, backend, ports):
    cert, key = os.path.join(work, "tls.crt"), os.path.join(work, "tls.key")
    with open(os.path.join(work, "nginx.conf"), "w") as f:
        f.write(f"""worker_processes 2; daemon off; pid {work}/nginx.pid; error_log {work}/nginx.err;
worker_rlimit_nofile 40000;
events {{ worker_connections 16384; }}
http {{ access_log off; keepalive_requests 1000000;
  upstream be {{ server {backend}; keepalive 256; }}
  server {{ listen 127.0.0.1:{ports['nginx']};
    location /funko/bench/ {{ proxy_pass http://be/; proxy_http_version 1.1; proxy_set_header Connection ""; }} }}
  server {{ listen 127.0.0.1:{ports['nginx_tls']} ssl http2;
    ssl_certificate {cert}; ssl_certificate_key {key}; ssl_protocols TLSv1.2 TLSv1.3;
    location /funko/bench/ {{ proxy_pass http://be/; proxy_http_version 1.1; proxy_set_header Connection ""; }} }} }}
""")
    with open(os.path.join(work, "haproxy.cfg"), "w") as f:
        f.write(f"""global
  nbthread 2
  maxconn 8000
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend fe
  bind 127.0.0.1:{ports['haproxy']}
  http-request replace-path /funko/bench(/.*)? \\1
  default_backend be
backend be
  server s1 {backend}
""")
    with open(os.path.join(work, "Caddyfile"), "w") as f:
        f.write(f"""{{
  admin off
  auto_https off
}}
http://127.0.0.1:{ports['caddy']} {{
  handle_path /funko/bench/* {{
    reverse_proxy {backend}
  }}
}}
""")


def gateway_config(work, name, port, metrics_port, quiet, tls_port=None):
    path = os.path.join(work, f"{name}.yml")
    with open(path, "w") as f:
        f.write(f"listen: 127.0.0.1:{port}\nmetrics_listen: 127.0.0.1:{metrics_port}\n"
                f"state_dir: {work}/{name}-state\nsecrets_dir: {work}/{name}-secrets\n"
                f"pid_file: {work}/{name}.pid\nupgrade_sock: {work}/{name}.sock\nthreads: 2\n"
                # One load generator on one address opens every connection.
                f"max_connections_per_ip: 0\n")
        if quiet:
            f.write("access_log: false\nmetrics: false\n")
        if tls_port:
            f.write(f"tls_listen: 127.0.0.1:{tls_port}\ntls_certs:\n"
                    f"  - cert: {work}/tls.crt\n    key: {work}/tls.key\n")
    return path


def private_funko(work, backend_image="testfunko:bench"):
    """A second test funko, `benchkey`, made private with a plain `docker run -l
    faaso.access=private` (no build), and one key for it written to the gateway's key folder in
    the documented format (BLAKE2b-256 of the key, as `faaso key add` stores it). Returns the
    container name and the key."""
    import hashlib
    import secrets
    name = f"faaso-benchkey-{suffix()}"
    run(["docker", "run", "-d", "--name", name, "--network", NETWORK, "-l", "faaso.access=private",
         backend_image])
    key = "fk_" + secrets.token_urlsafe(32)[:43]
    folder = os.path.join(work, "gateway-state", "keys")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    path = os.path.join(folder, "benchkey.json")
    with open(path, "w") as f:
        json.dump([{"name": "bench", "created": int(time.time()),
                    "blake2b": hashlib.blake2b(key.encode(), digest_size=32).hexdigest()}], f)
    os.chmod(path, 0o600)
    return name, key


def discovery_latency(gateway_url, trials, proxies):
    """Seconds from `docker start` of a new instance to its first 200 through the gateway."""
    host, port = gateway_url.removeprefix("http://").split(":")
    samples, after_start = [], []
    for n in range(trials):
        funko = f"benchdisc_{suffix()}"
        name = f"faaso-{funko}-{suffix()}"
        run(["docker", "create", "--name", name, "--network", NETWORK, "testfunko:bench"])
        proxies.containers.append(name)
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
        start = time.perf_counter()
        docker_api("POST", f"/containers/{name}/start")
        started = time.perf_counter()
        while True:
            try:
                conn.request("GET", f"/funko/{funko}/ping")
                response = conn.getresponse()
                response.read()
                if response.status == 200:
                    break
            except (OSError, http.client.HTTPException):
                conn = http.client.HTTPConnection(host, int(port), timeout=5)
            if time.perf_counter() - start > 10:
                raise RuntimeError(f"{funko} not routable after 10 s")
            time.sleep(0.002)
        done = time.perf_counter()
        samples.append(done - start)
        after_start.append(done - started)
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)

    def p(values, q):
        values = sorted(values)
        return round(values[min(len(values) - 1, int(round(q * (len(values) - 1))))] * 1000, 1)

    return {"trials": trials, "p50_ms": p(samples, 0.5), "p99_ms": p(samples, 0.99),
            "max_ms": p(samples, 1.0), "after_start_returned_p50_ms": p(after_start, 0.5),
            "after_start_returned_p99_ms": p(after_start, 0.99)}


def cold_start_latency(gateway_url, trials, proxies, kind="ready"):
    """Seconds from a request to a funko at zero (`scaling.min: 0`) to its response, each trial
    after the gateway has scaled it back to zero (`idle_timeout: 1s`). `kind` is how it is at
    zero: `unpause` (`scaling.zero: pause`: its instance paused), `ready` (stopped, with the
    ready container the gateway keeps) or `create` (stopped, its ready container removed
    before each trial, so the wake creates one)."""
    host, port = gateway_url.removeprefix("http://").split(":")
    funko = f"benchcold{kind}_{suffix()}"
    image = f"faaso-{funko}:latest"
    labels = ["--label", "faaso.scale.min=0", "--label", "faaso.scale.idle_timeout=1s"]
    if kind == "unpause":
        labels += ["--label", "faaso.scale.zero=pause"]
    subprocess.run(["docker", "build", "-q", "-t", image, *labels, "-"], input="FROM testfunko:bench\n",
                   text=True, check=True, capture_output=True, env={**os.environ, "DOCKER_BUILDKIT": "0"})
    proxies.images.append(image)
    proxies.funkos.append(funko)
    time.sleep(1)  # discovery learns of the new image from Docker's events

    def containers(status, label=None):
        filters = {"name": [f"faaso-{funko}-"], "status": [status]}
        if label:
            filters["label"] = [label]
        query = "/containers/json?all=1&filters=" + urllib.parse.quote(json.dumps(filters))
        return [c["Id"] for c in json.loads(docker_api("GET", query))]

    samples = []
    for n in range(trials + 1):
        deadline = time.time() + 20
        while containers("running") or (kind == "unpause" and n > 0 and not containers("paused")) \
                or (kind != "unpause" and n > 0 and not containers("created", "faaso.ready")):
            if time.time() > deadline:
                raise RuntimeError(f"{funko} not at zero ({kind}) 20 s after its last request")
            time.sleep(0.05)
        if kind == "create":
            # The ready container the gateway left (waited for above) goes: the wake creates.
            for ready in containers("created", "faaso.ready"):
                docker_api("DELETE", f"/containers/{ready}?force=1")
        # Discovery has seen the change when the instance is out of the routing table; a new
        # connection for each trial, as a first visitor would come.
        time.sleep(0.3)
        conn = http.client.HTTPConnection(host, int(port), timeout=40)
        start = time.perf_counter()
        conn.request("GET", f"/funko/{funko}/ping")
        response = conn.getresponse()
        response.read()
        took = time.perf_counter() - start
        conn.close()
        if response.status != 200:
            raise RuntimeError(f"cold start {n + 1} ({kind}): status {response.status}")
        # The first wake of a new funko creates its container whatever the kind: not counted.
        if n > 0:
            samples.append(took)

    def p(values, q):
        values = sorted(values)
        return round(values[min(len(values) - 1, int(round(q * (len(values) - 1))))] * 1000, 1)

    return {"kind": kind, "trials": trials, "p50_ms": p(samples, 0.5), "p99_ms": p(samples, 0.99),
            "max_ms": p(samples, 1.0), "min_ms": p(samples, 0.0)}


def async_runs(args, work, gateway_bin, proxies, connections=64):
    """Async calls on a gateway of their own: the calls accepted per second (each stored and
    synced to disk before its 202) with the gateway's CPU time per accepted call (which also
    pays for running the calls it gets to meanwhile), and, on an idle queue, the time from a
    202 to the funko's start of work (the test funko's /now answers the wall clock when it
    read the request, and the callback brings that answer) and to its callback's arrival."""
    import http.server
    import threading
    port, metrics_port = free_port(), free_port()
    config = gateway_config(work, "async", port, metrics_port, False)
    with open(config, "a") as f:
        # The callback receiver is on loopback, where callbacks only go when allowed.
        f.write("async_max_queued: 10000000\ncallback_allow: [127.0.0.1/32]\n")
    gateway = proxies.start("gateway_async", [gateway_bin, "--config", config])
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/funko/bench/ping")
    arrivals, arrived = {}, threading.Condition()

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            now = time.time()
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with arrived:
                arrivals[self.headers.get("X-Call-Id")] = (now, int(body) / 1e6)
                arrived.notify_all()
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    callback = f"http://127.0.0.1:{server.server_address[1]}/done"
    to_start, to_callback = [], []
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for n in range(args.trials):
            conn.request("POST", "/async/funko/bench/now", body=b"{}",
                         headers={"X-Callback-Url": callback, "Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            accepted = time.time()
            if response.status != 202:
                raise RuntimeError(f"async call {n + 1}: status {response.status}")
            call_id = response.getheader("X-Call-Id")
            with arrived:
                if not arrived.wait_for(lambda: call_id in arrivals, timeout=10):
                    raise RuntimeError(f"async call {n + 1}: no callback within 10 s")
                called_back, started = arrivals[call_id]
                to_start.append(started - accepted)
                to_callback.append(called_back - accepted)
        conn.close()
    finally:
        server.shutdown()
    script = os.path.join(work, "async.lua")
    with open(script, "w") as f:
        f.write('wrk.method = "POST"\nwrk.body = "{}"\nwrk.headers["Content-Type"] = "application/json"\n')
    log(f"wrk -c{connections} -d{args.duration}s async calls (accepted, stored synced)")
    accepted = wrk(base + "/async/funko/bench/ping", connections, args.duration, process_tree(gateway.pid),
                   ("-s", script))
    # The queue it left is of no further use: the next runs get the cores to themselves.
    os.killpg(gateway.pid, signal.SIGKILL)

    def p(values, q):
        values = sorted(values)
        return round(values[min(len(values) - 1, int(round(q * (len(values) - 1))))] * 1000, 1)

    accepted.update({"target": "gateway, async accept", "connections": connections, "size": "2 B POST"})
    return {"accepted": accepted,
            "to_start": {"trials": len(to_start), "p50_ms": p(to_start, 0.5), "p99_ms": p(to_start, 0.99)},
            "to_callback": {"trials": len(to_callback), "p50_ms": p(to_callback, 0.5),
                            "p99_ms": p(to_callback, 0.99)}}


def https_runs(args, ports, gateway_tls, nginx):
    """The HTTPS rows: the gateway and nginx, same certificate, same backend, interleaved."""
    c = int(args.connections.split(",")[0])
    targets = {"gateway": (f"https://127.0.0.1:{ports['tls']}/funko/bench", gateway_tls),
               "nginx": (f"https://127.0.0.1:{ports['nginx_tls']}/funko/bench", nginx)}
    for base, _ in targets.values():
        wait_https(base + "/ping")
    loads = [(f"HTTP/1.1 keep-alive, {c} conns", lambda url, pids: wrk(url, c, args.duration, pids)),
             (f"HTTP/2, {c} conns x 10 streams", lambda url, pids: h2load(url, c, args.duration, pids)),
             (f"new TLS handshake per request, {c} conns",
              lambda url, pids: wrk(url, c, args.duration, pids, ["-H", "Connection: close"]))]
    runs = {}
    for round_no in range(args.rounds):
        for load, measure in loads:
            for name, (base, proc) in targets.items():
                log(f"round {round_no + 1}/{args.rounds}: HTTPS {name}: {load}")
                r = measure(base + SIZES["tiny"], process_tree(proc.pid))
                r.update({"target": name, "load": load})
                runs.setdefault((name, load), []).append(r)
    rows = [median_run(runs[(name, load)]) for load, _ in loads for name in targets]
    for load, _ in loads:
        with_ratios([r for r in rows if r["load"] == load], runs_for(rows, "gateway", load))
    return rows


def with_ratios(rows, g):
    """Adds to each row the gateway's row `g` divided by it: req/s and CPU time per request."""
    for r in rows:
        r["gateway_ratio"] = round(g["rps"] / r["rps"], 2) if r["rps"] else None
        r["gateway_cpu_ratio"] = (round(g["cpu_us_per_request"] / r["cpu_us_per_request"], 2)
                                  if g["cpu_us_per_request"] and r["cpu_us_per_request"] else None)


def load_table(title, rows):
    """Markdown lines for rows of one kind of load (HTTPS, pipelined), gateway ÷ each row."""
    lines = ["", f"| {title} target | load | req/s | p50 ms | p99 ms | mean ms | errors | CPU µs/req "
                 "| load generator CPU µs/req | gateway ÷ this (req/s) | gateway ÷ this (CPU/req) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['target']} | {r['load']} | {r['rps']:.0f} | {fmt(r['p50_ms'], 2)} | "
                     f"{fmt(r['p99_ms'], 2)} | {fmt(r.get('mean_ms'), 2)} | {r['errors']} | "
                     f"{fmt(r['cpu_us_per_request'])} | {fmt(r.get('client_cpu_us_per_request'))} | "
                     f"{fmt(r.get('gateway_ratio'), 2)} | {fmt(r.get('gateway_cpu_ratio'), 2)} |")
    return lines


PIPELINE_DEPTH = 16


def pipelined_runs(args, work, targets):
    """The pipelined rows: each target gets PIPELINE_DEPTH requests per write on every connection."""
    c = int(args.connections.split(",")[0])
    script = os.path.join(work, "pipeline.lua")
    with open(script, "w") as f:
        f.write("init = function(args)\n"
                "  local r = {}\n"
                f"  for i = 1, {PIPELINE_DEPTH} do r[i] = wrk.format(nil) end\n"
                "  req = table.concat(r)\n"
                "end\n"
                "request = function() return req end\n")
    load = f"{c} conns x {PIPELINE_DEPTH} pipelined"
    runs = {}
    for round_no in range(args.rounds):
        for name, (base, proc) in targets.items():
            log(f"round {round_no + 1}/{args.rounds}: pipelined {name}: {load}")
            r = wrk(base + SIZES["tiny"], c, args.duration, process_tree(proc.pid), ["-s", script])
            r.update({"target": name, "load": load})
            runs.setdefault(name, []).append(r)
    rows = [median_run(runs[name]) for name in targets]
    with_ratios(rows, runs_for(rows, "gateway", load))
    return rows


def runs_for(rows, target, load):
    return next(r for r in rows if r["target"] == target and r["load"] == load)


def wait_https(url, timeout=20):
    import ssl
    import urllib.request
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2, context=context) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit(f"{url} did not answer 200 within {timeout} s")


def rss_bytes(pids):
    """Resident memory (VmRSS) summed over the processes, in bytes."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        except FileNotFoundError:
            pass
    return total


# Client addresses on loopback for the connection runs: 40 "clients", each well below the
# gateway's default max_connections_per_ip (512) at 10,000 connections.
SOURCES = [f"127.0.0.{i}" for i in range(2, 42)]


def open_connections(port, path, count, half, start=0):
    """Opens `count` connections to 127.0.0.1:`port`, each from one of SOURCES. Each sends one
    GET for `path` and reads its whole answer, then stays open (an idle keep-alive connection);
    with `half`, each sends only the first half of the request head."""
    request = f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
    if half:
        request = request[: len(request) // 2]
    held = []
    for i in range(start, start + count):
        s = socket.socket()
        s.settimeout(10)
        s.bind((SOURCES[i % len(SOURCES)], 0))
        s.connect(("127.0.0.1", port))
        s.sendall(request)
        if not half:
            answer = b""
            while b"\r\n\r\n" not in answer:
                chunk = s.recv(4096)
                if not chunk:
                    raise RuntimeError(f"connection {i} closed before its answer")
                answer += chunk
            head, _, body = answer.partition(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            while len(body) < length:
                body += s.recv(4096)
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"connection {i}: {head[:40]!r}")
        held.append(s)
    return held


def connection_memory(work, gateway_bin, backend, counts=(1000, 10000)):
    """RSS per open client connection of the gateway and of nginx, each a fresh process with
    nothing else to do: idle keep-alive connections (one request answered, then silence) and
    connections that sent half a request head. Per connection = (RSS with N open - RSS before)
    / N, after a warm-up of 200 requests."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < max(counts) + 1000:
        sys.exit(f"the connection runs need {max(counts) + 1000} descriptors; the limit is {hard}")
    rows = []
    for target in ("gateway", "nginx"):
        for n, kind in enumerate(("idle keep-alive", "half a request head")):
            port, metrics = free_port(), free_port()
            procs = Proxies(work)
            try:
                if target == "gateway":
                    # A state_dir of its own: each gateway holds its own.
                    config = gateway_config(work, f"conns{n}", port, metrics, True)
                    with open(config, "a") as f:
                        f.write("max_connections: 30000\n")
                    proc = procs.start("conns", [gateway_bin, "--config", config])
                    path = "/funko/bench/ping"
                else:
                    conf = os.path.join(work, "nginx-conns.conf")
                    with open(conf, "w") as f:
                        f.write(f"""worker_processes 2; daemon off; pid {work}/nginx-conns.pid;
error_log {work}/nginx-conns.err; worker_rlimit_nofile 40000;
events {{ worker_connections 16384; }}
http {{ access_log off; keepalive_requests 1000000;
  upstream be {{ server {backend}; keepalive 256; }}
  server {{ listen 127.0.0.1:{port};
    location /funko/bench/ {{ proxy_pass http://be/; proxy_http_version 1.1; proxy_set_header Connection ""; }} }} }}
""")
                    proc = procs.start("nginx-conns", ["nginx", "-c", conf])
                    path = "/funko/bench/ping"
                wait_http(f"http://127.0.0.1:{port}{path}")
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                for _ in range(200):
                    conn.request("GET", path)
                    conn.getresponse().read()
                conn.close()
                time.sleep(1)
                pids = process_tree(proc.pid)
                before = rss_bytes(pids)
                held, row = [], {"target": target, "kind": kind, "rss_before_mb": round(before / 2**20, 1)}
                for count in counts:
                    log(f"connections: {target}, {count} x {kind}")
                    held += open_connections(port, path, count - len(held), kind != "idle keep-alive",
                                             start=len(held))
                    time.sleep(1)
                    after = rss_bytes(pids)
                    row[f"bytes_per_connection_{count}"] = round((after - before) / count)
                    row[f"rss_{count}_mb"] = round(after / 2**20, 1)
                for s in held:
                    s.close()
                rows.append(row)
            finally:
                procs.stop()
    return rows


def build_baseline(rev, target_dir, work):
    """The gateway built at git revision `rev` (in a worktree sharing the target folder, so only
    the workspace's own crates are rebuilt), copied out before the current build replaces it."""
    tree = os.path.join(work, "baseline-tree")
    run(["git", "-C", ROOT, "worktree", "add", "--detach", tree, rev])
    try:
        log(f"building the gateway at {rev} (release)")
        subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "faaso-gateway", "--bin", "faaso-gateway"],
                       cwd=tree, check=True, env={**os.environ, "CARGO_TARGET_DIR": target_dir})
        exe = os.path.join(work, "faaso-gateway-baseline")
        shutil.copy(os.path.join(target_dir, "release", "faaso-gateway"), exe)
        return exe
    finally:
        subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", tree], capture_output=True)


def fmt(value, digits=1):
    return "-" if value is None else f"{value:.{digits}f}"


SIZES = {"tiny": "/ping", "1KiB": "/bytes/1024", "64KiB": "/bytes/65536"}


def median_run(runs):
    """The run with the median req/s of several rounds, with every round's req/s and p99 (in
    the JSON: how much the tail varies from round to round)."""
    ordered = sorted(runs, key=lambda r: r["rps"])
    median = dict(ordered[len(ordered) // 2])
    median["rounds"] = [{"rps": r["rps"], "p99_ms": r["p99_ms"]} for r in runs]
    return median


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run (default 8)")
    parser.add_argument("--connections", default="64,256,1024",
                        help="connection counts (default 64,256,1024)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of every run; the median is kept (default 1)")
    parser.add_argument("--trials", type=int, default=20, help="discovery latency trials (default 20)")
    parser.add_argument("--baseline", metavar="REV",
                        help="also run the gateway built at this git revision (64 connections, tiny)")
    parser.add_argument("--only", metavar="NAMES",
                        help="run only these targets (comma-separated names; 'baseline' is the --baseline "
                             "gateway) or sections: 'https', 'connections' (memory per open client "
                             "connection), 'pipelined', 'async', 'private', 'cold-start', each with the "
                             "gateway's and the anchors' req/s rows")
    parser.add_argument("--sizes", default=",".join(SIZES), help="response sizes (default tiny,1KiB,64KiB)")
    parser.add_argument("--json", default=os.path.join(ROOT, "target", "bench", "results.json"))
    parser.add_argument("--smoke", action="store_true", help="1 s runs at 64 connections, 3 trials (for CI)")
    args = parser.parse_args()
    if args.smoke:
        args.duration, args.connections, args.trials, args.rounds = 1, "64", 3, 1
    connections = [int(c) for c in args.connections.split(",")]
    # 1,024 connections through a proxy take more descriptors than the usual soft limit.
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))

    ensure_tools()
    target_dir = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    work = tempfile.mkdtemp(prefix="faaso-bench-")
    baseline_bin = build_baseline(args.baseline, target_dir, work) if args.baseline else None
    gateway_bin, bare_bin = build(target_dir)
    proxies = Proxies(work)
    try:
        subprocess.run(["docker", "network", "create", NETWORK], capture_output=True)
        backend_name = f"faaso-bench-{suffix()}"
        run(["docker", "run", "-d", "--name", backend_name, "--network", NETWORK, "testfunko:bench"])
        proxies.containers.append(backend_name)
        backend = f"{container_ip(backend_name)}:3000"
        ports = {name: free_port() for name in ["gateway", "gateway_metrics", "quiet", "quiet_metrics",
                                                "nginx", "haproxy", "caddy", "bare", "bare_per_core",
                                                "baseline", "baseline_metrics", "nginx_tls", "tls",
                                                "tls_plain", "tls_metrics"]}
        write_certificate(work)
        write_anchor_configs(work, backend, ports)
        private_name, private_key = private_funko(work)
        proxies.containers.append(private_name)
        gateway = proxies.start("gateway", [gateway_bin, "--config",
                                            gateway_config(work, "gateway", ports["gateway"], ports["gateway_metrics"], False)])
        quiet = proxies.start("quiet", [gateway_bin, "--config",
                                        gateway_config(work, "quiet", ports["quiet"], ports["quiet_metrics"], True)])
        gateway_tls = proxies.start("gateway_tls", [gateway_bin, "--config", gateway_config(
            work, "gateway_tls", ports["tls_plain"], ports["tls_metrics"], False, ports["tls"])])
        bare = proxies.start("bare", [bare_bin, f"127.0.0.1:{ports['bare']}", backend, "shared"])
        bare_per_core = proxies.start("bare_per_core", [bare_bin, f"127.0.0.1:{ports['bare_per_core']}", backend,
                                                        "per-core"])
        nginx = proxies.start("nginx", ["nginx", "-c", os.path.join(work, "nginx.conf")])
        haproxy = proxies.start("haproxy", ["haproxy", "-f", os.path.join(work, "haproxy.cfg"), "-q"])
        os.environ["GOMAXPROCS"] = "2"
        caddy = proxies.start("caddy", ["caddy", "run", "--config", os.path.join(work, "Caddyfile"),
                                        "--adapter", "caddyfile"])
        gw = f"http://127.0.0.1:{ports['gateway']}/funko/bench"
        # name: (base URL, process, runs at every connection count and size)
        targets = {
            "direct": (f"http://{backend}", None, True),
            "gateway": (gw, gateway, True),
            "nginx": (f"http://127.0.0.1:{ports['nginx']}/funko/bench", nginx, True),
            "haproxy": (f"http://127.0.0.1:{ports['haproxy']}/funko/bench", haproxy, True),
            "caddy": (f"http://127.0.0.1:{ports['caddy']}/funko/bench", caddy, True),
            "pingora, bare per-core": (f"http://127.0.0.1:{ports['bare_per_core']}", bare_per_core, True),
            "pingora, bare shared": (f"http://127.0.0.1:{ports['bare']}", bare, False),
            "gateway, log+metrics off": (f"http://127.0.0.1:{ports['quiet']}/funko/bench", quiet, False),
            "gateway, private funko": (f"http://127.0.0.1:{ports['gateway']}/funko/benchkey", gateway, False),
        }
        # Headers a target's requests carry: the private funko's key.
        headers = {"gateway, private funko": {"X-Api-Key": private_key}}
        if baseline_bin:
            baseline = proxies.start("baseline", [baseline_bin, "--config", gateway_config(
                work, "baseline", ports["baseline"], ports["baseline_metrics"], False)])
            targets[f"gateway at {args.baseline}"] = (f"http://127.0.0.1:{ports['baseline']}/funko/bench",
                                                      baseline, args.only is not None)
        sections = {"https", "connections", "async", "private", "cold-start", "pipelined"}
        wanted = {name.strip() for name in (args.only or "").split(",") if name.strip()}
        if wanted - sections:
            wanted |= {"gateway"}
            targets = {name: t for name, t in targets.items()
                       if name in wanted or ("baseline" in wanted and name.startswith("gateway at "))}
        elif wanted:
            # A section alone: the usual rows beside it, to show the hot path kept its ratio.
            targets = {name: t for name, t in targets.items()
                       if name in ("direct", "gateway", "nginx", "haproxy", "caddy")
                       or name.startswith("gateway at ")
                       or (name == "gateway, private funko" and "private" in wanted)}
        for name, (base, _, _) in targets.items():
            wait_http(base + "/ping", headers=headers.get(name))
        plan = []
        for c in connections:
            for size in args.sizes.split(","):
                if size != "tiny" and c != connections[0]:
                    continue
                for name, (base, proc, everywhere) in targets.items():
                    if not everywhere and (c != connections[0] or size != "tiny"):
                        continue
                    plan.append((name, c, size, base + SIZES[size], proc))
        runs = {}
        for round_no in range(args.rounds):
            for name, c, size, url, proc in plan:
                log(f"round {round_no + 1}/{args.rounds}: wrk -c{c} -d{args.duration}s {name} ({size})")
                pids = process_tree(proc.pid) if proc else None
                extra = [arg for k, v in headers.get(name, {}).items() for arg in ("-H", f"{k}: {v}")]
                r = wrk(url, c, args.duration, pids, extra)
                r.update({"target": name, "connections": c, "size": size,
                          "peak_rss_mb": peak_rss_mb(pids) if proc else None})
                runs.setdefault((name, c, size), []).append(r)
        results = [median_run(runs[(name, c, size)]) for name, c, size, _, _ in plan]
        https = []
        if args.only is None or "https" in wanted:
            https = https_runs(args, ports, gateway_tls, nginx)
        pipelined = []
        if args.only is None or "pipelined" in wanted:
            pipelined = pipelined_runs(args, work, {name: (base, proc) for name, (base, proc, _) in targets.items()
                                                    if name in ("gateway", "nginx", "haproxy", "caddy")})
        memory = []
        if args.only is None or "connections" in wanted:
            counts = (100, 1000) if args.smoke else (1000, 10000)
            memory = connection_memory(work, gateway_bin, backend, counts)
        calls = None
        if args.only is None or "async" in wanted:
            calls = async_runs(args, work, gateway_bin, proxies)
        log(f"discovery latency: {args.trials} trials")
        discovery = discovery_latency(f"http://127.0.0.1:{ports['gateway']}", args.trials, proxies)
        cold = []
        for kind in ("unpause", "ready", "create"):
            log(f"cold start latency ({kind}): {args.trials} trials")
            cold.append(cold_start_latency(f"http://127.0.0.1:{ports['gateway']}", args.trials, proxies, kind))
    finally:
        proxies.stop()
        shutil.rmtree(work, ignore_errors=True)

    gateway_runs = {(r["connections"], r["size"]): r for r in results if r["target"] == "gateway"}
    for r in results:
        g = gateway_runs[(r["connections"], r["size"])]
        r["gateway_ratio"] = round(g["rps"] / r["rps"], 2) if r["rps"] else None
        if g["cpu_us_per_request"] and r["cpu_us_per_request"]:
            r["gateway_cpu_ratio"] = round(g["cpu_us_per_request"] / r["cpu_us_per_request"], 2)
        else:
            r["gateway_cpu_ratio"] = None
    machine = f"{os.cpu_count()} cores, {platform.machine()}, {platform.platform()}"
    lines = ["| target | conns | response | req/s | p50 ms | p99 ms | errors | CPU µs/req | peak RSS MB "
             "| gateway ÷ this (req/s) | gateway ÷ this (CPU/req) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['target']} | {r['connections']} | {r['size']} | {r['rps']:.0f} | {fmt(r['p50_ms'], 2)} | "
                     f"{fmt(r['p99_ms'], 2)} | {r['errors']} | {fmt(r['cpu_us_per_request'])} | "
                     f"{fmt(r['peak_rss_mb'])} | {fmt(r['gateway_ratio'], 2)} | {fmt(r['gateway_cpu_ratio'], 2)} |")
    if https:
        lines += load_table("HTTPS", https)
    if pipelined:
        lines += load_table("pipelined", pipelined)
    if memory:
        counts = [int(k.rsplit("_", 1)[1]) for k in memory[0] if k.startswith("bytes_per_connection_")]
        lines += ["", "| connections | target | RSS before MB | " +
                  " | ".join(f"RSS with {c:,} MB | bytes per connection ({c:,})" for c in counts) + " |",
                  "|---|---|---|" + "---|---|" * len(counts)]
        for r in memory:
            lines.append(f"| {r['kind']} | {r['target']} | {r['rss_before_mb']} | " +
                         " | ".join(f"{r[f'rss_{c}_mb']} | {r[f'bytes_per_connection_{c}']:,}" for c in counts) +
                         " |")
    lines.append("")
    lines.append(f"Discovery (docker start → first 200 through the gateway, {discovery['trials']} trials): "
                 f"p50 {discovery['p50_ms']} ms, p99 {discovery['p99_ms']} ms; after the engine's start call "
                 f"returned: p50 {discovery['after_start_returned_p50_ms']} ms, "
                 f"p99 {discovery['after_start_returned_p99_ms']} ms.")
    lines += ["", "| cold start (request to a funko at zero → its response) | trials | p50 ms | p99 ms | min ms | max ms |",
              "|---|---|---|---|---|---|"]
    names = {"unpause": "paused instance thawed (`zero: pause`)", "ready": "ready container started (`zero: stop`)",
             "create": "container created and started"}
    for c in cold:
        lines.append(f"| {names[c['kind']]} | {c['trials']} | {c['p50_ms']} | {c['p99_ms']} | {c['min_ms']} | "
                     f"{c['max_ms']} |")
    lines.append("")
    private = next((r for r in results if r["target"] == "gateway, private funko"), None)
    public = gateway_runs.get((connections[0], "tiny"))
    if private and public and private["cpu_us_per_request"] and public["cpu_us_per_request"]:
        lines.append(f"Private funko (X-Api-Key checked on every request): {private['cpu_us_per_request']} µs of "
                     f"gateway CPU per request against {public['cpu_us_per_request']} µs for the public one "
                     f"(private ÷ public {private['cpu_us_per_request'] / public['cpu_us_per_request']:.3f}), "
                     f"{private['rps']:.0f} against {public['rps']:.0f} req/s.")
    if calls:
        a, st, cb = calls["accepted"], calls["to_start"], calls["to_callback"]
        lines.append(f"Async calls ({a['connections']} connections, POST /async/funko/bench/ping, each stored and "
                     f"synced before its 202): {a['rps']:.0f} accepted/s, p50 {fmt(a['p50_ms'], 2)} ms, "
                     f"p99 {fmt(a['p99_ms'], 2)} ms, {a['errors']} errors, gateway CPU "
                     f"{fmt(a['cpu_us_per_request'])} µs per accepted call (running calls meanwhile included); "
                     f"on an idle queue ({st['trials']} trials), 202 → the funko starts its work: "
                     f"p50 {st['p50_ms']} ms, p99 {st['p99_ms']} ms; 202 → callback received: p50 {cb['p50_ms']} ms, "
                     f"p99 {cb['p99_ms']} ms.")
    lines.append(f"wrk -t1, {args.duration} s per run, median of {args.rounds} round(s); machine: {machine}.")
    print("\n".join(lines))
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"machine": machine, "duration_s": args.duration, "rounds": args.rounds, "results": results,
                   "https": https, "pipelined": pipelined, "connection_memory": memory, "async": calls,
                   "discovery": discovery, "cold_start": cold}, f, indent=2)
    log(f"results written to {args.json}")
    # Only the gateway's runs decide the exit code: an anchor that gives up (Caddy or the
    # direct path timing out at 1,024 connections) is a figure to read, not our failure.
    failed = [r for r in results + https + pipelined + ([calls["accepted"]] if calls else [])
              if r["target"].startswith("gateway") and (r["rps"] == 0 or r["errors"] > 0)]
    anchors = [r for r in results + https + pipelined if not r["target"].startswith("gateway")
               and (r["rps"] == 0 or r["errors"] > 0)]
    for r in anchors:
        log(f"anchor with errors (not a failure): {r['target']} "
            f"{r.get('load') or str(r['connections']) + ' conns, ' + r['size']}: {r['errors']} errors "
            f"{r.get('error_kinds', {})}")
    if failed:
        named = [(r["target"], r.get("load") or f"{r['connections']} conns, {r['size']}",
                  r.get("error_kinds", {})) for r in failed]
        sys.exit(f"runs with errors or no throughput: {named}")


if __name__ == "__main__":
    main()
