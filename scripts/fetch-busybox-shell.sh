#!/usr/bin/env bash
# Fetches Debian's dynamically linked busybox (package `busybox`, which conflicts with the installed
# busybox-static) through apt into a cache outside the repo, and prints the binary's path.
# The CRI test images use it as /bin/sh: busybox-static's sh runs applets in-process (FEATURE_SH_STANDALONE),
# this one execs external commands through PATH as upstream busybox images do (critest's MaskedPaths spec
# masks /bin/ls and expects `sh -c ls` to fail exec with EACCES).
set -euo pipefail
CACHE="${BERTH_TOOLS_CACHE:-/var/cache/berth-tools}/busybox-deb"
BIN="$CACHE/root/bin/busybox"
if [[ -x "$BIN" ]]; then echo "$BIN"; exit 0; fi
mkdir -p "$CACHE"
TMP="$(mktemp -d "$CACHE/dl.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
chmod 755 "$TMP"
(cd "$TMP" && apt-get download busybox >&2)
dpkg-deb -x "$TMP"/busybox_*.deb "$TMP/root"
rm -rf "$CACHE/root"
mv "$TMP/root" "$CACHE/root"
echo "$BIN"
