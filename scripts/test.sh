#!/usr/bin/env bash
# Install everything the tests need on a fresh Debian machine (as root), then run
# lint, types, the browser-client unit tests and the whole pytest suite.
#
# Python packages go into a virtualenv made afresh on every run (.venv-test), from the
# pins in constraints.txt, so a package left on the machine can never hide a missing pin.
# Arguments are passed to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-test

need=()
command -v python3 >/dev/null || need+=(python3 python3-venv)
command -v redis-server >/dev/null || need+=(redis-server)
# The Redis Cluster tests join six servers with redis-cli (Debian's redis-tools).
command -v redis-cli >/dev/null || need+=(redis-tools)
# The deployment test runs Debian's nginx in front of two instances (tests/deploy).
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v chromium >/dev/null || need+=(chromium)
command -v node >/dev/null || need+=(nodejs)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
apt_install() {
    echo "== installing $*"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
if [ ${#need[@]} -gt 0 ]; then
    apt_install "${need[@]}"
fi

python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || {
    echo "roomcast needs Python >= 3.11; python3 is $(python3 --version 2>&1)" >&2
    exit 1
}

echo "== fresh virtualenv in $venv"
rm -rf "$venv"
if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    # Debian's python3 makes venvs only with its python3-venv package (ensurepip).
    rm -rf "$venv"
    apt_install python3-venv
    python3 -m venv "$venv"
fi
py="$PWD/$venv/bin/python"
export PATH="$PWD/$venv/bin:$PATH"

echo "== installing Python dependencies (pinned in constraints.txt)"
# (The filter drops pip's notes about package-index folders a machine's pip config names.)
"$py" -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[test]' 2>&1 \
    | { grep -v "^WARNING: Location 'file:" || true; }

echo "== ruff"
"$py" -m ruff check roomcast tests benchmarks
echo "== mypy"
"$py" -m mypy roomcast tests
if [ -f tests/js/package-lock.json ]; then
    # Test-only packages (React for the react.js browser test), pinned by the lock file.
    echo "== npm ci (tests/js)"
    command -v npm >/dev/null || apt_install npm
    (cd tests/js && npm ci --no-audit --no-fund --loglevel=error)
fi
if [ -d tests/js ]; then
    echo "== node --test (browser client unit tests)"
    node --test tests/js/
fi
echo "== pytest"
exec "$py" -m pytest -n 2 -p no:cacheprovider "$@"
