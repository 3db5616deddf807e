#!/bin/sh
# One entry for developers and users: ./dev.sh demo | serve | invoke | test | check | bench
# Each command first makes sure .venv exists and holds requirements-dev.txt (Python 3.11+).
set -eu
cd "$(dirname "$0")"

PYTHON="${PYTHON:-python3}"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "predeploy-backup needs Python 3.11 or newer (set PYTHON=/path/to/python3.11)" >&2
    exit 1
}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
stamp=".venv/.requirements.$(cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)"
if [ ! -f "$stamp" ]; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
    rm -f .venv/.requirements.* && touch "$stamp"
fi

command="${1:-test}"
[ $# -gt 0 ] && shift
case "$command" in
    demo) exec .venv/bin/python demo.py "$@" ;;
    serve) exec .venv/bin/python -m tools.stack "$@" ;;
    invoke) exec .venv/bin/python -m tools.invoke "$@" ;;
    test) exec .venv/bin/python -m pytest "$@" ;;
    bench) exec .venv/bin/python -m bench "$@" ;;
    check)
        .venv/bin/ruff check .
        .venv/bin/ruff format --check .
        exec .venv/bin/mypy .
        ;;
    *) echo "usage: ./dev.sh demo | serve | invoke SAMPLE... | test [pytest args] | check | bench [--smoke]" >&2; exit 2 ;;
esac
