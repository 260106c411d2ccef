#!/usr/bin/env bash
# install.sh: installs the wasmbox shim on a containerd node.
#
#  1. copies containerd-shim-wasmbox-v1 to PREFIX/bin (default /usr/local/bin, which is on
#     containerd's PATH; containerd finds shims on its PATH);
#  2. adds the `wasmbox` runtime (runtime_type io.containerd.wasmbox.v1) to containerd's config
#     if it is not there yet, after a backup (CONFIG.wasmbox-backup.TIMESTAMP). The snippet follows
#     the config's `version`: 2 (containerd 1.x, also read by 2.x) or 3 (containerd 2.x);
#  3. restarts containerd with --restart (systemd only), or tells you to.
# Idempotent: running it again only refreshes the binary.
#
# Usage: install.sh [--restart] [--binary FILE] [--prefix DIR] [--config FILE] [--root DIR]
#                   [--containerd-version 1|2]
#   --root DIR   the node's filesystem is mounted at DIR (node-installer image: --root /host);
#                --prefix and --config are inside it.
#   --containerd-version  only needed when there is no config yet and `containerd --version`
#                cannot be run.
# Then, for Kubernetes: kubectl apply -f deploy/runtimeclass.yaml
set -euo pipefail

shim=containerd-shim-wasmbox-v1
root=/
prefix=/usr/local
config=/etc/containerd/config.toml
binary=
restart=false
cversion=

die() { echo "install.sh: $*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit "${1:-0}"; }

while [ $# -gt 0 ]; do
    case $1 in
        --restart) restart=true ;;
        --binary) binary=${2:?}; shift ;;
        --prefix) prefix=${2:?}; shift ;;
        --config) config=${2:?}; shift ;;
        --root) root=${2:?}; shift ;;
        --containerd-version) cversion=${2:?}; shift ;;
        -h|--help) usage 0 ;;
        *) echo "install.sh: unknown argument $1" >&2; usage 2 ;;
    esac
    shift
done
[ "$(id -u)" -eq 0 ] || die "run as root"
root=${root%/}
dest_dir=$root$prefix/bin
dest=$dest_dir/$shim
config_path=$root$config

# --- 1. the binary -----------------------------------------------------------------------------
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ -z "$binary" ]; then
    for c in "$here/$shim" "$here/../target/release/$shim" "/usr/local/bin/$shim"; do
        if [ -x "$c" ]; then binary=$c; break; fi
    done
fi
if [ -z "$binary" ] || [ ! -x "$binary" ]; then
    die "no $shim found; build it (make build) or pass --binary FILE"
fi

mkdir -p "$dest_dir"
if [ "$(readlink -f "$binary")" = "$(readlink -f "$dest" 2>/dev/null || true)" ]; then
    echo "binary: $dest (already in place)"
else
    # Copy then rename: running shims keep their (old) inode, no "text file busy".
    cp "$binary" "$dest.tmp.$$"
    chmod 0755 "$dest.tmp.$$"
    mv -f "$dest.tmp.$$" "$dest"
    echo "binary: installed $dest"
fi

# --- 2. containerd's config --------------------------------------------------------------------
snippet_v2='[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.wasmbox]
  runtime_type = "io.containerd.wasmbox.v1"'
snippet_v3='[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.wasmbox]
  runtime_type = "io.containerd.wasmbox.v1"'

# The top-level `version = N` of a containerd config (empty when absent).
config_version() {
    awk '/^[[:space:]]*\[/ { exit }
         /^[[:space:]]*version[[:space:]]*=/ { sub(/^[^=]*=[[:space:]]*/, ""); sub(/[^0-9].*$/, ""); print; exit }' "$1"
}

# The major version of the node's containerd, from `containerd --version`.
containerd_major() {
    if [ -n "$cversion" ]; then echo "${cversion%%.*}"; return; fi
    local bin out
    for bin in "$root/usr/local/bin/containerd" "$root/usr/bin/containerd"; do
        if [ -x "$bin" ] && out=$("$bin" --version 2>/dev/null); then
            # "containerd github.com/containerd/containerd[/v2] [v]X.Y.Z ..."
            out=$(echo "$out" | awk '{ print $3 }')
            out=${out#v}
            echo "${out%%.*}"
            return
        fi
    done
}

if [ -f "$config_path" ] && grep -Eq '\.runtimes\."?wasmbox"?\][[:space:]]*$' "$config_path"; then
    echo "config: $config_path already has the wasmbox runtime"
else
    if [ -s "$config_path" ]; then
        version=$(config_version "$config_path")
    else
        major=$(containerd_major)
        case $major in
            1) version=2 ;;
            2) version=3 ;;
            *) die "no $config_path and cannot tell containerd's version: pass --containerd-version 1|2" ;;
        esac
    fi
    case $version in
        2) snippet=$snippet_v2 ;;
        3) snippet=$snippet_v3 ;;
        *) die "$config_path has config version '${version:-1}'; only version 2 (containerd 1.x/2.x)
  and 3 (containerd 2.x) are supported. Regenerate it with 'containerd config default', or add
  deploy/containerd-config-1.x.toml / -2.x.toml by hand" ;;
    esac
    mkdir -p "$(dirname "$config_path")"
    if [ -s "$config_path" ]; then
        backup=$config_path.wasmbox-backup.$(date +%Y%m%d%H%M%S)
        cp -p "$config_path" "$backup"
        echo "config: backup in $backup"
        printf '\n# Added by wasmbox install.sh\n%s\n' "$snippet" >> "$config_path"
    else
        printf 'version = %s\n\n# Added by wasmbox install.sh\n%s\n' "$version" "$snippet" > "$config_path"
    fi
    echo "config: added the wasmbox runtime (config version $version) to $config_path"
fi

# --- 3. restart containerd ---------------------------------------------------------------------
# From the node-installer container (--root), systemctl runs in the host's mount namespace.
host=()
[ "$root" = "" ] || host=(nsenter --target 1 --mount --)
if $restart; then
    if "${host[@]}" test -d /run/systemd/system && "${host[@]}" systemctl --version >/dev/null 2>&1; then
        "${host[@]}" systemctl restart containerd
        echo "containerd restarted"
    else
        echo "no systemd here: restart containerd yourself to load the new runtime" >&2
    fi
else
    echo "now restart containerd (e.g. 'systemctl restart containerd') to load the wasmbox runtime"
fi
echo "Kubernetes: kubectl apply -f deploy/runtimeclass.yaml, then use runtimeClassName: wasmbox"
