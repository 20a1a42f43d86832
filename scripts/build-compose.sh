#!/usr/bin/env bash
# Builds the docker compose CLI plugin (github.com/docker/compose) through the Go module proxy with the machine's
# Go into a cache outside the repo, and installs it as a docker CLI plugin.
# Usage: scripts/build-compose.sh [<docker config dir>]   (prints the plugin's path on stdout)
#   The plugin is linked into <docker config dir>/cli-plugins (default: $DOCKER_CONFIG, else ~/.docker).
# COMPOSE_VERSION picks the release: the newest the proxy serves whose go.mod the local Go accepts (v5.7.x wants
# Go 1.26.10+, so v5.6.0 on Go 1.26.8). Its go.mod has exclude directives, so `go install pkg@version` refuses it:
# the module is built from a writable copy of what the proxy served.
set -euo pipefail
. "$(dirname "$0")/lib/go-module.sh"
COMPOSE_VERSION="${COMPOSE_VERSION:-v5.6.0}"
CACHE="${BERTH_TOOLS_CACHE:-/var/cache/berth-tools}"
BIN="$CACHE/compose-$COMPOSE_VERSION/bin"
PLUGIN_DIR="${1:-${DOCKER_CONFIG:-$HOME/.docker}}/cli-plugins"
if [[ ! -x "$BIN/docker-compose" ]]; then
  major="${COMPOSE_VERSION%%.*}"
  module="github.com/docker/compose/$major"
  go_env
  SRC="$CACHE/src/compose-$COMPOSE_VERSION"
  go_module_copy "$module" "$COMPOSE_VERSION" "$SRC"
  mkdir -p "$BIN"
  (cd "$SRC" && GOFLAGS="$GOFLAGS -mod=mod" CGO_ENABLED=0 go build -trimpath \
    -ldflags "-s -w -X $module/internal.Version=$COMPOSE_VERSION" -o "$BIN/docker-compose.tmp" ./cmd) >&2
  mv "$BIN/docker-compose.tmp" "$BIN/docker-compose"
fi
mkdir -p "$PLUGIN_DIR"
ln -sf "$BIN/docker-compose" "$PLUGIN_DIR/docker-compose"
echo "$PLUGIN_DIR/docker-compose"
