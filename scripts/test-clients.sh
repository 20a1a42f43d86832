#!/usr/bin/env bash
# Runs the clients' own test suites against a private berthd:
#   npm run test:clients -- <docker-py checkout> [<dockerode checkout>]
# Checkouts are brought by hand (their tests are not in the published packages); nothing of them is copied into
# this repository. docker-py comes from PyPI into a venv under $BERTH_TOOLS (default /var/cache/berth-tools);
# dockerode's devDependencies are installed with npm into a temporary copy of its checkout. The images the suites
# expect (alpine, busybox, ubuntu, hello-world) are stand-ins made from busybox-static. Upstream tests listed in
# test/fixtures/clients/skip-list.txt (swarm, plugins, BuildKit-only, internet) are deselected.
# CLIENTS_DAEMON=unix://<socket> runs the same suites against a daemon already running there instead (the reference
# dockerd of scripts/reference-dockerd.sh, for today's comparison figures); that daemon is not stopped.
set -uo pipefail

DOCKER_PY_SRC=${1:-}
DOCKERODE_SRC=${2:-}
if [[ -z "$DOCKER_PY_SRC" && -z "$DOCKERODE_SRC" ]]; then
  echo "usage: npm run test:clients -- <docker-py checkout> [<dockerode checkout>] (an empty string skips one)" >&2
  exit 2
fi
REPO=$(cd "$(dirname "$0")/.." && pwd)
TOOLS=${BERTH_TOOLS:-/var/cache/berth-tools}
DOCKER_PY_VERSION=${DOCKER_PY_VERSION:-7.2.0}
SKIP_LIST="$REPO/test/fixtures/clients/skip-list.txt"
PYTEST_ARGS=${PYTEST_ARGS:-}
MOCHA_ARGS=${MOCHA_ARGS:-}

WORK=$(mktemp -d /tmp/berth-clients.XXXXXX)
SOCK="$WORK/docker.sock"
export DOCKER_HOST="${CLIENTS_DAEMON:-unix://$SOCK}"
export DOCKER_CONFIG="$WORK/docker-config"
mkdir -p "$DOCKER_CONFIG"
echo '{}' > "$WORK/daemon.json"
BERTHD_PID=

cleanup() {
  if [[ -n "$BERTHD_PID" ]]; then
    local ids daemon_id
    daemon_id=$(docker info --format '{{.ID}}' 2>/dev/null || true)
    ids=$(docker ps -aq 2>/dev/null || true)
    [[ -n "$ids" ]] && docker rm -f $ids >/dev/null 2>&1
    docker network prune -f >/dev/null 2>&1
    kill -TERM "$BERTHD_PID" 2>/dev/null
    wait "$BERTHD_PID" 2>/dev/null
    # The daemon keeps its default bridge across restarts, as dockerd keeps docker0: remove this one's.
    if [[ -n "$daemon_id" ]]; then
      ip -o link show | awk -v a="alias berth:$daemon_id" 'index($0, a) { sub(/@.*/, "", $2); sub(/:$/, "", $2); print $2 }' |
        while read -r link; do ip link del "$link" 2>/dev/null; done
    fi
  fi
  if [[ -n "${KEEP_WORK:-}" ]]; then echo "work directory kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

if [[ -z "${CLIENTS_DAEMON:-}" ]]; then
  [[ -f "$REPO/dist/main.js" ]] || (cd "$REPO" && npm run build) || exit 1
  node "$REPO/dist/main.js" --host "unix://$SOCK" --data-root "$WORK/data" --exec-root "$WORK/run" \
    --config-file "$WORK/daemon.json" --log-level info --no-cri >"$WORK/berthd.log" 2>&1 &
  BERTHD_PID=$!
  for _ in $(seq 200); do docker version >/dev/null 2>&1 && break; sleep 0.1; done
fi
docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}}) at '"$DOCKER_HOST" || { cat "$WORK/berthd.log" 2>/dev/null; exit 1; }

