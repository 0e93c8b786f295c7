#!/usr/bin/env python3
"""FaaSO soak: the release gateway under a bounded, mixed load of well-behaved and hostile
clients, with a deploy and a killed instance along the way.

One funko (the test funko, two instances) behind the gateway. For --minutes (default 10):
  - keep-alive clients: 32 connections, each a GET of 1 KiB every 50 ms;
  - short connections: 8 clients, each a new connection per GET (Connection: close) every 100 ms;
  - stalled readers: 10 clients that ask for 8 MiB and read nothing (send_timeout drops them);
  - slow readers: 10 clients that ask for 1 MiB and read 16 KiB per second;
  - half-head clients: 100 connections that send half a request head and wait (header_timeout
    answers 408 and closes them), over and over;
  - at a third of the time `faaso deploy` rolls both instances to a new release, at two thirds
    one instance is killed (`docker kill`) and the gateway's restore starts a new one.
Pass: the well-behaved clients (keep-alive and short) see no failure; the gateway's RSS
afterwards is within 20 % of its RSS after the warm-up; it holds no more file descriptors
afterwards than after the warm-up (counted once its idle pool to the instances has expired).

Usage:  python3 benches/soak.py [--minutes M] [--json PATH]
Needs Docker and the tools of benches/run.py (it builds the same way).
"""

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as bench  # noqa: E402  (the benchmark harness's build and process helpers)

ROOT = bench.ROOT
SEND_TIMEOUT_S = 10
HEADER_TIMEOUT_S = 5
IDLE_TIMEOUT_S = 30


def log(message):
    bench.log(message)


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


class Tally:
    def __init__(self):
        self.ok = 0
        self.failed = 0
        self.reasons = {}
        self.latencies = []

    def fail(self, reason):
        self.failed += 1
        self.reasons[reason] = self.reasons.get(reason, 0) + 1

    def summary(self):
        lat = sorted(self.latencies)

        def q(p):
            return round(lat[min(len(lat) - 1, int(p * (len(lat) - 1)))] * 1000, 2) if lat else None

        return {"ok": self.ok, "failed": self.failed, "reasons": self.reasons, "p50_ms": q(0.5),
                "p99_ms": q(0.99), "max_ms": q(1.0)}


