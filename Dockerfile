# wasmbox shim + node installer image.
#   docker build -t wasmbox .
# The image holds /usr/local/bin/containerd-shim-wasmbox-v1 and the node installer
# /usr/local/bin/wasmbox-install (deploy/install.sh). Used by deploy/daemonset.yaml and
# test/kind/run.sh. The binary needs glibc >= 2.36 and libseccomp2 on the node.

FROM rust:1-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends pkg-config libseccomp-dev protobuf-compiler \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release -p wasmbox-shim \
 && install -D -m 0755 target/release/containerd-shim-wasmbox-v1 /out/containerd-shim-wasmbox-v1 \
 && strip --strip-debug /out/containerd-shim-wasmbox-v1

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libseccomp2 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/containerd-shim-wasmbox-v1 /usr/local/bin/containerd-shim-wasmbox-v1
COPY deploy/install.sh /usr/local/bin/wasmbox-install
COPY deploy/runtimeclass.yaml /usr/local/share/wasmbox/runtimeclass.yaml
# Node installer: mount the node's / at /host, then `wasmbox-install --root /host [--restart]`.
ENTRYPOINT ["/usr/local/bin/wasmbox-install"]
CMD ["--help"]
