#!/usr/bin/env bash
# Builds the kubelet (k8s.io/kubernetes/cmd/kubelet) through the Go module proxy into a cache outside the repo,
# for running it in standalone mode against Berth's CRI socket (docs/cri.md, "A real kubelet").
# Usage: scripts/build-kubelet.sh              (prints the kubelet's path on stdout)
# k8s.io/kubernetes cannot be `go install`ed: its go.mod replaces the k8s.io/* staging modules with ./staging,
# which the module zip leaves out. The module is copied and its go.mod pointed at the staging modules the proxy
# serves at the matching v0.<minor>.<patch> instead. 1.34 is the newest minor that still runs on cgroup v1 hosts
# (from 1.35 the kubelet refuses cgroup v1 by default).
set -euo pipefail
. "$(dirname "$0")/lib/go-module.sh"
KUBE_VERSION="${KUBE_VERSION:-v1.34.4}"
CACHE="${BERTH_TOOLS_CACHE:-/var/cache/berth-tools}"
BIN="$CACHE/kubelet-$KUBE_VERSION/bin"
if [[ -x "$BIN/kubelet" ]]; then echo "$BIN/kubelet"; exit 0; fi
mkdir -p "$BIN"
go_env
# every "k8s.io/x v0.0.0" requirement and "=> ./staging/src/k8s.io/x" replacement becomes the proxy's version
point_at_proxy_staging() {
  sed -i -E \
    -e "s#^(\s*k8s\.io/[a-z0-9-]+) v0\.0\.0\$#\1 v0.${KUBE_VERSION#v1.}#" \
    -e "/=> \.\/staging\/src\//d" \
    "$1/go.mod"
  rm -f "$1/go.work" "$1/go.work.sum"
}
SRC="$CACHE/src/kubernetes-$KUBE_VERSION"
go_module_copy "k8s.io/kubernetes" "$KUBE_VERSION" "$SRC" point_at_proxy_staging
(cd "$SRC" && GOFLAGS="$GOFLAGS -mod=mod" go build -o "$BIN/kubelet" ./cmd/kubelet) >&2
echo "$BIN/kubelet"
