#!/usr/bin/env bash
# Installs schemathesis (property-based API testing from an OpenAPI document, PyPI) into a venv in the tools
# cache outside the repository, and prints the path of its `st` command. Idempotent: an installed venv of the
# pinned version is reused. Used by test/integration/api-schemathesis.test.ts and .ci/run.
set -euo pipefail
VERSION=${SCHEMATHESIS_VERSION:-4.32.5}
VENV=${BERTH_TOOLS:-/var/cache/berth-tools}/schemathesis-$VERSION
if [[ ! -x "$VENV/bin/st" ]]; then
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$VERSION" >&2
fi
echo "$VENV/bin/st"
