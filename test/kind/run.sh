#!/usr/bin/env bash
# test/kind/run.sh [IMAGE_TAR [IMAGE_REF]]
#
# Kubernetes end-to-end test in a throwaway kind cluster. Needs Docker, kind and kubectl (so it
# does not run on the project's CI machines, which have none: there it prints "skipped" and
# exits 0).
#
#  1. builds the shim with the repo's Dockerfile (so it links against the same glibc as kind's
#     Debian-based node image) and copies the binary out of the image;
#  2. creates a kind cluster whose node mounts the binary at /usr/local/bin and whose containerd
#     config gets the wasmbox runtime (containerdConfigPatches);
#  3. applies deploy/runtimeclass.yaml, labels the node for its nodeSelector and loads the demo
#     wasm image (an OCI image layout tar) into the node with `kind load image-archive`;
#  4. runs a Pod with runtimeClassName: wasmbox, waits for it to succeed and checks that its log
#     says "hello from wasm";
#  5. deletes the cluster (trap), whatever happened.
#
# IMAGE_TAR: the demo image. Without it the script builds one from test/guests/hello.wat with
#   wasmbox image build --format compat -t docker.io/library/wasmbox-demo:kind -o OUT.tar
# IMAGE_REF: the image's name, default: the `io.containerd.image.name` annotation in the tar's
# index.json.
# Env: KIND_CLUSTER (default wasmbox-e2e), KIND_NODE_IMAGE (kind's default node image if unset),
#      TIMEOUT (seconds for the pod to finish, default 120).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

for tool in docker kind kubectl; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "skipped: docker/kind not available ($tool not found)"
        exit 0
    fi
done
if ! docker info >/dev/null 2>&1; then
    echo "skipped: docker/kind not available (no Docker engine)"
    exit 0
fi

cluster=${KIND_CLUSTER:-wasmbox-e2e}
timeout=${TIMEOUT:-120}
work=$(mktemp -d "${TMPDIR:-/tmp}/wasmbox-kind.XXXXXX")
kubeconfig=$work/kubeconfig
created=false
cleanup() {
    status=$?
    if $created; then
        echo "--- deleting kind cluster $cluster"
        kind delete cluster --name "$cluster" --kubeconfig "$kubeconfig" || true
    fi
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
kctl() { kubectl --kubeconfig "$kubeconfig" "$@"; }

# --- 1. the shim ---------------------------------------------------------------------------------
echo "--- building the shim image (Dockerfile)"
docker build -t wasmbox:kind-test .
cid=$(docker create wasmbox:kind-test)
docker cp "$cid:/usr/local/bin/containerd-shim-wasmbox-v1" "$work/containerd-shim-wasmbox-v1"
docker rm "$cid" >/dev/null

# --- the demo image ------------------------------------------------------------------------------
image_tar=${1:-}
if [ -z "$image_tar" ]; then
    echo "--- building the demo image"
    cargo build --release --workspace --bins
    image_tar=$work/demo-image.tar
    target/release/wasmbox image build --format compat -t docker.io/library/wasmbox-demo:kind \
        --entrypoint /hello.wasm -o "$image_tar" test/guests/hello.wat
fi
image_ref=${2:-$(tar -xOf "$image_tar" index.json \
    | grep -o '"io.containerd.image.name"[[:space:]]*:[[:space:]]*"[^"]*"' | head -n 1 \
    | sed 's/.*"\([^"]*\)"$/\1/')}
[ -n "$image_ref" ] || { echo "cannot tell the image name of $image_tar: pass IMAGE_REF" >&2; exit 1; }
echo "demo image: $image_ref ($image_tar)"

# --- 2. the cluster ------------------------------------------------------------------------------
# kind's node config is containerd config `version = 2` (read by containerd 1.x and 2.x alike),
# so the patch uses that form; no `version` key, so every kind release applies it.
cat > "$work/kind.yaml" <<YAML
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
  - role: control-plane
    extraMounts:
      - hostPath: $work/containerd-shim-wasmbox-v1
        containerPath: /usr/local/bin/containerd-shim-wasmbox-v1
        readOnly: true
containerdConfigPatches:
  - |-
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.wasmbox]
      runtime_type = "io.containerd.wasmbox.v1"
      pod_annotations = ["wasmbox.dev/*"]
YAML
echo "--- creating kind cluster $cluster"
created=true
kind create cluster --name "$cluster" --config "$work/kind.yaml" --kubeconfig "$kubeconfig" \
    --wait 120s ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"}
node=$cluster-control-plane
docker exec "$node" containerd --version
if docker exec "$node" ldd /usr/local/bin/containerd-shim-wasmbox-v1 | grep 'not found'; then
    echo "the shim cannot run on the kind node (missing libraries above)" >&2
    exit 1
fi
docker exec "$node" containerd config dump | grep -q 'runtimes.wasmbox\]' \
    || { echo "the node's containerd has no wasmbox runtime" >&2; exit 1; }

# --- 3. RuntimeClass and image -------------------------------------------------------------------
kctl apply -f deploy/runtimeclass.yaml
# The RuntimeClass schedules to nodes with its handler's label: the patch deploy/daemonset.yaml
# sends, made from the node's containerd config.
docker exec "$node" cat /etc/containerd/config.toml > "$work/node-config.toml"
kctl patch node "$node" --type merge \
    -p "$(target/release/wasmbox node labels --config "$work/node-config.toml")"
kind load image-archive "$image_tar" --name "$cluster"

# --- 4. the pod ----------------------------------------------------------------------------------
cat > "$work/pod.yaml" <<YAML
apiVersion: v1
kind: Pod
metadata:
  name: wasmbox-hello
spec:
  runtimeClassName: wasmbox
  restartPolicy: Never
  containers:
    - name: hello
      image: $image_ref
      imagePullPolicy: Never
YAML
kctl apply -f "$work/pod.yaml"
if ! kctl wait pod/wasmbox-hello --for=jsonpath='{.status.phase}'=Succeeded --timeout="${timeout}s"; then
    kctl describe pod/wasmbox-hello || true
    kctl logs pod/wasmbox-hello || true
    echo "FAIL: the wasm pod did not succeed within ${timeout}s" >&2
    exit 1
fi
logs=$(kctl logs pod/wasmbox-hello)
printf '%s\n' "$logs"
if ! grep -q "hello from wasm" <<<"$logs"; then
    echo "FAIL: the pod's log lacks \"hello from wasm\"" >&2
    exit 1
fi
echo "PASS: kind e2e (runtimeClassName: wasmbox)"