# --- stand-in images from busybox-static
rootfs_tar() { # <dir> <with-bash>
  local dir=$1
  mkdir -p "$dir"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,root,proc,sys,dev,var/tmp,home,run,mnt,srv,opt}
  chmod 1777 "$dir/tmp" "$dir/var/tmp"; chmod 700 "$dir/root"
  cp /bin/busybox "$dir/bin/busybox"
  /bin/busybox --list-full | while read -r applet; do
    [[ "$applet" == bin/busybox || -e "$dir/$applet" ]] || ln -s /bin/busybox "$dir/$applet"
  done
  if [[ "$2" == bash ]]; then printf '#!/bin/sh\nexec /bin/sh "$@"\n' >"$dir/bin/bash"; chmod 755 "$dir/bin/bash"; fi
  # Alpine's system users and directories: the suites exec as `postgres` and in /var/opt.
  mkdir -p "$dir"/var/{opt,lib,log,cache,spool,empty,local,mail} "$dir"/usr/{lib,local/bin,share} "$dir"/{lib,media}
  cat >"$dir/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
bin:x:1:1:bin:/bin:/sbin/nologin
daemon:x:2:2:daemon:/sbin:/sbin/nologin
adm:x:3:4:adm:/var/adm:/sbin/nologin
lp:x:4:7:lp:/var/spool/lpd:/sbin/nologin
sync:x:5:0:sync:/sbin:/bin/sync
mail:x:8:12:mail:/var/spool/mail:/sbin/nologin
operator:x:11:0:operator:/root:/sbin/nologin
ftp:x:21:21::/var/lib/ftp:/sbin/nologin
sshd:x:22:22:sshd:/dev/null:/sbin/nologin
games:x:35:35:games:/usr/games:/sbin/nologin
postgres:x:70:70::/var/lib/postgresql:/bin/sh
ntp:x:123:123:NTP:/var/empty:/sbin/nologin
guest:x:405:100:guest:/dev/null:/sbin/nologin
nobody:x:65534:65534:nobody:/:/sbin/nologin
PASSWD
  cat >"$dir/etc/group" <<'GROUP'
root:x:0:root
bin:x:1:root,bin,daemon
daemon:x:2:root,bin,daemon
adm:x:4:root,adm,daemon
tty:x:5:
lp:x:7:lp
mail:x:12:mail
ftp:x:21:
sshd:x:22:
games:x:35:
postgres:x:70:
ntp:x:123:
users:x:100:games
nogroup:x:65533:
nobody:x:65534:
GROUP
  echo 'hosts: files dns' >"$dir/etc/nsswitch.conf"
  tar -C "$dir" -cf "$dir.tar" .
}
PATH_ENV='ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
rootfs_tar "$WORK/rootfs" plain
rootfs_tar "$WORK/rootfs-bash" bash
docker import -c "$PATH_ENV" -c 'CMD ["/bin/sh"]' "$WORK/rootfs.tar" alpine:3.10 >/dev/null &&
  docker tag alpine:3.10 alpine:latest &&
  docker import -c "$PATH_ENV" -c 'CMD ["sh"]' "$WORK/rootfs.tar" busybox:latest >/dev/null &&
  docker import -c "$PATH_ENV" -c 'CMD ["/bin/echo","Hello from Docker!"]' "$WORK/rootfs.tar" hello-world:latest >/dev/null &&
  docker import -c "$PATH_ENV" -c 'CMD ["bash"]' "$WORK/rootfs-bash.tar" ubuntu:latest >/dev/null || exit 1
docker images --format '{{.Repository}}:{{.Tag}} {{.ID}}'

# Skip list: "<suite> <test id or prefix>  # reason"
skips() { grep -E "^$1 " "$SKIP_LIST" | sed -E 's/[[:space:]]+#.*$//' | cut -d' ' -f2-; }

RESULTS=()
status=0

