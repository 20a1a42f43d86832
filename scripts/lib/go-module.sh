# Sourced by the scripts that build Go tools through the module proxy into the tool cache outside the repo.

# The Go environment of those builds: the local toolchain only, caches under $CACHE.
go_env() {
  export GOFLAGS="${GOFLAGS:--buildvcs=false}" GOTOOLCHAIN=local
  export GOCACHE="${GOCACHE:-$CACHE/go-build}" GOMODCACHE="${GOMODCACHE:-$CACHE/go-mod}"
}

# go_module_copy MODULE VERSION DEST [FIXUP]: a writable copy of the module as the proxy serves it at DEST, made
# once (for modules whose go.mod `go install` refuses: exclude or replace directives). FIXUP, a function, may edit
# the copy (its path is its argument) before it takes DEST's name.
go_module_copy() {
  local module=$1 version=$2 dest=$3 fixup=${4:-}
  go mod download "$module@$version" >&2
  [[ -d "$dest" ]] && return 0
  mkdir -p "$(dirname "$dest")"
  rm -rf "$dest.tmp"
  cp -r "$(go list -m -f '{{.Dir}}' "$module@$version")" "$dest.tmp"
  chmod -R u+w "$dest.tmp"
  [[ -z "$fixup" ]] || "$fixup" "$dest.tmp"
  mv "$dest.tmp" "$dest"
}
