#!/usr/bin/env bash
# install-deps.sh: installs from Debian's archive what building wasmbox and running its tests
# need on Debian 12 (bookworm). Idempotent: only missing packages are installed, and
# `apt-get update` runs once, only when something is missing. Needs root when it installs.
#
# Rust is not a Debian package here: `cargo` must already be installed (rustup).
set -euo pipefail

packages=(
    # building the shim (libcontainer with seccomp, ttrpc protobufs)
    build-essential pkg-config libseccomp-dev protobuf-compiler libprotobuf-dev
    # the system containerd (1.6) and runc the integration tests run against
    containerd runc
    # C guest programs: clang --target=wasm32-wasi
    clang lld wasi-libc libclang-rt-dev-wasm32
    # tests and fetch-containerd.sh (docker-registry and oras are unpacked privately by `make
    # test`, never installed: the package would enable a registry service on a systemd host)
    iproute2 git ca-certificates curl
)

installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

missing=()
for p in "${packages[@]}"; do
    installed "$p" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: all ${#packages[@]} Debian packages are installed"
else
    echo "install-deps: installing ${missing[*]}"
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-deps: must run as root to install: ${missing[*]}" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# cargo: on PATH, or where rustup puts it.
if ! command -v cargo >/dev/null 2>&1 && [ ! -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]; then
    cat >&2 <<'MSG'
install-deps: cargo (Rust) is not installed.
  Install the Rust toolchain with rustup (https://rustup.rs), then re-run:
      curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh
  Debian 12's own rustc is too old for wasmbox (it needs Rust 1.85 or newer).
MSG
    exit 1
fi
echo "install-deps: $(PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH" cargo --version)"
