#!/usr/bin/env bash
# Builds (or reuses) the Debian sid chroot that runs the test/demo Asterisk.
# Debian bookworm ships no Asterisk, and sid's binaries need a newer libc, hence a chroot.
#
# The root is cached in ${TOLLGATE_CACHE:-/var/cache/tollgate}/asterisk-root and keyed by a
# hash of what goes into it; it is rebuilt only when that changes or the root is incomplete.
# It is built in a temporary directory and renamed into place, and the stamp that marks it
# complete is written last, so an interrupted build never looks complete.
#
# Prints the root's path on stdout (everything else goes to stderr). Needs root.
set -euo pipefail

cache_dir=${TOLLGATE_CACHE:-/var/cache/tollgate}
root="$cache_dir/asterisk-root"
suite=sid
variant=minbase
packages=asterisk,asterisk-modules
# Empty means debootstrap's own default mirror for Debian.
mirror=${TOLLGATE_DEBIAN_MIRROR:-}
stamp_name=.tollgate-root-key

log() { echo "build-root: $*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  log "must run as root (debootstrap and chroot need it)"
  exit 1
fi

# Bump the trailing version when the post-install steps below change.
key=$(printf '%s\n' "$suite" "$variant" "$packages" "$mirror" "post-install-v1" | sha256sum | cut -c1-16)

is_complete() {
  [ -f "$1/$stamp_name" ] && [ "$(cat "$1/$stamp_name")" = "$key" ] \
    && [ -x "$1/usr/sbin/asterisk" ] && [ -d "$1/usr/lib/x86_64-linux-gnu/asterisk/modules" ]
}

# Unmounts whatever a rig left mounted below a root (e.g. /proc) so it can be deleted safely.
unmount_below() {
  local dir mnt
  dir=$(realpath -m "$1")
  # Deepest first.
  awk -v d="$dir" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/self/mounts | sort -r |
    while read -r mnt; do umount -l "$mnt" || true; done
}

remove_root() {
  [ -e "$1" ] || return 0
  unmount_below "$1"
  # --one-file-system: never descend into anything that is still mounted.
  rm -rf --one-file-system "$1"
}

if is_complete "$root"; then
  log "cached root is up to date ($key)"
  echo "$root"
  exit 0
fi

need=()
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
command -v sipp >/dev/null 2>&1 || need+=(sip-tester)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi

mkdir -p "$cache_dir"
# Only one build at a time; a second caller waits and then finds the root complete.
exec 9>"$cache_dir/.asterisk-root.lock"
flock 9
if is_complete "$root"; then
  echo "$root"
  exit 0
fi

# Leftovers of interrupted builds.
for old in "$cache_dir"/asterisk-root.tmp.*; do
  [ -e "$old" ] && remove_root "$old"
done

tmp="$cache_dir/asterisk-root.tmp.$$"
trap 'remove_root "$tmp"' EXIT
log "debootstrap $suite ($variant, +$packages) into $tmp; takes about a minute"
args=(--variant="$variant" --include="$packages" "$suite" "$tmp")
[ -n "$mirror" ] && args+=("$mirror")
if ! debootstrap "${args[@]}" >"$cache_dir/debootstrap.log" 2>&1; then
  log "debootstrap failed; last lines of $cache_dir/debootstrap.log:"
  tail -n 20 "$cache_dir/debootstrap.log" >&2
  exit 1
fi

# Name resolution inside the chroot is the host's (same network namespace).
cp /etc/hosts /etc/resolv.conf "$tmp/etc/" 2>/dev/null || true
# Device nodes Asterisk and its libraries open; debootstrap normally creates them, but not
# inside some containers.
for spec in "null c 1 3" "zero c 1 5" "random c 1 8" "urandom c 1 9"; do
  set -- $spec
  [ -c "$tmp/dev/$1" ] || { rm -f "$tmp/dev/$1"; mknod -m 666 "$tmp/dev/$1" "$2" "$3" "$4"; }
done
mkdir -p "$tmp/proc" "$tmp/tollgate-run"
[ -x "$tmp/usr/sbin/asterisk" ] || { log "asterisk binary missing after debootstrap"; exit 1; }
chroot "$tmp" /usr/sbin/asterisk -V >&2

echo "$key" >"$tmp/$stamp_name"
sync -f "$tmp/$stamp_name" 2>/dev/null || true
remove_root "$root"
mv "$tmp" "$root"
trap - EXIT
log "root ready: $root"
echo "$root"
