#!/usr/bin/env bash
# Builds critest and crictl from sigs.k8s.io/cri-tools through the Go module proxy into a cache outside the repo.
# Usage: scripts/build-cri-tools.sh            (prints the bin directory on stdout)
# The version matches api-spec/cri-api-v*.proto (k8s.io/cri-api of the same Kubernetes minor).
set -euo pipefail
CRI_TOOLS_VERSION="${CRI_TOOLS_VERSION:-v1.37.0}"
CACHE="${BERTH_TOOLS_CACHE:-/var/cache/berth-tools}"
BIN="$CACHE/cri-tools-$CRI_TOOLS_VERSION/bin"
if [[ -x "$BIN/critest" && -x "$BIN/crictl" ]]; then echo "$BIN"; exit 0; fi
mkdir -p "$BIN"
export GOBIN="$BIN" GOFLAGS="${GOFLAGS:--buildvcs=false}"
export GOCACHE="${GOCACHE:-$CACHE/go-build}" GOMODCACHE="${GOMODCACHE:-$CACHE/go-mod}"
go install "sigs.k8s.io/cri-tools/cmd/crictl@$CRI_TOOLS_VERSION" >&2
# critest is a Ginkgo test binary (cmd/critest has only _test.go files): compiled with `go test -c` inside the
# module as the proxy served it (a writable copy: the module cache is read-only).
go mod download "sigs.k8s.io/cri-tools@$CRI_TOOLS_VERSION" >&2
SRC="$CACHE/src/cri-tools-$CRI_TOOLS_VERSION"
if [[ ! -d "$SRC" ]]; then
  mkdir -p "$CACHE/src"
  cp -r "$(go list -m -f '{{.Dir}}' "sigs.k8s.io/cri-tools@$CRI_TOOLS_VERSION")" "$SRC.tmp"
  chmod -R u+w "$SRC.tmp"
  mv "$SRC.tmp" "$SRC"
fi
(cd "$SRC" && GOFLAGS="$GOFLAGS -mod=mod" go test -c -o "$BIN/critest" ./cmd/critest) >&2
echo "$BIN"
