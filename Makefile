# wasmbox: `make demo` to see it work, `make test` for everything CI runs.
# Needs Debian 12 (or similar), root for demo/test/install, and a Rust toolchain (rustup).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
# One step at a time, in the order written: each stage reuses what the previous one built.
.NOTPARALLEL:
.DELETE_ON_ERROR:

# cargo from rustup, even when the caller's PATH lacks ~/.cargo/bin (CI, sudo).
export PATH := $(or $(CARGO_HOME),$(HOME)/.cargo)/bin:$(PATH)

CARGO  ?= cargo
PREFIX ?= /usr/local
SHIM   := target/release/containerd-shim-wasmbox-v1
CLI    := target/release/wasmbox
# Where fetch-containerd.sh unpacks containerd 1.7 (Debian trixie) and 2.x (Debian sid).
export WASMBOX_CI_CACHE ?= /var/cache/wasmbox-ci
CONTAINERD_1_7 := $(WASMBOX_CI_CACHE)/containerd-trixie
CONTAINERD_2   := $(WASMBOX_CI_CACHE)/containerd-sid
# oras (Debian sid) for the Wasm artifact round trip of the integration suite, unpacked the same
# private way (test/scripts/fetch-debian-package.sh); the tests find it through WASMBOX_ORAS.
ORAS_DIR := $(WASMBOX_CI_CACHE)/oras-sid
export WASMBOX_ORAS ?= $(ORAS_DIR)/usr/bin/oras
# The private registry of the image round trips: Debian's docker-registry, unpacked the same way
# (installing the package would enable a registry service on :5000 on a systemd host). The tests
# start it on 127.0.0.1 with their own config and stop it (test/src/registry.rs).
REGISTRY_DIR := $(WASMBOX_CI_CACHE)/docker-registry-bookworm
export WASMBOX_REGISTRY ?= $(REGISTRY_DIR)/usr/bin/docker-registry
# Docker Engine for `docker run --runtime io.containerd.wasmbox.v1` (test/tests/docker.rs): Debian
# sid's docker.io (dockerd) and docker-cli, unpacked the same way, never installed (the package
# would enable a system dockerd). sid's 28.x rather than trixie's 26.x: 26 does not tell
# containerd a container's image, so wasm-layer images cannot run through it. The tests start a
# private dockerd on their private containerd and stop it (test/src/docker.rs).
DOCKER_DIR := $(WASMBOX_CI_CACHE)/docker-sid
export WASMBOX_DOCKER_DIR ?= $(DOCKER_DIR)
# The wasm32-wasip2 sysroot of the guests that use wasi:sockets (test/src/guests.rs): Debian
# trixie's wasi-libc, unpacked the same way (Debian 12's is preview 1 only, without sockets).
WASI_LIBC_DIR := $(WASMBOX_CI_CACHE)/wasi-libc-trixie
export WASMBOX_WASIP2_SYSROOT ?= $(WASI_LIBC_DIR)/usr

# CNI plugins (bridge, host-local, loopback) for the CRI tests whose pods have a network of their
# own and a pod IP: Debian's containernetworking-plugins, unpacked the same way; the tests
# point their containerd's CRI at them (test/src/cri.rs) and remove the bridge they made.
CNI_DIR := $(WASMBOX_CI_CACHE)/cni-bookworm
export WASMBOX_CNI_DIR ?= $(CNI_DIR)/usr/lib/cni

# Every cargo command selects the whole workspace: the same package selection means the same
# feature set, so Wasmtime and the rest are compiled once and reused by every stage.
INTEGRATION := $(CARGO) test --release --workspace --no-fail-fast --test '*' -- --test-threads=2

.PHONY: all deps root build build-demo demo try test unit-test \
        integration-1.6 integration-1.7 integration-2 bench install clean

all: build

deps:
	test/scripts/install-deps.sh

root:
	@test "$$(id -u)" -eq 0 || { echo "this target needs root: it starts containerd and containers" >&2; exit 1; }

build:
	$(CARGO) build --release --workspace --bins
	$(CARGO) test --release --workspace --no-run

# Only what the demo runs: the shim and the demo driver (the first build takes ~10 minutes on
# 2 cores; `build` also compiles every test binary and the bench). The whole workspace is
# selected, as by every other stage, so features resolve the same: the shim built here is the
# one `build` makes, and the next stage rebuilds nothing.
build-demo:
	$(CARGO) build --release --workspace --bin containerd-shim-wasmbox-v1 --bin wasmbox-demo

demo: root deps build-demo
	target/release/wasmbox-demo

# The demo, then its private containerd stays up (with the ctr commands to use) until Ctrl-C.
try: root deps build-demo
	target/release/wasmbox-demo --keep

