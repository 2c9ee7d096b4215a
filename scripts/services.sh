#!/usr/bin/env bash
# Install the servers the test suite starts for itself: redis-server (the shared
# rate-limit backend) and PostgreSQL. The tests run PostgreSQL 16 with pgvector from the
# pgserver wheel (a dev dependency); the Debian package provides the postgres user that
# runs it when the tests run as root. Debian/Ubuntu packages; a no-op when both are
# already present.
set -euo pipefail

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: please install: ${missing[*]} (no apt-get on this machine)" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
echo "installing ${missing[*]} (Debian packages) for the test suite" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
