#!/usr/bin/env bash
# Install everything the tests need on a fresh Debian machine (as root), then run
# lint, types, the browser-client unit tests and the whole pytest suite.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v chromium >/dev/null || need+=(chromium)
command -v node >/dev/null || need+=(nodejs)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
    echo "== installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

echo "== installing Python dependencies"
python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore -e '.[test]'

echo "== ruff"
python3 -m ruff check roomcast tests benchmarks
echo "== mypy"
python3 -m mypy
if [ -d tests/js ]; then
    echo "== node --test (browser client unit tests)"
    node --test tests/js/
fi
echo "== pytest"
exec python3 -m pytest -n 2 -p no:cacheprovider "$@"
