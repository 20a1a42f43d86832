#!/usr/bin/env bash
# A reference dockerd for side-by-side benchmarks and behaviour comparisons, on private paths so it never meets a
# system dockerd or Berth: `start` installs Debian's docker.io if needed and starts dockerd (with the containerd it
# supervises itself) under $REFD_DIR; `stop` ends it by its pid file and removes its bridge. Never a dependency of
# Berth or its tests. dockerd sets the iptables FORWARD policy to DROP; Berth is expected to survive that.
# Several benchmark runs may share one reference dockerd (two dockerds would fight over the DOCKER chains): `start`
# counts a user, `stop` drops one and stops dockerd only when none is left; `stop --all` stops it regardless.
# `halt` and `launch` restart it on the same store (bench/daemon-start.js --dockerd, which runs it alone).
set -euo pipefail
dir=${REFD_DIR:-/var/tmp/berth-refd}
sock=$dir/docker.sock
pidfile=$dir/dockerd.pid
users=$dir.users
bridge=refd0
exec 8>"$dir.lock"
flock 8
# dockerd is started with fd 8 closed: a daemon holding the lock would block every later start and stop.

# dockerd on the private paths, in the background; its own bridge on a fixed private subnet: dockerd must not take
# docker0's default range from anyone.
launch() {
  dockerd --data-root "$dir/data" --exec-root "$dir/exec" -H "unix://$sock" --pidfile "$pidfile" \
    --bridge "$bridge" --storage-driver overlay2 --log-level warn >>"$dir/dockerd.log" 2>&1 8>&- &
}

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

case "${1:-}" in
start)
  if ! command -v dockerd >/dev/null; then
    # policy-rc.d keeps the package from starting a system dockerd on /var/run/docker.sock.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io >/dev/null
  fi
  if running; then
    echo $(($(cat "$users" 2>/dev/null || echo 0) + 1)) >"$users"
    echo "unix://$sock"
    exit 0
  fi
  mkdir -p "$dir/data" "$dir/exec"
  # dockerd turns the FORWARD policy to DROP; remember it so that stop can put it back.
  iptables -S FORWARD 2>/dev/null | awk '$1=="-P"{print $3}' >"$dir/forward-policy" || true
  ip link show "$bridge" >/dev/null 2>&1 || {
    ip link add "$bridge" type bridge
    ip addr add 10.250.250.1/24 dev "$bridge"
    ip link set "$bridge" up
  }
  launch
  for _ in $(seq 1 200); do
    DOCKER_HOST="unix://$sock" docker version >/dev/null 2>&1 && { echo 1 >"$users"; echo "unix://$sock"; exit 0; }
    sleep 0.1
  done
  echo "dockerd did not answer; see $dir/dockerd.log" >&2
  exit 1
  ;;
halt)
  # For bench/daemon-start.js: dockerd stops as on a host shutdown (its containers with it), keeping its store.
  running || { echo "reference dockerd is not running" >&2; exit 1; }
  pid=$(cat "$pidfile")
  kill "$pid"
  for _ in $(seq 1 600); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.1; done
  echo "dockerd $pid did not stop in 60 s" >&2
  exit 1
  ;;
launch)
  # …and starts again on the same store, without waiting for it to answer (the caller times that).
  running && { echo "reference dockerd is already running" >&2; exit 1; }
  [ -d "$dir/data" ] || { echo "no reference dockerd store at $dir (start first)" >&2; exit 1; }
  launch
  echo "unix://$sock"
  ;;
stop)
  left=$(($(cat "$users" 2>/dev/null || echo 1) - 1))
  if [ "${2:-}" != --all ] && [ "$left" -gt 0 ]; then
    echo "$left" >"$users"
    echo "reference dockerd still used by $left other run(s); left running (stop --all to force)" >&2
    exit 0
  fi
  rm -f "$users"
  if [ -f "$pidfile" ]; then
    pid=$(cat "$pidfile")
    # Containers first, so that no shim or mount outlives the daemon; bounded, since a wedged dockerd (its shims
    # gone under it) never answers a removal, and the lock is held meanwhile.
    ids=$(DOCKER_HOST="unix://$sock" timeout 20 docker ps -aq 2>/dev/null || true)
    [ -z "$ids" ] || DOCKER_HOST="unix://$sock" timeout 60 docker rm -f $ids >/dev/null 2>&1 || true
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  # dockerd leaves overlay and netns mounts under its roots when killed mid-way.
  grep -o " $dir[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  ip link del "$bridge" 2>/dev/null || true
  # Its DOCKER* chains, its rules for its bridge, and the FORWARD policy as it was before start.
  set +e +o pipefail
  for table in filter nat; do
    iptables -t "$table" -S | grep -E "^-A .*(-j DOCKER|$bridge|10\.250\.250\.)" | sed 's/^-A/-D/' |
      while read -r rule; do eval iptables -t "$table" "$rule"; done
    for chain in $(iptables -t "$table" -S | awk '$1=="-N" && $2 ~ /^DOCKER/ {print $2}'); do
      iptables -t "$table" -F "$chain"
      iptables -t "$table" -X "$chain"
    done
  done
  [ -s "$dir/forward-policy" ] && iptables -P FORWARD "$(cat "$dir/forward-policy")"
  rm -rf "$dir"
  ;;
*)
  echo "usage: $0 start|stop [--all]|halt|launch   (REFD_DIR=$dir)" >&2
  exit 2
  ;;
esac
