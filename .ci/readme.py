#!/usr/bin/env python3
"""Runs the README's quick start and tour as written, so the README cannot drift from the product.

Every ```sh block that follows a `<!-- ci: run -->` line in README.md is run, in order, in one
bash (set -euo pipefail) from the repository's root, so `cd` and `export` carry over as they do
for a reader. A command whose comment is a JSON value (`curl ... # {"hello":"you"}`) must print
exactly that. `cargo test --workspace` is left out: it is CI's own tests step, run before this.

The run gets a home folder of its own (the README's `~/funkos`, FaaSO's default state and
secrets folders) and the local base images of `.ci/base-images.sh` for the runtimes that need
a registry; afterwards the gateway it started is stopped and its funkos are removed.
"""

import base64
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MARKER = "<!-- ci: run -->"
SKIPPED = ("cargo test --workspace",)
# Funkos the README makes; removed after the run whatever happened.
FUNKOS = ("welcome", "hello", "hello_bin")


def blocks(readme):
    """The marked blocks: (line number, [lines])."""
    lines = readme.splitlines()
    found = []
    for i, line in enumerate(lines):
        if line.strip() != MARKER:
            continue
        if i + 1 >= len(lines) or lines[i + 1].strip() != "```sh":
            sys.exit(f"README.md:{i + 1}: {MARKER} must be followed by a ```sh block")
        end = next((j for j in range(i + 2, len(lines)) if lines[j].strip() == "```"), None)
        if end is None:
            sys.exit(f"README.md:{i + 2}: the ```sh block does not end")
        found.append((i + 3, lines[i + 2:end]))
    return found


EXPECT = re.compile(r"^(?P<command>.*?)\s+#\s+(?P<expected>[\[{].*)$")


def script(found):
    """One bash script: each command echoed with its README line, expectations checked."""
    out = [
        "set -euo pipefail",
        'expect() { local got="$1" want; want="$(printf %s "$2" | base64 -d)";',
        '  if [ "$got" != "$want" ]; then echo "README.md:$3: printed $got, the README says $want" >&2; exit 1; fi; }',
    ]
    for first, lines in found:
        heredoc = None
        for n, line in enumerate(lines, start=first):
            if heredoc is not None:
                out.append(line)
                if line.strip() == heredoc:
                    heredoc = None
                continue
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if any(line.startswith(s) for s in SKIPPED):
                out.append(f"echo '# README.md:{n}: skipped here (CI runs the tests in its own step)'")
                continue
            shown = line.split(" # ")[0].rstrip()
            out.append(f"echo {shquote(f'$ {shown}   (README.md:{n})')}")
            start = re.search(r"<<'?(\w+)'?", line)
            if start:
                heredoc = start.group(1)
                out.append(line)
                continue
            match = EXPECT.match(line)
            if match and match.group("command").startswith("curl "):
                want = base64.b64encode(match.group("expected").strip().encode()).decode()
                out.append(f'expect "$({match.group("command")})" {want} {n}')
            else:
                out.append(line)
    return "\n".join(out) + "\n"


def shquote(text):
    return "'" + text.replace("'", "'\\''") + "'"


def cleanup(env, home):
    pid_file = os.path.join(ROOT, "target", "quickstart-gateway.pid")
    if os.path.exists(pid_file):
        pid = open(pid_file).read().strip()
        subprocess.run(["kill", pid], check=False)
        os.remove(pid_file)
    for funko in FUNKOS:
        ids = subprocess.run(["docker", "ps", "-aq", "--filter", f"name=^faaso-{funko}-"],
                             capture_output=True, text=True).stdout.split()
        if ids:
            subprocess.run(["docker", "rm", "-f", *ids], capture_output=True)
        tags = subprocess.run(["docker", "images", "-q", f"faaso-{funko}"],
                              capture_output=True, text=True).stdout.split()
        if tags:
            subprocess.run(["docker", "rmi", "-f", *set(tags)], capture_output=True)
    shutil.rmtree(home, ignore_errors=True)


def main():
    with open(os.path.join(ROOT, "README.md")) as f:
        found = blocks(f.read())
    if not found:
        sys.exit(f"README.md has no {MARKER} blocks")
    home = tempfile.mkdtemp(prefix="faaso-readme-")
    env = dict(os.environ)
    real_home = os.path.expanduser("~")
    env.setdefault("CARGO_HOME", os.path.join(real_home, ".cargo"))
    env.setdefault("RUSTUP_HOME", os.path.join(real_home, ".rustup"))
    env["HOME"] = home
    for key in [k for k in env if k.startswith("FAASO_")]:
        del env[key]
    env["FAASO_BASE_IMAGE_FLASK"] = "faaso-ci/python:bookworm"
    text = script(found)
    with open(os.path.join(home, "readme.sh"), "w") as f:
        f.write(text)
    print(f"running {sum(len(b) for _, b in found)} lines of {len(found)} README blocks")
    try:
        code = subprocess.run(["bash", os.path.join(home, "readme.sh")], cwd=ROOT, env=env).returncode
    finally:
        cleanup(env, home)
    if code != 0:
        sys.exit(f"the README's commands failed (exit {code})")
    print("the README's quick start and tour ran as written")


if __name__ == "__main__":
    main()