async def read_answer(reader):
    """One HTTP/1.1 answer with Content-Length or chunked framing: (status, body length)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(b":") for line in lines[1:] if line)}
    if b"content-length" in headers:
        body = await reader.readexactly(int(headers[b"content-length"]))
        return status, len(body)
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        total = 0
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            total += size
            if size == 0:
                return status, total
    return status, len(await reader.read())


async def keepalive_client(port, path, until, tally):
    reader = writer = None
    while time.monotonic() < until:
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            started = time.monotonic()
            writer.write(f"GET {path} HTTP/1.1\r\nHost: soak\r\n\r\n".encode())
            status, _ = await asyncio.wait_for(read_answer(reader), 30)
            if status == 200:
                tally.ok += 1
                tally.latencies.append(time.monotonic() - started)
            else:
                tally.fail(f"status {status}")
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError) as err:
            tally.fail(type(err).__name__)
            if writer is not None:
                writer.close()
            reader = writer = None
        await asyncio.sleep(0.05)
    if writer is not None:
        writer.close()


async def short_client(port, path, until, tally):
    while time.monotonic() < until:
        started = time.monotonic()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(f"GET {path} HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n".encode())
            status, _ = await asyncio.wait_for(read_answer(reader), 30)
            writer.close()
            if status == 200:
                tally.ok += 1
                tally.latencies.append(time.monotonic() - started)
            else:
                tally.fail(f"status {status}")
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError) as err:
            tally.fail(type(err).__name__)
        await asyncio.sleep(0.1)


async def stalled_reader(port, path, until, outcomes):
    """Asks for 8 MiB and reads nothing for send_timeout + 5 s; then reads what is left. The
    gateway must have dropped the connection: less than the whole answer arrives."""
    while time.monotonic() < until:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            writer.write(f"GET {path} HTTP/1.1\r\nHost: soak\r\n\r\n".encode())
            await asyncio.sleep(SEND_TIMEOUT_S + 5)
            got = 0
            while True:
                chunk = await asyncio.wait_for(reader.read(1 << 16), 30)
                if not chunk:
                    break
                got += len(chunk)
            key = "stalled_dropped" if got < 8 << 20 else "stalled_completed"
            outcomes[key] = outcomes.get(key, 0) + 1
            writer.close()
        except (OSError, asyncio.TimeoutError) as err:
            outcomes[f"stalled_{type(err).__name__}"] = outcomes.get(f"stalled_{type(err).__name__}", 0) + 1
            await asyncio.sleep(1)


async def slow_reader(port, path, until, outcomes):
    while time.monotonic() < until:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=16384)
            writer.write(f"GET {path} HTTP/1.1\r\nHost: soak\r\n\r\n".encode())
            await reader.readuntil(b"\r\n\r\n")
            got = 0
            while time.monotonic() < until:
                chunk = await reader.read(16384)
                if not chunk:
                    break
                got += len(chunk)
                if got >= 1 << 20:
                    outcomes["slow_completed"] = outcomes.get("slow_completed", 0) + 1
                    break
                await asyncio.sleep(1)
            if got < 1 << 20 and time.monotonic() < until:
                outcomes["slow_dropped"] = outcomes.get("slow_dropped", 0) + 1
            writer.close()
        except (OSError, asyncio.IncompleteReadError) as err:
            outcomes[f"slow_{type(err).__name__}"] = outcomes.get(f"slow_{type(err).__name__}", 0) + 1
            await asyncio.sleep(1)


async def half_head_client(port, until, outcomes):
    while time.monotonic() < until:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /funko/soak/ping HTTP/1.1\r\nHost: so")
            started = time.monotonic()
            said = await asyncio.wait_for(reader.read(), HEADER_TIMEOUT_S * 3)
            took = time.monotonic() - started
            key = "half_408" if said.startswith(b"HTTP/1.1 408") else "half_other"
            outcomes[key] = outcomes.get(key, 0) + 1
            outcomes["half_max_s"] = round(max(outcomes.get("half_max_s", 0), took), 2)
            writer.close()
        except (OSError, asyncio.TimeoutError) as err:
            outcomes[f"half_{type(err).__name__}"] = outcomes.get(f"half_{type(err).__name__}", 0) + 1
            await asyncio.sleep(1)


def faaso(cli, env, *args):
    return subprocess.run([cli, "--local", *args], env=env, capture_output=True, text=True)


def instances(funko):
    out = bench.run(["docker", "ps", "-q", "--filter", f"name=faaso-{funko}-"])
    return out.split()


async def events(cli, env, funko, start, minutes, log_lines):
    third = minutes * 60 / 3
    await asyncio.sleep(max(0, start + third - time.monotonic()))
    log("soak: deploying a new release")
    subprocess.run(["docker", "build", "-q", "-t", f"faaso-{funko}:latest", "-"],
                   input="FROM testfunko:bench\nENV SOAK_RELEASE=2\n", text=True, check=True,
                   capture_output=True, env={**os.environ, "DOCKER_BUILDKIT": "0"})
    started = time.monotonic()
    done = await asyncio.to_thread(faaso, cli, env, "deploy", funko)
    log_lines.append(f"deploy: exit {done.returncode} in {time.monotonic() - started:.1f} s: "
                     f"{(done.stdout + done.stderr).strip().splitlines()[-1:]}")
    await asyncio.sleep(max(0, start + 2 * third - time.monotonic()))
    victim = instances(funko)[0]
    log(f"soak: killing instance {victim}")
    subprocess.run(["docker", "kill", victim], capture_output=True)
    killed = time.monotonic()
    while len(instances(funko)) < 2 and time.monotonic() - killed < 60:
        await asyncio.sleep(0.5)
    log_lines.append(f"kill: back to 2 instances after {time.monotonic() - killed:.1f} s")


async def soak(port, funko, minutes, cli, env):
    path = f"/funko/{funko}"
    start = time.monotonic()
    until = start + minutes * 60
    keepalive, short, outcomes, event_log = Tally(), Tally(), {}, []
    tasks = [keepalive_client(port, f"{path}/bytes/1024", until, keepalive) for _ in range(32)]
    tasks += [short_client(port, f"{path}/bytes/1024", until, short) for _ in range(8)]
    tasks += [stalled_reader(port, f"{path}/bytes/8388608", until, outcomes) for _ in range(10)]
    tasks += [slow_reader(port, f"{path}/bytes/1048576", until, outcomes) for _ in range(10)]
    tasks += [half_head_client(port, until, outcomes) for _ in range(100)]
    tasks.append(events(cli, env, funko, start, minutes, event_log))
    await asyncio.gather(*tasks)
    return keepalive, short, outcomes, event_log


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10, help="length of the soak (default 10)")
    parser.add_argument("--json", default=os.path.join(ROOT, "target", "bench", "soak.json"))
    args = parser.parse_args()

    bench.ensure_tools()
    target_dir = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    gateway_bin, _ = bench.build(target_dir)
    subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "faaso-cli", "--bin", "faaso"], cwd=ROOT,
                   check=True)
    cli = os.path.join(target_dir, "release", "faaso")
    work = tempfile.mkdtemp(prefix="faaso-soak-")
    procs = bench.Proxies(work)
    funko = f"soak_{bench.suffix()}"
    env = {**os.environ, "FAASO_STATE_DIR": f"{work}/state", "FAASO_SECRETS_DIR": f"{work}/secrets"}
    try:
        subprocess.run(["docker", "network", "create", bench.NETWORK], capture_output=True)
        bench.run(["docker", "tag", "testfunko:bench", f"faaso-{funko}:latest"])
        procs.images.append(f"faaso-{funko}:latest")
        procs.funkos.append(funko)
        port, metrics = bench.free_port(), bench.free_port()
        config = os.path.join(work, "soak.yml")
        with open(config, "w") as f:
            f.write(f"listen: 127.0.0.1:{port}\nmetrics_listen: 127.0.0.1:{metrics}\n"
                    f"state_dir: {work}/state\nsecrets_dir: {work}/secrets\npid_file: {work}/soak.pid\n"
                    f"upgrade_sock: {work}/soak.sock\nthreads: 2\naccess_log: false\n"
                    f"header_timeout: {HEADER_TIMEOUT_S}s\nsend_timeout: {SEND_TIMEOUT_S}s\n"
                    f"idle_timeout: {IDLE_TIMEOUT_S}s\n")
        gateway = procs.start("gateway", [gateway_bin, "--config", config])
        up = faaso(cli, env, "up", funko, "--scale", "2")
        if up.returncode != 0:
            sys.exit(f"faaso up failed: {up.stderr}")
        bench.wait_http(f"http://127.0.0.1:{port}/funko/{funko}/ping")
        log("soak: warm-up (20 s)")
        asyncio.run(warm(port, funko))
        rss_before, fds_before = bench.rss_bytes([gateway.pid]), fds(gateway.pid)
        log(f"soak: {args.minutes} minutes")
        started = time.monotonic()
        keepalive, short, outcomes, event_log = asyncio.run(soak(port, funko, args.minutes, cli, env))
        took = time.monotonic() - started
        peak = bench.peak_rss_mb([gateway.pid])
        # Let the idle pool to the instances expire, then one request sweeps it.
        log(f"soak: done; waiting {IDLE_TIMEOUT_S + 6} s for idle pooled connections to expire")
        time.sleep(IDLE_TIMEOUT_S + 6)
        bench.wait_http(f"http://127.0.0.1:{port}/funko/{funko}/ping")
        time.sleep(1)
        rss_after, fds_after = bench.rss_bytes([gateway.pid]), fds(gateway.pid)
        metrics_text = bench.run(["curl", "-s", f"http://127.0.0.1:{metrics}/metrics"])
    finally:
        procs.stop()

    refused = [line for line in metrics_text.splitlines() if line.startswith("faaso_connections_refused_total")]
    result = {"minutes": args.minutes, "took_s": round(took, 1),
              "keepalive": keepalive.summary(), "short": short.summary(), "hostile": outcomes,
              "events": event_log, "rss_before_mb": round(rss_before / 2**20, 1),
              "rss_after_mb": round(rss_after / 2**20, 1), "peak_rss_mb": peak,
              "fds_before": fds_before, "fds_after": fds_after, "refused": refused}
    print(json.dumps(result, indent=2))
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(result, f, indent=2)
    problems = []
    if keepalive.failed or short.failed:
        problems.append(f"well-behaved clients failed: {keepalive.reasons} {short.reasons}")
    if rss_after > 1.2 * rss_before:
        problems.append(f"RSS after {rss_after / 2**20:.1f} MB > 1.2 x before {rss_before / 2**20:.1f} MB")
    if fds_after > fds_before:
        problems.append(f"file descriptors after {fds_after} > before {fds_before}")
    if problems:
        sys.exit("soak failed: " + "; ".join(problems))
    log("soak passed")


async def warm(port, funko):
    until = time.monotonic() + 20
    tally = Tally()
    await asyncio.gather(*[keepalive_client(port, f"/funko/{funko}/bytes/1024", until, tally) for _ in range(32)],
                         *[short_client(port, f"/funko/{funko}/bytes/1024", until, tally) for _ in range(8)])
    if tally.failed:
        sys.exit(f"warm-up failed: {tally.reasons}")


if __name__ == "__main__":
    main()