test: root deps build unit-test integration-1.6 integration-1.7 integration-2
	$(call skipped,1.6)
	$(call skipped,1.7)
	$(call skipped,2.x)
	@echo "=== all tests passed (unit; integration on containerd 1.6, 1.7 and 2.x) ==="

unit-test:
	@echo "=== unit tests ==="
	$(CARGO) test --release --workspace --lib --bins
	$(CARGO) test --release --workspace --doc

# $(call header,LABEL,DIR): one clear line naming the containerd under test.
header = @echo; echo "=== integration tests: containerd $(1): $$($(2)/containerd --version) ==="

# Tests that skip (all or part of their checks: what an older containerd cannot do) count as
# passed in cargo's summary; each writes a line to target/skipped-<stage>.txt, shown after its
# stage and again at the end of `make test`.
skipped_log = $(CURDIR)/target/skipped-$(1).txt
skipped = @if [ -s $(call skipped_log,$(1)) ]; then \
	echo "--- skipped on containerd $(1) ($$(wc -l < $(call skipped_log,$(1))) tests, counted as passed above):"; \
	sort $(call skipped_log,$(1)) | sed 's/^/    /'; \
	else echo "--- nothing skipped on containerd $(1)"; fi

integration-1.6:
	$(call header,1.6 (system),/usr/bin)
	@rm -f $(call skipped_log,1.6)
	WASMBOX_SKIPPED_LOG=$(call skipped_log,1.6) WASMBOX_CONTAINERD_DIR=/usr/bin $(INTEGRATION)
	$(call skipped,1.6)

integration-1.7:
	test/scripts/fetch-containerd.sh trixie $(CONTAINERD_1_7)
	$(call header,1.7 (Debian trixie),$(CONTAINERD_1_7)/usr/bin)
	@rm -f $(call skipped_log,1.7)
	WASMBOX_SKIPPED_LOG=$(call skipped_log,1.7) WASMBOX_CONTAINERD_DIR=$(CONTAINERD_1_7)/usr/bin $(INTEGRATION)
	$(call skipped,1.7)

integration-2:
	test/scripts/fetch-containerd.sh sid $(CONTAINERD_2)
	$(call header,2.x (Debian sid),$(CONTAINERD_2)/usr/bin)
	@rm -f $(call skipped_log,2.x)
	WASMBOX_SKIPPED_LOG=$(call skipped_log,2.x) WASMBOX_CONTAINERD_DIR=$(CONTAINERD_2)/usr/bin $(INTEGRATION)
	$(call skipped,2.x)

.PHONY: oras registry docker wasi-libc cni
oras:
	test/scripts/fetch-debian-package.sh sid oras $(ORAS_DIR) oras

registry:
	test/scripts/fetch-debian-package.sh bookworm docker-registry $(REGISTRY_DIR) docker-registry

docker:
	test/scripts/fetch-debian-package.sh sid docker.io,docker-cli $(DOCKER_DIR) docker usr/sbin/dockerd

wasi-libc:
	test/scripts/fetch-debian-package.sh trixie wasi-libc $(WASI_LIBC_DIR) file:usr/lib/wasm32-wasip2/libc.a

cni:
	test/scripts/fetch-debian-package.sh bookworm containernetworking-plugins $(CNI_DIR) file:usr/lib/cni/bridge file:usr/lib/cni/host-local file:usr/lib/cni/loopback

integration-1.6 integration-1.7 integration-2: oras registry docker wasi-libc cni

bench:
	@if [ -x bench/run.sh ]; then $(MAKE) build && bench/run.sh; else echo "bench: not yet (bench/run.sh does not exist)"; fi

install:
	@test -x $(SHIM) || { echo "install: $(SHIM) is missing, run 'make build' first" >&2; exit 1; }
	@test -x $(CLI) || { echo "install: $(CLI) is missing, run 'make build' first" >&2; exit 1; }
	@# Without debug info (226 MB -> 48 MB; symbols stay for backtraces), see docs/performance.md.
	install -D -m 0755 $(SHIM) $(DESTDIR)$(PREFIX)/bin/containerd-shim-wasmbox-v1
	install -D -m 0755 $(CLI) $(DESTDIR)$(PREFIX)/bin/wasmbox
	strip --strip-debug $(DESTDIR)$(PREFIX)/bin/containerd-shim-wasmbox-v1 $(DESTDIR)$(PREFIX)/bin/wasmbox
	@echo "installed $(DESTDIR)$(PREFIX)/bin/containerd-shim-wasmbox-v1 and wasmbox; now 'wasmbox node install' adds the runtime to containerd's config (README)"

clean:
	$(CARGO) clean
