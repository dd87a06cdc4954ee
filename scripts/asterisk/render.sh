#!/usr/bin/env bash
# Renders Asterisk config templates: every @NAME@ in them is replaced by the environment
# variable NAME. One renderer for the production image (Dockerfile) and the test rig
# (rig.sh), so both run the same files the same way.
#
#   render.sh OUT_DIR TEMPLATE_DIR...     later directories' files replace earlier ones'
#
# A placeholder whose variable is unset is an error naming it (nothing half-rendered is
# left: OUT_DIR gets the files only when all are complete). Values may not hold '|', '\',
# '&' or a newline (they go through sed). ARI_PASSWORD_CRYPT, when not given, is the
# crypt(3) SHA-512 hash of ARI_PASSWORD (ari.conf stores only the hash).
set -euo pipefail

die() { echo "render: $*" >&2; exit 1; }
[ $# -ge 2 ] || die "usage: render.sh OUT_DIR TEMPLATE_DIR..."
out=$1
shift

declare -A files=()
for dir in "$@"; do
  [ -d "$dir" ] || die "not a directory: $dir"
  for f in "$dir"/*.conf; do
    [ -e "$f" ] && files[$(basename "$f")]=$f
  done
done
[ ${#files[@]} -gt 0 ] || die "no *.conf in $*"

if [ -n "${ARI_PASSWORD:-}" ] && [ -z "${ARI_PASSWORD_CRYPT:-}" ]; then
  ARI_PASSWORD_CRYPT=$(openssl passwd -6 "$ARI_PASSWORD")
  export ARI_PASSWORD_CRYPT
fi

names=$(cat "${files[@]}" | grep -o '@[A-Z][A-Z0-9_]*@' | tr -d @ | sort -u || true)
script=()
missing=()
for n in $names; do
  if [ -z "${!n+set}" ]; then
    missing+=("$n")
    continue
  fi
  v=${!n}
  case $v in
    *'|'* | *'\'* | *'&'* | *$'\n'*) die "$n holds a character configs cannot take: '|', '\\', '&' or a newline" ;;
  esac
  script+=(-e "s|@$n@|$v|g")
done
[ ${#missing[@]} -eq 0 ] || die "unset: ${missing[*]} (placeholders of the templates)"

tmp=$(mktemp -d "${out%/}.render.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
for name in "${!files[@]}"; do
  if [ ${#script[@]} -gt 0 ]; then
    sed "${script[@]}" "${files[$name]}" >"$tmp/$name"
  else
    cp "${files[$name]}" "$tmp/$name"
  fi
done
mkdir -p "$out"
cp "$tmp"/*.conf "$out/"
