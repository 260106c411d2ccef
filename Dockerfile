# wasmbox shim + node installer image.
#   docker build -t wasmbox .
# The image holds /usr/local/bin/containerd-shim-wasmbox-v1 and the `wasmbox` CLI, whose
# `wasmbox node install` is the entrypoint: with the node's / mounted at /host,
#   wasmbox node install --root /host
# installs the shim and adds the runtime to the node's containerd (see README, "Installing on a
# node"). Used by deploy/daemonset.yaml and test/kind/run.sh. Both binaries need glibc >= 2.36;
# the shim also libseccomp2 on the node.

FROM rust:1-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends pkg-config libseccomp-dev protobuf-compiler \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Debug info dropped (symbols kept for backtraces): 196 -> 42 MB for the shim, see
# docs/performance.md.
RUN cargo build --release -p wasmbox-shim -p wasmbox-cli \
 && install -D -m 0755 target/release/containerd-shim-wasmbox-v1 /out/containerd-shim-wasmbox-v1 \
 && install -D -m 0755 target/release/wasmbox /out/wasmbox \
 && strip --strip-debug /out/containerd-shim-wasmbox-v1 /out/wasmbox

FROM debian:bookworm-slim
# curl: the DaemonSet labels its node with it (one PATCH with the pod's service account token),
# a few MB instead of a kubectl image or an HTTPS client in the installer.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libseccomp2 curl \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/containerd-shim-wasmbox-v1 /out/wasmbox /usr/local/bin/
COPY deploy/runtimeclass.yaml /usr/local/share/wasmbox/runtimeclass.yaml
ENTRYPOINT ["/usr/local/bin/wasmbox", "node", "install"]
