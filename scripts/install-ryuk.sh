#!/usr/bin/env bash
# Puts the testcontainers reaper (Ryuk, github.com/testcontainers/moby-ryuk) into the tool cache, built through the
# Go module proxy with the machine's Go, for the tests that run testcontainers-node with its reaper on.
# Usage: scripts/install-ryuk.sh   (prints the binary's path on stdout; exits 0 without it when the proxy refuses)
# RYUK_VERSION is the version testcontainers-node's default reaper image names (testcontainers/ryuk:0.14.0).
# proxy.golang.org answers 403 "This module version is not available" for this module (v0.13.0 and v0.14.0), so in
# CI the reaper tests are skipped with that reason; a binary placed at the same path by other means is used as is.
set -euo pipefail
RYUK_VERSION="${RYUK_VERSION:-0.14.0}"
CACHE="${BERTH_TOOLS_CACHE:-/var/cache/berth-tools}"
BIN="$CACHE/ryuk/$RYUK_VERSION/ryuk"
if [[ ! -x "$BIN" ]]; then
  export GOFLAGS="${GOFLAGS:--buildvcs=false}" GOTOOLCHAIN=local CGO_ENABLED=0
  export GOCACHE="${GOCACHE:-$CACHE/go-build}" GOMODCACHE="${GOMODCACHE:-$CACHE/go-mod}"
  mkdir -p "$(dirname "$BIN")"
  if ! GOBIN="$(dirname "$BIN")" go install -trimpath -ldflags "-s -w" "github.com/testcontainers/moby-ryuk@v$RYUK_VERSION" >&2; then
    echo "install-ryuk: the Go module proxy did not serve github.com/testcontainers/moby-ryuk@v$RYUK_VERSION; the reaper tests will be skipped" >&2
    exit 0
  fi
  mv "$(dirname "$BIN")/moby-ryuk" "$BIN"
fi
echo "$BIN"
