#!/usr/bin/env bash
# Makes a busybox image from Debian's busybox-static (no network needed) and loads it with `docker load`,
# so a fresh Berth can run `docker run --rm busybox echo hello` on a machine without internet access.
#
#   scripts/load-busybox.sh [--tag NAME:TAG] [--output FILE]
#
# --tag     image name (default busybox:latest)
# --output  write the `docker save`-format archive to FILE instead of loading it
# The docker CLI talks to whatever DOCKER_HOST / the current context names (Berth: unix:///run/berth/docker.sock).
# Running it twice gives the same image ID: the archive is built deterministically.
set -euo pipefail

tag=busybox:latest
output=
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) tag=${2:?--tag needs a value}; shift 2 ;;
    --output) output=${2:?--output needs a value}; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "load-busybox.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$tag" in *:*) ;; *) tag="$tag:latest" ;; esac

busybox=
for candidate in /bin/busybox /usr/bin/busybox; do
  if [ -x "$candidate" ] && ! ldd "$candidate" >/dev/null 2>&1; then busybox=$candidate; break; fi
done
if [ -z "$busybox" ]; then
  echo "load-busybox.sh: no statically linked busybox found: apt-get install busybox-static" >&2
  exit 1
fi
if [ -z "$output" ] && ! command -v docker >/dev/null; then
  echo "load-busybox.sh: the docker CLI is not installed (see README: Getting the docker CLI), or use --output FILE" >&2
  exit 1
fi

case "$(uname -m)" in
  x86_64) arch=amd64 variant= ;;
  aarch64) arch=arm64 variant=v8 ;;
  armv7l) arch=arm variant=v7 ;;
  armv6l) arch=arm variant=v6 ;;
  i?86) arch=386 variant= ;;
  ppc64le) arch=ppc64le variant= ;;
  s390x) arch=s390x variant= ;;
  riscv64) arch=riscv64 variant= ;;
  *) arch=$(uname -m) variant= ;;
esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/rootfs
mkdir -p "$root"/{bin,etc,root,home,tmp,var/tmp,proc,sys,dev}
chmod 755 "$root"
chmod 1777 "$root/tmp" "$root/var/tmp"
chmod 700 "$root/root"
cp "$busybox" "$root/bin/busybox"
chmod 755 "$root/bin/busybox"
for applet in $("$busybox" --list); do
  [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n' > "$root/etc/passwd"
printf 'root:x:0:\nnobody:x:65534:\n' > "$root/etc/group"

# One layer, reproducible: sorted names, fixed times and owners.
mkdir -p "$work/image/layer"
tar --create --file "$work/image/layer/layer.tar" --directory "$root" --sort=name --mtime=@0 \
  --owner=0 --group=0 --numeric-owner --format=gnu .
diff_id=sha256:$(sha256sum "$work/image/layer/layer.tar" | cut -d' ' -f1)
version=$("$busybox" 2>&1 | sed -n '1s/^BusyBox \(v[^ ]*\).*/\1/p' || true)

config=$(printf '{"architecture":"%s",%s"os":"linux","created":"1970-01-01T00:00:00Z","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"],"Labels":{"org.opencontainers.image.description":"BusyBox %s from Debian busybox-static, made by Berth scripts/load-busybox.sh"}},"rootfs":{"type":"layers","diff_ids":["%s"]},"history":[{"created":"1970-01-01T00:00:00Z","created_by":"scripts/load-busybox.sh (%s)"}]}' \
  "$arch" "${variant:+\"variant\":\"$variant\",}" "${version:-unknown}" "$diff_id" "$busybox")
config_id=$(printf '%s' "$config" | sha256sum | cut -d' ' -f1)
printf '%s' "$config" > "$work/image/$config_id.json"
printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["layer/layer.tar"]}]' "$config_id" "$tag" > "$work/image/manifest.json"
tar --create --file "$work/image.tar" --directory "$work/image" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
  manifest.json "$config_id.json" layer/layer.tar

if [ -n "$output" ]; then
  cp "$work/image.tar" "$output"
  echo "wrote $output ($tag, sha256:$config_id)"
else
  docker load --input "$work/image.tar"
fi
