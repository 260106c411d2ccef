#!/usr/bin/env bash
# fetch-containerd.sh SUITE [DEST]
#
# Fetches containerd from Debian suite SUITE ("trixie" gives containerd 1.7.x, "sid" gives 2.x)
# and unpacks it into DEST, without touching the system: apt runs with a private sources list,
# private lists/cache directories and a private config, and the package is unpacked with
# `dpkg-deb -x` (never installed).
#
# Result: DEST/usr/bin/{containerd,ctr,containerd-shim-runc-v2}. These Go binaries run on
# Debian 12. runc is NOT fetched: trixie's and sid's runc need glibc >= 2.38 and do not run on
# Debian 12; containerd-shim-runc-v2 uses the system's runc (apt-get install runc) from PATH.
#
#   DEST defaults to $WASMBOX_CI_CACHE/containerd-SUITE, and WASMBOX_CI_CACHE defaults to
#   /var/cache/wasmbox-ci. Idempotent: when the binaries are already in DEST it only prints the
#   version. Delete DEST to fetch again.
#
# The mirror is the one this machine's apt already uses for the Debian archive (read from
# /etc/apt/sources.list*); set WASMBOX_DEBIAN_MIRROR=http://host/debian to override it.
set -euo pipefail

usage() { echo "usage: $0 trixie|sid|SUITE [DEST]" >&2; exit 2; }
if [ $# -lt 1 ] || [ $# -gt 2 ]; then usage; fi
suite=$1
case $suite in ''|*[!a-z0-9-]*) usage ;; esac
dest=${2:-${WASMBOX_CI_CACHE:-/var/cache/wasmbox-ci}/containerd-$suite}

bins=(containerd ctr containerd-shim-runc-v2)

have_all() {
    local b
    for b in "${bins[@]}"; do
        [ -x "$dest/usr/bin/$b" ] || return 1
    done
}

print_version() {
    echo "containerd from Debian $suite in $dest/usr/bin:"
    "$dest/usr/bin/containerd" --version
}

if have_all; then
    print_version
    exit 0
fi

# --- the Debian mirror this machine already uses ------------------------------------------------
# shellcheck disable=SC1091
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
mirror=${WASMBOX_DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
    # apt's own parser reads both the one-line (.list) and deb822 (.sources) formats. Pick the
    # repository that serves the release itself (not -security, -updates or a third party).
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
work=$(mktemp -d "${TMPDIR:-/tmp}/wasmbox-fetch-$suite.XXXXXX")
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

echo "fetching containerd from $mirror $suite"
apt_private update --error-on=any >"$work/update.log" 2>&1 || { cat "$work/update.log" >&2; exit 1; }
(cd "$work/debs" && apt_private download containerd) >"$work/download.log" 2>&1 \
    || { cat "$work/download.log" >&2; exit 1; }

# Unpack into a staging dir first so a failed run never leaves a half-filled DEST.
mkdir -p "$(dirname "$dest")"
stage=$(mktemp -d "$(dirname "$dest")/.containerd-$suite.XXXXXX")
trap 'rm -rf "$work" "$stage"' EXIT
for deb in "$work"/debs/*.deb; do
    echo "  $(basename "$deb")"
    dpkg-deb -x "$deb" "$stage"
done
for b in "${bins[@]}"; do
    if [ ! -x "$stage/usr/bin/$b" ]; then
        echo "$0: the $suite packages have no usr/bin/$b" >&2
        exit 1
    fi
done
# Fail here, not in the tests, if the binary cannot run on this system (e.g. a newer glibc).
"$stage/usr/bin/containerd" --version >/dev/null

rm -rf "$dest"
mv "$stage" "$dest"
have_all
print_version
