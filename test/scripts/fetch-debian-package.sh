#!/usr/bin/env bash
# fetch-debian-package.sh SUITE PACKAGE[,PACKAGE...] DEST BINARY...
#
# Fetches PACKAGE (or several, comma-separated, unpacked into the same DEST) from Debian suite
# SUITE (e.g. `sid`) and unpacks it into DEST without touching the system, the same private way
# as fetch-containerd.sh: apt runs with a private sources list, private lists/cache directories
# and a private config, and the package is unpacked with `dpkg-deb -x` (never installed, no
# dependencies). Each BINARY must then exist as DEST/usr/bin/BINARY (or, when BINARY contains a
# `/`, as DEST/BINARY, e.g. usr/sbin/dockerd) and run here (`version` or `--version` is tried).
# `file:PATH` instead names a file that must exist as DEST/PATH and is not run (a package with
# no program, e.g. a sysroot).
#
#   fetch-debian-package.sh sid oras /var/cache/wasmbox-ci/oras-sid oras
#   fetch-debian-package.sh sid docker.io,docker-cli /var/cache/wasmbox-ci/docker-sid docker usr/sbin/dockerd
#   fetch-debian-package.sh trixie wasi-libc /var/cache/wasmbox-ci/wasi-libc-trixie file:usr/lib/wasm32-wasip2/libc.a
#
# Idempotent: when the binaries are already in DEST nothing is fetched. Delete DEST to fetch
# again. The mirror is the one this machine's apt already uses (read from
# /etc/apt/sources.list*); set WASMBOX_DEBIAN_MIRROR=http://host/debian to override it.
set -euo pipefail

usage() { echo "usage: $0 SUITE PACKAGE[,PACKAGE...] DEST BINARY..." >&2; exit 2; }
if [ $# -lt 4 ]; then usage; fi
suite=$1 package=$2 dest=$3
shift 3
bins=("$@")
case $suite in ''|*[!a-z0-9-]*) usage ;; esac
IFS=, read -r -a packages <<< "$package"
if [ ${#packages[@]} -eq 0 ]; then usage; fi
for p in "${packages[@]}"; do
    case $p in ''|*[!a-z0-9.+-]*) usage ;; esac
done
# The first package names the temp and staging dirs.
package=${packages[0]}

# BINARY's path below a root: usr/bin/BINARY, or BINARY itself when it is a path.
bin_path() {
    case $2 in
        file:*) echo "$1/${2#file:}" ;;
        */*) echo "$1/$2" ;;
        *) echo "$1/usr/bin/$2" ;;
    esac
}

have_all() {
    local b
    for b in "${bins[@]}"; do
        case $b in
            file:*) [ -f "$(bin_path "$dest" "$b")" ] || return 1 ;;
            *) [ -x "$(bin_path "$dest" "$b")" ] || return 1 ;;
        esac
    done
}

if have_all; then
    echo "${packages[*]} from Debian $suite is in $dest"
    exit 0
fi

# --- the Debian mirror this machine already uses ------------------------------------------------
# shellcheck disable=SC1091
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
mirror=${WASMBOX_DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
    # shellcheck disable=SC2016 # $(...) are apt's format fields, not shell expansions
    mirror=$(apt-get indextargets --no-release-info --format '$(REPO_URI) $(RELEASE)' 2>/dev/null \
        | awk -v rel="$codename" '$2 == rel && $1 ~ /^https?:/ { print $1; exit }')
fi
if [ -z "$mirror" ]; then
    echo "$0: cannot find the Debian mirror for '$codename' in /etc/apt/sources.list*;" \
         "set WASMBOX_DEBIAN_MIRROR=http://HOST/debian" >&2
    exit 1
fi
mirror=${mirror%/}

# --- private apt ---------------------------------------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/wasmbox-fetch-$package-$suite.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/debs"

cat > "$work/sources.list" <<SOURCES
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $suite main
SOURCES

# Read after the system's apt.conf.d (apt-get -c), so it also drops the system's hooks: they
# would clean or refresh the system's own caches.
cat > "$work/apt.conf" <<CONF
Dir::Etc::sourcelist "$work/sources.list";
Dir::Etc::sourceparts "-";
Dir::Etc::preferences "/dev/null";
Dir::Etc::preferencesparts "-";
Dir::State::Lists "$work/lists";
Dir::State::status "/dev/null";
Dir::Cache "$work/cache";
APT::Sandbox::User "root";
Acquire::Languages "none";
Acquire::Retries "3";
Acquire::IndexTargets::deb::DEP-11::DefaultEnabled "false";
#clear APT::Update::Post-Invoke;
#clear APT::Update::Post-Invoke-Success;
#clear DPkg::Post-Invoke;
CONF

apt_private() { apt-get -c "$work/apt.conf" -q "$@"; }

echo "fetching ${packages[*]} from $mirror $suite"
apt_private update --error-on=any >"$work/update.log" 2>&1 || { cat "$work/update.log" >&2; exit 1; }
(cd "$work/debs" && apt_private download "${packages[@]}") >"$work/download.log" 2>&1 \
    || { cat "$work/download.log" >&2; exit 1; }

# Unpack into a staging dir first so a failed run never leaves a half-filled DEST.
mkdir -p "$(dirname "$dest")"
stage=$(mktemp -d "$(dirname "$dest")/.$package-$suite.XXXXXX")
trap 'rm -rf "$work" "$stage"' EXIT
for deb in "$work"/debs/*.deb; do
    echo "  $(basename "$deb")"
    dpkg-deb -x "$deb" "$stage"
done
for b in "${bins[@]}"; do
    path=$(bin_path "$stage" "$b")
    case $b in
        file:*)
            if [ ! -f "$path" ]; then
                echo "$0: the $suite packages ${packages[*]} have no ${path#"$stage"/}" >&2
                exit 1
            fi
            continue ;;
    esac
    if [ ! -x "$path" ]; then
        echo "$0: the $suite packages ${packages[*]} have no ${path#"$stage"/}" >&2
        exit 1
    fi
    # Fail here, not in the tests, if the binary cannot run on this system (e.g. a newer glibc).
    "$path" version >/dev/null 2>&1 || "$path" --version >/dev/null 2>&1 || {
        echo "$0: $path does not run here" >&2
        exit 1
    }
done

rm -rf "$dest"
mv "$stage" "$dest"
have_all
echo "${packages[*]} from Debian $suite is in $dest"