if [[ -n "$DOCKER_PY_SRC" ]]; then
  VENV="$TOOLS/docker-py-$DOCKER_PY_VERSION"
  if ! "$VENV/bin/python" -c "import docker, paramiko, websocket, pytest, pytest_timeout" 2>/dev/null; then
    mkdir -p "$TOOLS" && python3 -m venv "$VENV" &&
      "$VENV/bin/pip" install -q "docker[ssh,websockets]==$DOCKER_PY_VERSION" "pytest==7.4.2" "pytest-timeout==2.1.0" || exit 1
  fi
  # Only the tests are copied, so `import docker` finds the PyPI package and not the checkout's sources.
  mkdir -p "$WORK/docker-py" && cp -r "$DOCKER_PY_SRC/tests" "$DOCKER_PY_SRC/pytest.ini" "$WORK/docker-py/"
  deselect=()
  while IFS= read -r t; do deselect+=(--deselect "$t"); done < <(skips docker-py)
  echo "== docker-py $DOCKER_PY_VERSION tests/integration (${#deselect[@]} skip-list arguments)"
  (cd "$WORK/docker-py" && "$VENV/bin/pytest" -p no:cacheprovider -q --timeout 180 -o junit_family=xunit2 \
    --junitxml "$WORK/docker-py.xml" "${deselect[@]}" $PYTEST_ARGS tests/integration) >"$WORK/docker-py.out" 2>&1
  rc=$?
  grep -E '^(FAILED|ERROR) ' "$WORK/docker-py.out"
  summary=$(tail -n 1 "$WORK/docker-py.out")
  echo "docker-py: $summary"
  RESULTS+=("docker-py $DOCKER_PY_VERSION: $summary")
  [[ $rc -ne 0 ]] && status=1
  [[ -n "${CLIENTS_OUT:-}" ]] && cp "$WORK/docker-py.out" "$CLIENTS_OUT.docker-py.txt"
fi

if [[ -n "$DOCKERODE_SRC" ]]; then
  mkdir -p "$WORK/dockerode" && cp -r "$DOCKERODE_SRC/." "$WORK/dockerode/"
  (cd "$WORK/dockerode" && npm install --no-audit --no-fund --loglevel=error >/dev/null) || exit 1
  files=()
  skipped_files=$(skips dockerode-file)
  for f in "$WORK"/dockerode/test/*.js; do
    name=$(basename "$f")
    [[ "$name" == spec_helper.js ]] && continue
    grep -qxF "$name" <<<"$skipped_files" && continue
    files+=("test/$name")
  done
  grep_args=()
  titles=$(skips dockerode | sed -E 's/[][\\^$.|?*+(){}]/\\&/g' | paste -sd'|')
  [[ -n "$titles" ]] && grep_args=(--grep "$titles" --invert)
  echo "== dockerode $(node -p "require('$WORK/dockerode/package.json').version") test/ (${files[*]})"
  (cd "$WORK/dockerode" && timeout 1800 ./node_modules/mocha/bin/mocha.js -R dot --exit --timeout 60000 \
    "${grep_args[@]}" $MOCHA_ARGS "${files[@]}") >"$WORK/dockerode.out" 2>&1
  rc=$?
  passing=$(grep -oE '[0-9]+ passing' "$WORK/dockerode.out" | head -1)
  failing=$(grep -oE '[0-9]+ failing' "$WORK/dockerode.out" | head -1)
  pending=$(grep -oE '[0-9]+ pending' "$WORK/dockerode.out" | head -1)
  grep -E '^  [0-9]+\) ' "$WORK/dockerode.out"
  echo "dockerode: ${passing:-0 passing}, ${failing:-0 failing}${pending:+, $pending} (exit $rc)"
  RESULTS+=("dockerode: ${passing:-0 passing}, ${failing:-0 failing}${pending:+, $pending}")
  [[ $rc -ne 0 ]] && status=1
  [[ -n "${CLIENTS_OUT:-}" ]] && cp "$WORK/dockerode.out" "$CLIENTS_OUT.dockerode.txt"
fi

echo "== results"
printf '%s\n' "${RESULTS[@]}"
exit $status
