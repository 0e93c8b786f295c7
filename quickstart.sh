#!/usr/bin/env bash
# FaaSO's quick start, from a clone: builds the `faaso` command and the gateway, builds the
# example funko examples/welcome (a static executable on the binary runtime, so no registry is
# needed), starts the gateway on :8888 (unless one answers there) and one instance of welcome, and
# calls it. Needs a running Docker engine, cmake and curl. Nearly all of the first run is
# compiling (see README, "Quick start", for how long); a second run takes seconds.
set -euo pipefail
cd "$(dirname "$0")"
say() { printf '\n== %s\n' "$*"; }

docker info >/dev/null 2>&1 || { echo "quickstart: no Docker engine answers (docker info failed); start one first" >&2; exit 1; }
for tool in cmake curl cargo; do
  command -v "$tool" >/dev/null || { echo "quickstart: $tool is missing (Debian: apt-get install ${tool/cargo/rustup})" >&2; exit 1; }
done
target_dir="${CARGO_TARGET_DIR:-target}"
bin="$target_dir/debug"
port="${FAASO_QUICKSTART_PORT:-8888}"

say "building faaso and faaso-gateway (a debug build; the first one compiles about 350 crates)"
cargo build --locked -p faaso-cli -p faaso-gateway

say "building the example funko: a static executable, then the image faaso-welcome"
triple="$(rustc -vV | sed -n 's/^host: //p')"
RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build --locked --release -p faaso-example-welcome --target "$triple"
cp "$target_dir/$triple/release/welcome" examples/welcome/funko
"$bin/faaso" --local build examples/welcome

if curl -fsS -o /dev/null "http://127.0.0.1:$port/healthz" 2>/dev/null; then
  say "a gateway already answers on :$port"
else
  say "starting the gateway on :$port (log: $target_dir/quickstart-gateway.log)"
  FAASO_LISTEN="0.0.0.0:$port" nohup "$bin/faaso-gateway" >"$target_dir/quickstart-gateway.log" 2>&1 &
  echo $! >"$target_dir/quickstart-gateway.pid"
  for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "http://127.0.0.1:$port/healthz" 2>/dev/null && break
    sleep 0.1
  done
fi

say "starting welcome and calling it through the gateway"
"$bin/faaso" --local up welcome
curl -fsS "http://127.0.0.1:$port/funko/welcome/?name=you"
echo
cat <<MSG

FaaSO runs: the gateway on :$port, funko welcome behind it.
  curl 'localhost:$port/funko/welcome/?name=you'
  export PATH="\$PWD/$bin:\$PATH"      # then: faaso status, faaso logs welcome, the tour in README.md
  kill \$(cat $target_dir/quickstart-gateway.pid)      # stops the gateway (faaso down welcome stops the funko)
MSG
