#!/usr/bin/env bash
# Local base images for the runtimes' builds, made from Debian's packages on a host that reaches
# no container registry (CI, or an air-gapped build host): a Debian 12 root filesystem made by
# debootstrap, imported into Docker four times:
#
#   faaso-ci/debian:bookworm   the run stage of axum (debian:bookworm-slim's place)
#   faaso-ci/python:bookworm   flask: python3 with venv (python:3.12-slim's place)
#   faaso-ci/node:bookworm     express: nodejs with Debian's Express (node-express), NODE_PATH
#                              set, so the build needs no npm registry (node:22-slim's place)
#   faaso-ci/rust:bookworm     axum's build stage: gcc and this host's Rust toolchain (Debian 12's
#                              rustc is older than axum needs) (rust:1-bookworm's place)
#
# The runtimes take them through FAASO_BASE_IMAGE_<RUNTIME> (see README, "Air-gapped builds").
# Each image trusts the host's extra certificate authorities (/usr/local/share/ca-certificates),
# so pip and cargo inside a build reach PyPI and crates.io the way the host does. Images that
# exist with this script's recipe hash are kept; run with FORCE=1 to make them again.
set -euo pipefail
cd "$(dirname "$0")/.."

mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
recipe="$(sha256sum .ci/base-images.sh | cut -c1-16)"
images=(debian python node rust)

current() {
  [ "$(docker image inspect -f '{{index .Config.Labels "faaso.ci.recipe"}}' "faaso-ci/$1:bookworm" 2>/dev/null)" = "$recipe" ]
}
if [ -z "${FORCE:-}" ]; then
  all=1
  for image in "${images[@]}"; do current "$image" || all=0; done
  if [ "$all" = 1 ]; then
    echo "base images are current (recipe $recipe)"
    exit 0
  fi
fi

command -v debootstrap >/dev/null || {
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap
}

work="$(mktemp -d /var/tmp/faaso-base.XXXXXX)"
trap 'umount -R "$work"/*/proc 2>/dev/null || true; rm -rf "$work"' EXIT

echo "debootstrap bookworm (minbase) from $mirror"
debootstrap --variant=minbase --include=ca-certificates bookworm "$work/base" "$mirror" \
  >"$work/debootstrap.log" 2>&1 || { tail -n 30 "$work/debootstrap.log"; exit 1; }
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  cp /usr/local/share/ca-certificates/*.crt "$work/base/usr/local/share/ca-certificates/"
fi
chroot "$work/base" update-ca-certificates >/dev/null

# make <name> <packages...> -- <docker import --change args...>: a copy of the base with the
# packages, imported as faaso-ci/<name>:bookworm.
make_image() {
  local name="$1"; shift
  local packages=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do packages+=("$1"); shift; done
  shift
  local root="$work/$name"
  cp -a "$work/base" "$root"
  if [ ${#packages[@]} -gt 0 ]; then
    mount -t proc proc "$root/proc"
    chroot "$root" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive chroot "$root" apt-get install -y -qq --no-install-recommends \
      "${packages[@]}" >"$work/$name-apt.log" 2>&1 || { tail -n 30 "$work/$name-apt.log"; exit 1; }
    chroot "$root" apt-get clean
    umount "$root/proc"
  fi
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
  if [ "$name" = rust ]; then
    # This host's toolchain (compiler and standard library, no documentation).
    local sysroot
    sysroot="$(rustc --print sysroot)"
    cp -a "$sysroot/bin/rustc" "$sysroot/bin/cargo" "$root/usr/local/bin/"
    cp -a "$sysroot/lib/." "$root/usr/local/lib/"
    chroot "$root" ldconfig
  fi
  tar -C "$root" -c . | docker import "$@" \
    --change "LABEL faaso.ci.recipe=$recipe" \
    --change 'CMD ["/bin/bash"]' \
    - "faaso-ci/$name:bookworm" >/dev/null
  echo "made faaso-ci/$name:bookworm ($(docker image inspect -f '{{.Size}}' "faaso-ci/$name:bookworm" | awk '{printf "%.0f MB", $1/1e6}'))"
  rm -rf "$root"
}

make_image debian -- --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
make_image python python3 python3-venv -- \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt'
make_image node nodejs node-express -- \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV NODE_PATH=/usr/share/nodejs'
make_image rust gcc libc6-dev -- \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV CARGO_HOME=/usr/local/cargo'
